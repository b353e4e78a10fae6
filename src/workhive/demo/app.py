"""The demo's :class:`~workhive.Hive`, with its feature flags in code rather than a file.

``hive`` is a factory so importing this module has no side effects:
``workhive worker --app workhive.demo.app:hive`` builds one on the default SQLite file, and
``workhive demo`` builds one on a temporary file with a 2-second cron job.
"""

from __future__ import annotations

from workhive.config import HiveConfig
from workhive.demo.todos import DEFAULT_OVERDUE_SCHEDULE, build_todos_module
from workhive.demo.user import user
from workhive.hive import Hive

#: ``reports`` is off on purpose: the demo shows its enqueues being dropped.
FLAGS = {"email_notifications": True, "data_export": True, "reports": False}


def create_hive(
    config: HiveConfig | None = None,
    *,
    backend: str | None = None,
    overdue_schedule: str = DEFAULT_OVERDUE_SCHEDULE,
) -> Hive:
    """The demo app on ``backend`` (default: the config's, SQLite unless told otherwise).

    ``config`` is what ``workhive worker --config`` loaded, if anything; flags it sets win
    over :data:`FLAGS`.
    """
    flags = {**FLAGS, **(config.worker.tasks if config is not None else {})}
    hive = Hive(backend, config=config, flags=flags)
    hive.include(user, build_todos_module(overdue_schedule))
    return hive


hive = create_hive
