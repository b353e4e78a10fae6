"""The directives above a docs block mean what :mod:`tests.docs._blocks` says they mean.

A directive that is silently misread would turn a broker example into one that fails without
the broker (or never runs at all), so each one is pinned here on a small page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs._blocks import python_blocks
from tests.docs.test_readme import BROKER_ENV, _brokers, _env, broker_env

PAGE = """# A page

<!-- requires-broker: nats, rabbitmq -->
<!-- file: demo.py -->
```python
print("hello")
```

Some text in between.

<!-- not run -->
```python
await fragment()
```

<!-- requires: fastapi -->
```python
import fastapi
```
"""


def _page(tmp_path: Path, text: str = PAGE) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_each_directive_lands_on_its_block(tmp_path: Path) -> None:
    demo, fragment, optional = python_blocks(_page(tmp_path))
    assert (demo.filename, demo.brokers, demo.requires, demo.run) == (
        "demo.py", ["nats", "rabbitmq"], [], True)
    assert (fragment.run, fragment.brokers) == (False, [])
    assert (optional.requires, optional.brokers) == (["fastapi"], [])


def test_a_directive_before_text_is_dropped(tmp_path: Path) -> None:
    page = _page(tmp_path,
                 "<!-- requires-broker: nats -->\nA paragraph.\n\n```python\nx = 1\n```\n")
    assert python_blocks(page)[0].brokers == []


def test_broker_addresses_reach_only_pages_that_ask(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's environment never inherits a broker address from the test run."""
    monkeypatch.setenv("NATS_URL", "nats://elsewhere:4222")
    monkeypatch.setenv("WORKHIVE_BACKEND", "redis://elsewhere/0")
    env = _env(tmp_path)
    assert "NATS_URL" not in env and "WORKHIVE_BACKEND" not in env
    assert _env(tmp_path, {"NATS_URL": "nats://127.0.0.1:4222"})["NATS_URL"] == (
        "nats://127.0.0.1:4222")
    assert _brokers(_page(tmp_path)) == ["nats", "rabbitmq"]
    assert set(BROKER_ENV) == {"nats", "rabbitmq", "kafka", "redis", "postgres"}


def test_an_unknown_broker_is_named(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    page = _page(tmp_path, "<!-- requires-broker: mqseries -->\n```python\nx = 1\n```\n")
    with pytest.raises(pytest.fail.Exception, match="unknown broker 'mqseries'"):
        broker_env(page, request)
