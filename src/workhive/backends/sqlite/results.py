"""Task results and cancel requests in the SQLite file (``results`` and ``cancels`` tables).

A result record is opaque bytes (:mod:`workhive.results` encodes it) under the task id with an
expiry time; reads ignore expired rows and housekeeping deletes them. A cancel first deletes a
*waiting* row of ``jobs`` (``token = 0``: ready or delayed, not leased); a leased one is flagged
in ``cancels`` instead, and the worker running it polls :meth:`SQLiteResults.cancelled`.

Cancel finds the row by ``jobs.id``, which has no index: cancelling scans the jobs table. That
keeps every enqueue as cheap as before, for a rare operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from workhive.backends.sqlite.store import SQLiteStore

T = TypeVar("T")

_CHUNK = 500  # ids per IN (...) query, far below SQLite's variable limit


def store_result(store: SQLiteStore, task_id: str, record: bytes, ttl: float) -> None:
    with store._tx() as con:
        now = store.clock()
        store._housekeep(now)
        con.execute("INSERT INTO results (id, expires_at, record) VALUES (?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at,"
                    " record = excluded.record", (task_id, now + ttl, record))


def get_result(store: SQLiteStore, task_id: str) -> bytes | None:
    row = store.con.execute(
        "SELECT CAST(record AS BLOB) FROM results WHERE id = ? AND expires_at > ?",
        (task_id, store.clock())).fetchone()
    return None if row is None else bytes(row[0])


def cancel(store: SQLiteStore, task_id: str, ttl: float) -> bool:
    with store._tx() as con:
        now = store.clock()
        if con.execute("DELETE FROM jobs WHERE id = ? AND token = 0", (task_id,)).rowcount:
            return True
        con.execute("INSERT INTO cancels (id, expires_at) VALUES (?, ?) ON CONFLICT (id)"
                    " DO UPDATE SET expires_at = excluded.expires_at", (task_id, now + ttl))
        return False


def cancelled(store: SQLiteStore, task_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    now = store.clock()
    for start in range(0, len(task_ids), _CHUNK):
        chunk = list(task_ids[start:start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        rows = store.con.execute(
            f"SELECT id FROM cancels WHERE expires_at > ? AND id IN ({marks})", (now, *chunk))
        found.update(str(row[0]) for row in rows)
    return found


class SQLiteResults:
    """The SQLite backend's :class:`~workhive.backend.SupportsResults` and
    :class:`~workhive.backend.SupportsCancel` (mixed into :class:`SQLiteBackend`)."""

    if TYPE_CHECKING:
        async def _call(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        await self._call(store_result, task_id, record, ttl)

    async def get_result(self, task_id: str) -> bytes | None:
        return await self._call(get_result, task_id)

    async def cancel(self, task_id: str, ttl: float) -> bool:
        return await self._call(cancel, task_id, ttl)

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        return await self._call(cancelled, task_ids)
