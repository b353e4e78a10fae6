"""Task history and paused queues in the SQLite file (``history`` and ``paused`` tables).

The tables are created on first use (``CREATE TABLE IF NOT EXISTS``), so files made by
older versions gain them without a migration. A history write adds to the row of its
``(minute, queue, task)`` with one upsert per bucket; about once an hour a write also drops
rows older than :data:`workhive.history.RETENTION`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from workhive.history import BINS, COUNTERS, RETENTION, Bucket, merge

if TYPE_CHECKING:
    from workhive.backends.sqlite.store import SQLiteStore

T = TypeVar("T")

_COLUMNS = [*COUNTERS, *(f"h{i}" for i in range(BINS))]
_CREATE = (
    "CREATE TABLE IF NOT EXISTS history (minute INTEGER NOT NULL, queue TEXT NOT NULL,"
    " task TEXT NOT NULL, " + ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _COLUMNS)
    + ", PRIMARY KEY (minute, queue, task)) WITHOUT ROWID;"
    " CREATE TABLE IF NOT EXISTS paused (queue TEXT PRIMARY KEY, since REAL NOT NULL);"
)
_UPSERT = (
    f"INSERT INTO history (minute, queue, task, {', '.join(_COLUMNS)}) VALUES"
    f" (?, ?, ?, {', '.join('?' * len(_COLUMNS))}) ON CONFLICT (minute, queue, task) DO UPDATE"
    " SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in _COLUMNS)
)
_PRUNE_EVERY = 3_600.0


def _tables(store: SQLiteStore) -> None:
    """Create the tables once per store (the attribute lives and dies with the connection)."""
    if not getattr(store, "_history_ready", False):
        store.con.executescript(_CREATE)
        setattr(store, "_history_ready", True)  # noqa: B010 - not a declared attribute


def record_history(store: SQLiteStore, buckets: Sequence[Bucket]) -> None:
    _tables(store)
    rows = [(b.minute, b.queue, b.task, *b.counters().values())
            for b in merge(buckets).values()]
    with store._tx() as con:
        con.executemany(_UPSERT, rows)
        now = store.clock()
        if now >= getattr(store, "_history_prune_at", 0.0):
            setattr(store, "_history_prune_at", now + _PRUNE_EVERY)  # noqa: B010
            con.execute("DELETE FROM history WHERE minute < ?", (int(now - RETENTION),))


def history(store: SQLiteStore, since: float) -> list[Bucket]:
    _tables(store)
    rows = store.con.execute(
        f"SELECT minute, queue, task, {', '.join(_COLUMNS)} FROM history WHERE minute >= ?"
        " ORDER BY minute, queue, task", (int(since),))
    return [Bucket.from_counters(int(r[0]), str(r[1]), str(r[2]), dict(zip(_COLUMNS, r[3:],
                                                                          strict=True)))
            for r in rows]


def set_paused(store: SQLiteStore, queue: str, paused: bool) -> None:
    _tables(store)
    with store._tx() as con:
        if paused:
            con.execute("INSERT INTO paused (queue, since) VALUES (?, ?) ON CONFLICT (queue)"
                        " DO NOTHING", (queue, store.clock()))
        else:
            con.execute("DELETE FROM paused WHERE queue = ?", (queue,))


def paused_queues(store: SQLiteStore) -> set[str]:
    _tables(store)
    return {str(r[0]) for r in store.con.execute("SELECT queue FROM paused")}


class SQLiteHistory:
    """The SQLite backend's :class:`~workhive.history.SupportsHistory` and
    :class:`~workhive.pauses.SupportsPause` (mixed into :class:`SQLiteBackend`)."""

    if TYPE_CHECKING:
        async def _call(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        if buckets:
            await self._call(record_history, buckets)

    async def history(self, since: float) -> list[Bucket]:
        return await self._call(history, since)

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._call(set_paused, queue, paused)

    async def paused_queues(self) -> set[str]:
        return await self._call(paused_queues)
