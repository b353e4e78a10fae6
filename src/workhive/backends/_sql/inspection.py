"""Per-queue counts and worker heartbeats, as SQL both engines run.

Counts follow the one ``available_at`` column: *ready* rows are available now (an expired
lease counts as ready: the next claim takes it back), *delayed* rows wait for their eta
(``token = 0``), *in flight* rows are leased. A stored value that is not what it should be
(SQLite keeps anything anywhere) is counted as 0 or skipped with an error log, never raised:
one corrupt row must not break the whole listing.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal

import msgspec

from workhive.backend import QueueStats, WorkerInfo
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, rows

logger = logging.getLogger(__name__)


def stats(d: Dialect) -> Op[list[QueueStats]]:
    by_queue: dict[str, QueueStats] = {}

    def get(q: object) -> QueueStats:
        name = q.decode(errors="replace") if isinstance(q, bytes) else str(q)
        return by_queue.setdefault(name, QueueStats(name))

    for q, ready, delayed, in_flight in (yield rows(d.sql(
        "SELECT queue, count(*) FILTER (WHERE available_at <= n.now),"
        " count(*) FILTER (WHERE token = 0 AND available_at > n.now),"
        " count(*) FILTER (WHERE token <> 0 AND available_at > n.now)"
        " FROM {t}jobs, (SELECT {now} AS now) n GROUP BY queue"))):
        stat = get(q)
        stat.ready, stat.delayed, stat.in_flight = ready, delayed, in_flight
    for q, dead in (yield rows(d.sql("SELECT queue, count(*) FROM {t}dead GROUP BY queue"))):
        get(q).dead = dead
    for q, processed, failed in (yield rows(d.sql(
            "SELECT queue, sum(processed), sum(failed) FROM {t}totals GROUP BY queue"))):
        get(q).processed, get(q).failed = _count(processed), _count(failed)
    return sorted(by_queue.values(), key=lambda s: s.queue)


def _count(value: object) -> int:
    """A stored total, or 0 when the row holds something that is not a number."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def heartbeat(d: Dialect, info: WorkerInfo, ttl: float) -> Op[None]:
    """Store ``info`` until ``ttl`` from now; drop records whose ttl ran out.

    A killed worker never forgets itself: its record goes when the ttl it advertised runs
    out (:func:`workers` filters it at once, the next heartbeat of any worker deletes it).
    """
    yield count(d.sql("DELETE FROM {t}workers WHERE expires_at <= {now} AND id <> $1"), info.id)
    yield count(d.sql(
        "INSERT INTO {t}workers (id, expires_at, info) VALUES ($1, {now} + $2, $3)"
        " ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, info = excluded.info"),
        info.id, float(ttl), msgspec.json.encode(info))


def workers(d: Dialect) -> Op[list[WorkerInfo]]:
    """Workers whose last heartbeat has not expired, by id."""
    found = yield rows(d.sql(
        "SELECT info FROM {t}workers WHERE expires_at > {now} ORDER BY id"))
    out = []
    for (info,) in found:
        try:
            out.append(msgspec.json.decode(info, type=WorkerInfo))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
            logger.error("skipping a worker with a corrupt heartbeat %r", bytes(info)[:100]
                         if isinstance(info, bytes) else info)
    return out


def forget_worker(d: Dialect, worker_id: str) -> Op[None]:
    yield count(d.sql("DELETE FROM {t}workers WHERE id = $1"), worker_id)
