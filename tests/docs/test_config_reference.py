"""``docs/configuration-reference.md`` is what the config types render to today."""

from __future__ import annotations

import msgspec

from tests.docs import render_config_reference as reference
from workhive import config


def test_committed_reference_is_up_to_date() -> None:
    committed = reference.PAGE.read_text(encoding="utf-8")
    assert committed == reference.render(), (
        "docs/configuration-reference.md is stale: run "
        "`python -m tests.docs.render_config_reference` and commit the result")


def test_every_config_struct_is_on_the_page() -> None:
    """A new section struct in workhive.config must be added to the page's list."""
    shown = {cls for cls, _ in reference.SECTIONS}
    structs = {obj for obj in vars(config).values()
               if isinstance(obj, type) and issubclass(obj, msgspec.Struct)
               and obj.__module__ == config.__name__ and obj.__name__.endswith("Config")
               and obj is not config.HiveConfig}
    assert structs <= shown, sorted(c.__name__ for c in structs - shown)


def test_every_key_has_a_meaning() -> None:
    page = reference.render()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    blank = [row for row in rows if row.rstrip().endswith("|  |")
             and "(see below)" not in row]
    assert not blank, blank
