"""Listing, finding and hurrying the tasks of a queue in PostgreSQL (the dashboard's task browser).

States follow ``stats`` and the SQLite backend (:mod:`workhive.backends.sqlite.browse`), on the
database clock: *ready* rows are available now (``available_at <= now``, which includes a
lease that ran out: the next claim takes it back), *delayed* rows wait for their eta
(``token = 0``), *in flight* rows are leased (``token <> 0``) until ``available_at``. A page is
in ``available_at, seq`` order, as in SQLite: for ready rows, those enqueued to run at once in
FIFO order, then the others (expired leases, due or hurried delayed rows) by when they became
ready. A page and its total come from one statement, so they agree.

Costs: a page reads every row of the queue in that state and sorts them (there is no index in
that order, so enqueues and claims pay nothing for the browser): about 0.1 s for a page of
100,000 ready tasks on the 2-core test host, 10 ms for 10,000. A find by id scans the queue's
rows, as ``cancel`` does. Both are for people clicking, not for code.

*Run now* is one ``UPDATE`` that sets ``available_at`` to the database's now only while the row
is still delayed and not leased, and notifies the queue (``pg_notify``) in the same statement,
so idle workers wake. When two calls (or a call and a claim) meet on one row, the later one
waits for the row lock and re-checks the committed row: it finds it ready (or leased) and
reports False, and a lease taken meanwhile stands. The conditions read the clock per row rather
than once per statement, so that re-check compares against the time it happens. Every call is
one statement, so it works unchanged through a transaction pooler.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from workhive.backends.postgres.settings import PostgresSettings
from workhive.backends.postgres.sql import NOW
from workhive.browse import STATES, QueuedTask, TaskState

_NOW_T = "(SELECT now FROM t)"
_WHERE: dict[TaskState, str] = {
    "ready": f"available_at <= {_NOW_T}",
    "delayed": f"token = 0 AND available_at > {_NOW_T}",
    "in_flight": f"token <> 0 AND available_at > {_NOW_T}",
}

# ($1 queue, $2 limit, $3 offset) -> (total, id, available_at, body) per row of the page; one
# row of (total, NULL...) when the page is empty. One scan keeps the narrow (seq, available_at)
# of every row in the state; the count and the sort read that, and only the page's rows are
# read again for their bodies (about 3 times faster than sorting whole rows twice).
_BROWSE = f"""
WITH t AS MATERIALIZED (SELECT {NOW} AS now),
m AS MATERIALIZED (SELECT seq, available_at FROM {{s}}.jobs WHERE queue = $1 AND {{where}}),
n AS (SELECT count(*) AS total FROM m),
p AS (SELECT seq, available_at FROM m ORDER BY available_at, seq LIMIT $2 OFFSET $3)
SELECT n.total, j.id, p.available_at, j.body
FROM n LEFT JOIN (p JOIN {{s}}.jobs j USING (seq)) ON true
ORDER BY p.available_at, p.seq
"""

FIND_TASK = f"""
SELECT j.token, j.available_at, j.body, t.now
FROM {{s}}.jobs j, (SELECT {NOW} AS now) t
WHERE j.queue = $1 AND j.id = $2 ORDER BY j.seq LIMIT 1
"""

# ($1 queue, $2 id, $3 channel) -> 1 when a delayed row became ready (and the queue was
# notified), else 0. NOW is evaluated per row on purpose (see the module docstring).
RUN_NOW = f"""
WITH moved AS (
    UPDATE {{s}}.jobs SET available_at = {NOW}
    WHERE queue = $1 AND id = $2 AND token = 0 AND available_at > {NOW}
    RETURNING queue),
woken AS (SELECT pg_notify($3, left(queue, 200)) FROM (SELECT DISTINCT queue FROM moved) m)
SELECT count(*) FROM woken
"""

_BIG = 2**62  # limits and offsets beyond any table, kept inside PostgreSQL's bigint


class BrowseStatements:
    """The statements above, formatted for one schema (one listing per state)."""

    def __init__(self, schema: str) -> None:
        self.browse = {state: _BROWSE.replace("{where}", where).replace("{s}", schema)
                       for state, where in _WHERE.items()}
        self.find_task = FIND_TASK.replace("{s}", schema)
        self.run_now = RUN_NOW.replace("{s}", schema)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return min(value, _BIG)


class PostgresBrowse:
    """:class:`~workhive.browse.SupportsBrowse` for
    :class:`~workhive.backends.postgres.PostgresBackend` (a mixin; deleting a waiting task is
    its ``cancel``)."""

    _browse_sql: BrowseStatements
    settings: PostgresSettings

    def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]:
        """A pooled connection with errors translated; provided by the backend."""
        raise NotImplementedError

    def _notify_local(self) -> None:
        """Wake this process's idle fetches; provided by the backend."""
        raise NotImplementedError

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        """A page of the queue's tasks in ``state`` (see the module docstring for the order)
        and how many there are."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        limit, offset = _count("limit", limit), _count("offset", offset)
        async with self._conn("browse") as con:
            rows = await con.fetch(self._browse_sql.browse[state], queue, limit, offset)
        total = int(rows[0][0]) if rows else 0
        tasks = [QueuedTask(str(task_id), queue, state, bytes(body),
                            0.0 if state == "ready" else float(at))
                 for _, task_id, at, body in rows if task_id is not None]
        return tasks, total

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        """The task with this id in this queue, whatever its state; None when gone."""
        async with self._conn("find_task") as con:
            row = await con.fetchrow(self._browse_sql.find_task, queue, task_id)
        if row is None:
            return None
        token, at, body, now = row
        state: TaskState = "ready" if at <= now else "delayed" if token == 0 else "in_flight"
        return QueuedTask(task_id, queue, state, bytes(body),
                          0.0 if state == "ready" else float(at))

    async def run_now(self, queue: str, task_id: str) -> bool:
        """Make a delayed task ready now (behind the tasks already ready at its priority);
        False when it is not delayed any more, or is not in this queue."""
        async with self._conn("run_now") as con:
            moved = await con.fetchval(self._browse_sql.run_now, queue, task_id,
                                       self.settings.channel)
        if moved:
            self._notify_local()
        return bool(moved)
