"""Task results and cancel requests of the ``postgres`` backend (tables ``results``, ``cancels``).

A result record is opaque bytes (:mod:`workhive.results` encodes it) under the task id, with an
expiry on the database clock: reads ignore expired rows, housekeeping deletes them (the tables
themselves are created with the rest of the layout, in :mod:`workhive.backends.postgres.sql`).

A cancel is one statement: it deletes the task's row of ``jobs`` if it is *waiting*
(``token = 0``: ready, delayed or backing off before a retry; never leased), which also frees
its unique key, since the key lives on that row. A leased row is left alone and the id is
flagged in ``cancels`` instead; the worker running it polls :meth:`PostgresResults.cancelled`.
A claim that holds the row locked at that moment makes the delete wait for it and then see the
row leased, so a task is either deleted before any worker got it or flagged, never lost.

Cancel finds the row by ``jobs.id``, which has no index: cancelling scans the jobs table. That
keeps every enqueue as cheap as before, for a rare operation. Every call is one statement, so
nothing depends on the session (the same through a transaction pooler).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from workhive.backends.postgres.sql import NOW
from workhive.errors import ValidationError

STORE_RESULT = f"""
INSERT INTO {{s}}.results (id, expires_at, record) VALUES ($1, {NOW} + $2::float8, $3)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, record = excluded.record
"""

GET_RESULT = f"SELECT record FROM {{s}}.results WHERE id = $1 AND expires_at > {NOW}"

# Delete the waiting row, or (nothing deleted) flag the id for ``$2`` seconds; the number of
# rows deleted. The flag reads ``gone`` through RETURNING, as one statement sees one snapshot.
CANCEL = f"""
WITH gone AS (DELETE FROM {{s}}.jobs WHERE id = $1 AND token = 0 RETURNING 1),
flag AS (
    INSERT INTO {{s}}.cancels (id, expires_at)
    SELECT $1, {NOW} + $2::float8 WHERE NOT EXISTS (SELECT 1 FROM gone)
    ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at)
SELECT count(*) FROM gone
"""

CANCELLED = f"SELECT id FROM {{s}}.cancels WHERE id = ANY($1::text[]) AND expires_at > {NOW}"


def _seconds(ttl: float, what: str) -> float:
    """``ttl`` as float8, refused unless finite and > 0: in SQL a NaN expiry would compare as
    later than every time, so the row would never expire nor be swept."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or \
            not math.isfinite(ttl) or ttl <= 0:
        raise ValidationError(f"the ttl of {what} must be a finite number of seconds > 0, "
                              f"got {ttl!r}")
    return float(ttl)


class ResultStatements:
    """The statements above, formatted for one schema."""

    def __init__(self, schema: str) -> None:
        self.store_result = STORE_RESULT.replace("{s}", schema)
        self.get_result = GET_RESULT.replace("{s}", schema)
        self.cancel = CANCEL.replace("{s}", schema)
        self.cancelled = CANCELLED.replace("{s}", schema)


class PostgresResults:
    """:class:`~workhive.backend.SupportsResults` and :class:`~workhive.backend.SupportsCancel`
    for :class:`~workhive.backends.postgres.PostgresBackend` (a mixin)."""

    _results_sql: ResultStatements

    def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]:
        """A pooled connection with errors translated; provided by the backend."""
        raise NotImplementedError

    async def _housekeep(self) -> None:
        """Sweep expired rows now and then; provided by the backend. Called after writes here
        too, so a store that only keeps a composite's results is swept as well."""
        raise NotImplementedError

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        """Write (or overwrite) the record, expiring ``ttl`` s from the database's now."""
        seconds = _seconds(ttl, f"the result of task {task_id}")
        async with self._conn("store_result") as con:
            await con.execute(self._results_sql.store_result, task_id, seconds, record)
        await self._housekeep()

    async def get_result(self, task_id: str) -> bytes | None:
        async with self._conn("get_result") as con:
            record = await con.fetchval(self._results_sql.get_result, task_id)
        return None if record is None else bytes(record)

    async def cancel(self, task_id: str, ttl: float) -> bool:
        """True when the task was waiting and is deleted; else flagged for ``ttl`` s."""
        seconds = _seconds(ttl, f"the cancel of task {task_id}")
        async with self._conn("cancel") as con:
            deleted = await con.fetchval(self._results_sql.cancel, task_id, seconds)
        await self._housekeep()
        return bool(deleted)

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        async with self._conn("cancelled") as con:
            rows = await con.fetch(self._results_sql.cancelled, list(task_ids))
        return {str(row[0]) for row in rows}
