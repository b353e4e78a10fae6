"""Task history of the ``postgres`` backend (table ``history``): the dashboard's charts.

One row per ``(minute, queue, task)`` holds the counters of :class:`~workhive.history.Bucket`
and its histogram bins, one column each, as in the SQLite backend. A worker's flush is one
statement for the whole batch (arrays through ``unnest``) that *adds* to the rows other workers
wrote: ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``. The rows are written in key
order, so two workers flushing the same minutes lock them in the same order and never deadlock.

Rows older than :data:`~workhive.history.RETENTION` (on the database clock) are dropped by the
backend's periodic housekeeping (:data:`workhive.backends.postgres.sql.HOUSEKEEPING`); the table
itself is created with the rest of the layout. Every call is one statement, so nothing depends
on the session (the same through a transaction pooler).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from workhive.history import BINS, COUNTERS, Bucket, merge

#: the stored counters in column order (histogram bins as ``h0``...)
COLUMNS = (*COUNTERS, *(f"h{i}" for i in range(BINS)))

_ARRAYS = ", ".join(["$1::bigint[]", "$2::text[]", "$3::text[]"]
                    + [f"${i + 4}::bigint[]" for i in range(len(COLUMNS))])

RECORD_HISTORY = f"""
INSERT INTO {{s}}.history AS h (minute, queue, task, {", ".join(COLUMNS)})
SELECT * FROM unnest({_ARRAYS}) ORDER BY 1, 2, 3
ON CONFLICT (minute, queue, task) DO UPDATE SET
    {", ".join(f"{c} = h.{c} + excluded.{c}" for c in COLUMNS)}
"""

# ``since`` stays a float: a bucket "starts at or after" it, as the protocol says
HISTORY = f"""
SELECT minute, queue, task, {", ".join(COLUMNS)} FROM {{s}}.history
WHERE minute >= $1::float8 ORDER BY minute, queue, task
"""


class HistoryStatements:
    """The statements above, formatted for one schema."""

    def __init__(self, schema: str) -> None:
        self.record_history = RECORD_HISTORY.replace("{s}", schema)
        self.history = HISTORY.replace("{s}", schema)


class PostgresHistory:
    """:class:`~workhive.history.SupportsHistory` for
    :class:`~workhive.backends.postgres.PostgresBackend` (a mixin)."""

    _history_sql: HistoryStatements

    def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]:
        """A pooled connection with errors translated; provided by the backend."""
        raise NotImplementedError

    async def _housekeep(self) -> None:
        """Sweep expired rows now and then; provided by the backend. Called after a flush, so
        a store that only keeps a broker's history (``coordination=``) is swept as well."""
        raise NotImplementedError

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        """Add the buckets to the stored rows of the same ``(minute, queue, task)``."""
        merged = list(merge(buckets).values())
        if not merged:
            return
        columns: list[list[Any]] = [[b.minute for b in merged], [b.queue for b in merged],
                                    [b.task for b in merged]]
        columns += [list(c) for c in zip(*(b.counters().values() for b in merged), strict=True)]
        async with self._conn("record_history") as con:
            await con.execute(self._history_sql.record_history, *columns)
        await self._housekeep()

    async def history(self, since: float) -> list[Bucket]:
        """Every stored bucket whose minute starts at or after ``since`` (unix seconds)."""
        async with self._conn("history") as con:
            rows = await con.fetch(self._history_sql.history, float(since))
        return [Bucket.from_counters(int(r[0]), str(r[1]), str(r[2]),
                                     dict(zip(COLUMNS, r[3:], strict=True)))
                for r in rows]
