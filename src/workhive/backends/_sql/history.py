"""Task history and paused queues (tables ``history`` and ``paused``): the dashboard's.

One history row per ``(minute, queue, task)`` holds the counters of
:class:`~workhive.history.Bucket` and its histogram bins, one column each. A worker's flush
*adds* to the rows other workers wrote (``ON CONFLICT DO UPDATE SET n = n + excluded.n``), in
key order, so two workers flushing the same minutes lock them in the same order and never
deadlock. Housekeeping drops rows older than :data:`~workhive.history.RETENTION`.

Paused queues live in the database so a pause from the dashboard stops workers on every host;
workers read the table about once a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, many, rows
from workhive.backends._sql.layout import HISTORY_COLUMNS
from workhive.errors import ValidationError
from workhive.history import Bucket, merge

_NAMES = ", ".join(HISTORY_COLUMNS)
_UPSERT = (
    f"INSERT INTO {{t}}history AS h (minute, queue, task, {_NAMES}) VALUES ("
    + ", ".join(f"${i}" for i in range(1, len(HISTORY_COLUMNS) + 4))
    + ") ON CONFLICT (minute, queue, task) DO UPDATE SET "
    + ", ".join(f"{c} = h.{c} + excluded.{c}" for c in HISTORY_COLUMNS)
)


def record_history(d: Dialect, buckets: Sequence[Bucket]) -> Op[None]:
    """Add the buckets to the stored rows of the same ``(minute, queue, task)``."""
    merged = sorted(merge(buckets).values(), key=lambda b: (b.minute, b.queue, b.task))
    yield many(d.sql(_UPSERT), [(b.minute, b.queue, b.task, *b.counters().values())
                                for b in merged])


def history(d: Dialect, since: float) -> Op[list[Bucket]]:
    """Every stored bucket whose minute starts at or after ``since`` (unix seconds)."""
    found = yield rows(d.sql(f"SELECT minute, queue, task, {_NAMES} FROM {{t}}history"
                             " WHERE minute >= CAST($1 AS float8) ORDER BY minute, queue, task"),
                       float(since))
    return [Bucket.from_counters(int(r[0]), str(r[1]), str(r[2]),
                                 dict(zip(HISTORY_COLUMNS, r[3:], strict=True)))
            for r in found]


def set_paused(d: Dialect, queue: str, paused: bool) -> Op[None]:
    """Pause (``True``) or resume (``False``) ``queue``; idempotent."""
    if not isinstance(queue, str) or not queue:
        raise ValidationError(f"a queue to pause or resume must be a non-empty string, "
                              f"got {queue!r}")
    if paused:
        yield count(d.sql("INSERT INTO {t}paused (queue, since) VALUES ($1, {now})"
                          " ON CONFLICT (queue) DO NOTHING"), queue)
    else:
        yield count(d.sql("DELETE FROM {t}paused WHERE queue = $1"), queue)


def paused_queues(d: Dialect) -> Op[set[str]]:
    found = yield rows(d.sql("SELECT queue FROM {t}paused"))
    return {str(r[0]) for r in found}
