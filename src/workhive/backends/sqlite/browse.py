"""Listing, finding and hurrying the tasks of a queue in the SQLite file (the task browser).

States follow ``stats``: *ready* rows are available now (including expired leases, which
the next claim takes back), *delayed* rows are waiting for their eta (``token = 0``), and
*in flight* rows are leased (``token != 0``) until ``available_at``. Listing reads the
``jobs_ready`` index's queue prefix; a find by id scans the queue's rows (rare, by hand).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from workhive.browse import QueuedTask, TaskState

if TYPE_CHECKING:
    from workhive.backends.sqlite.store import SQLiteStore

T = TypeVar("T")

_WHERE = {
    "ready": "available_at <= ?",
    "delayed": "token = 0 AND available_at > ?",
    "in_flight": "token != 0 AND available_at > ?",
}


def _state(token: int, available_at: float, now: float) -> TaskState:
    if available_at <= now:
        return "ready"
    return "delayed" if token == 0 else "in_flight"


def browse(store: SQLiteStore, queue: str, state: TaskState, limit: int,
           offset: int) -> tuple[list[QueuedTask], int]:
    now = store.clock()
    where = f"queue = ? AND {_WHERE[state]}"
    (total,) = store.con.execute(f"SELECT count(*) FROM jobs WHERE {where}",
                                 (queue, now)).fetchone()
    rows = store.con.execute(
        f"SELECT id, available_at, CAST(body AS BLOB) FROM jobs WHERE {where}"
        " ORDER BY available_at, seq LIMIT ? OFFSET ?", (queue, now, limit, offset))
    return [QueuedTask(str(i), queue, state, bytes(body), 0.0 if state == "ready" else at)
            for i, at, body in rows], int(total)


def find_task(store: SQLiteStore, queue: str, task_id: str) -> QueuedTask | None:
    row = store.con.execute(
        "SELECT token, available_at, CAST(body AS BLOB) FROM jobs WHERE queue = ? AND id = ?",
        (queue, task_id)).fetchone()
    if row is None:
        return None
    state = _state(row[0], row[1], store.clock())
    return QueuedTask(task_id, queue, state, bytes(row[2]), 0.0 if state == "ready" else row[1])


def run_now(store: SQLiteStore, queue: str, task_id: str) -> bool:
    with store._tx() as con:
        now = store.clock()
        return bool(con.execute(
            "UPDATE jobs SET available_at = ? WHERE queue = ? AND id = ? AND token = 0"
            " AND available_at > ?", (now, queue, task_id, now)).rowcount)


class SQLiteBrowse:
    """The SQLite backend's :class:`~workhive.browse.SupportsBrowse` (mixed into
    :class:`SQLiteBackend`)."""

    if TYPE_CHECKING:
        async def _call(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        return await self._call(browse, queue, state, limit, offset)

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        return await self._call(find_task, queue, task_id)

    async def run_now(self, queue: str, task_id: str) -> bool:
        result: bool = await self._call(run_now, queue, task_id)
        return result
