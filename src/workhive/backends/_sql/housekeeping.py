"""Sweeping what expired: idempotency keys, claims, rate windows, old cron ticks, dead
workers' heartbeats, results, cancel flags, and history past its retention.

Run every few minutes by any client that writes (enqueues, and the coordination writes, so a
store used only for a broker's coordination is swept too). On PostgreSQL one client at a time
does it (a transaction-scoped try-lock: the others skip); on SQLite the write transaction
already lets one writer in at a time.
"""

from __future__ import annotations

from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, value
from workhive.history import RETENTION

EVERY = 300.0  # seconds between sweeps, per client
TICK_RETENTION = 7 * 86_400

_SWEEP = (
    "DELETE FROM {t}idempotency WHERE expires_at <= {now}",
    "DELETE FROM {t}claims WHERE expires_at <= {now}",
    "DELETE FROM {t}windows WHERE expires_at <= {now}",
    f"DELETE FROM {{t}}ticks WHERE claimed_at <= {{now}} - {TICK_RETENTION}",
    "DELETE FROM {t}workers WHERE expires_at <= {now}",
    "DELETE FROM {t}results WHERE expires_at <= {now}",
    "DELETE FROM {t}cancels WHERE expires_at <= {now}",
    f"DELETE FROM {{t}}history WHERE minute < {{now}} - {RETENTION}",
)


def sweep(d: Dialect, extra: tuple[str, ...] = ()) -> Op[None]:
    """Delete what expired, then run the dialect's own ``extra`` statements."""
    if d.try_lock and not (yield value(d.try_lock, f"workhive:housekeeping:{d.t.rstrip('.')}")):
        return
    for statement in (*_SWEEP, *extra):
        yield count(d.sql(statement))
