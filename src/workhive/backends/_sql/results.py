"""Task results and cancel requests (tables ``results`` and ``cancels``), as SQL both engines run.

A result record is opaque bytes (:mod:`workhive.results` encodes it) under the task id with an
expiry: reads ignore expired rows, housekeeping deletes them. A cancel deletes the task's row of
``jobs`` if it is *waiting* (``token = 0``: ready, delayed or backing off before a retry; never
leased), which also frees its unique key, since the key lives on that row. A leased row is left
alone and the id is flagged in ``cancels`` instead; the worker running it polls
:func:`cancelled`. Both happen in one transaction: a claim holding the row at that moment makes
the delete wait (PostgreSQL) or comes strictly before or after it (SQLite), so a task is either
deleted before any worker got it or flagged, never lost.

Cancel finds the row by ``jobs.id``, which has no index: cancelling scans the jobs table. That
keeps every enqueue as cheap as before, for a rare operation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, rows, value
from workhive.errors import ValidationError


def seconds(ttl: float, what: str) -> float:
    """``ttl`` as a float, refused unless finite and > 0: in SQL a NaN expiry compares as later
    than every time, so the row would never expire nor be swept."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or \
            not math.isfinite(ttl) or ttl <= 0:
        raise ValidationError(f"the ttl of {what} must be a finite number of seconds > 0, "
                              f"got {ttl!r}")
    return float(ttl)


def store_result(d: Dialect, task_id: str, record: bytes, ttl: float) -> Op[None]:
    """Write (or overwrite) the record, expiring ``ttl`` s from now."""
    yield count(d.sql(
        "INSERT INTO {t}results (id, expires_at, record) VALUES ($1, {now} + $2, $3)"
        " ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at,"
        " record = excluded.record"), task_id, seconds(ttl, f"the result of task {task_id}"),
        record)


def get_result(d: Dialect, task_id: str) -> Op[bytes | None]:
    record = yield value(d.sql(f"SELECT {d.blob('record')} FROM {{t}}results"
                               " WHERE id = $1 AND expires_at > {now}"), task_id)
    return None if record is None else bytes(record)


def cancel(d: Dialect, task_id: str, ttl: float) -> Op[bool]:
    """True when the task was waiting and is deleted; else flagged for ``ttl`` s."""
    ttl = seconds(ttl, f"the cancel of task {task_id}")
    if (yield count(d.sql("DELETE FROM {t}jobs WHERE id = $1 AND token = 0"), task_id)):
        return True
    yield count(d.sql("INSERT INTO {t}cancels (id, expires_at) VALUES ($1, {now} + $2)"
                      " ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at"),
                task_id, ttl)
    return False


def cancelled(d: Dialect, task_ids: Sequence[str]) -> Op[set[str]]:
    """Which of these running tasks were asked to stop."""
    found = yield rows(d.sql("SELECT id FROM {t}cancels WHERE id = ANY($1::text[])"
                             " AND expires_at > {now}"), list(task_ids))
    return {str(r[0]) for r in found}
