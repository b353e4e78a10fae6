"""Cron expressions as pure functions of time (croniter does the parsing).

Five fields (``m h dom mon dow``) or six with seconds *last* (croniter's convention), plus the
``@hourly``-style aliases. Times are unix seconds in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from workhive.errors import RegistryError


def validate_schedule(schedule: str) -> None:
    """Raise RegistryError naming the expression if croniter cannot parse it."""
    if not croniter.is_valid(schedule):
        raise RegistryError(f"invalid cron expression {schedule!r}")


def next_tick(schedule: str, after: float) -> float:
    """The first tick strictly after ``after``."""
    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(schedule, start).get_next(float))

