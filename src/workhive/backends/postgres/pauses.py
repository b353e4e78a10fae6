"""Paused queues of the ``postgres`` backend (table ``paused``: one row per paused queue).

The dashboard pauses a queue and workers on other hosts stop fetching it, so the set lives in
the database (:mod:`workhive.pauses`). Pausing inserts the row (a second pause finds it there),
resuming deletes it; workers read the whole table about once a second. Each call is one
statement, so it works unchanged through a transaction pooler. The table is created with the
rest of the layout (:mod:`workhive.backends.postgres.sql`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from workhive.errors import ValidationError

PAUSE = "INSERT INTO {s}.paused (queue) VALUES ($1) ON CONFLICT (queue) DO NOTHING"
RESUME = "DELETE FROM {s}.paused WHERE queue = $1"
PAUSED = "SELECT queue FROM {s}.paused"


class PauseStatements:
    """The statements above, formatted for one schema."""

    def __init__(self, schema: str) -> None:
        self.pause = PAUSE.replace("{s}", schema)
        self.resume = RESUME.replace("{s}", schema)
        self.paused = PAUSED.replace("{s}", schema)


class PostgresPauses:
    """:class:`~workhive.pauses.SupportsPause` for
    :class:`~workhive.backends.postgres.PostgresBackend` (a mixin)."""

    _pause_sql: PauseStatements

    def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]:
        """A pooled connection with errors translated; provided by the backend."""
        raise NotImplementedError

    async def set_paused(self, queue: str, paused: bool) -> None:
        """Pause (``True``) or resume (``False``) ``queue``; idempotent."""
        if not isinstance(queue, str) or not queue:
            raise ValidationError(f"a queue to pause or resume must be a non-empty string, "
                                  f"got {queue!r}")
        async with self._conn("set_paused") as con:
            await con.execute(self._pause_sql.pause if paused else self._pause_sql.resume,
                              queue)

    async def paused_queues(self) -> set[str]:
        """The queues paused right now."""
        async with self._conn("paused_queues") as con:
            rows = await con.fetch(self._pause_sql.paused)
        return {str(r[0]) for r in rows}
