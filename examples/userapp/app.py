"""The example app's :class:`~workhive.Hive`: ``workhive worker --app examples.userapp.app:hive``.

``hive`` is a factory rather than an instance so that importing this module has no side
effects, and so the CLI (``--config``) and the demo (a temporary database, a 2-second cron)
can each build one configured their way. Without a config of its own the app reads its
``config/`` directory: ``featureflags.yaml`` (which backend, which tasks) and ``config.yaml``
(the backends' settings), plus ``WORKHIVE_*`` environment overrides.
"""

from __future__ import annotations

from pathlib import Path

from workhive import Hive, HiveConfig, load_config
from workhive.demo.todos import DEFAULT_OVERDUE_SCHEDULE, build_todos_module
from workhive.demo.user import user

CONFIG_PATH = Path(__file__).with_name("config")


def create_hive(
    config: HiveConfig | None = None,
    *,
    backend: str | None = None,
    overdue_schedule: str = DEFAULT_OVERDUE_SCHEDULE,
) -> Hive:
    """Build the app; ``config`` defaults to this package's ``config/`` (+ environment)."""
    hive = Hive(backend, config=config if config is not None else load_config(CONFIG_PATH))
    hive.include(user, build_todos_module(overdue_schedule))
    return hive


hive = create_hive
