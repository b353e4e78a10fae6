"""The durable ``postgres`` backend: every capability, on one PostgreSQL database via asyncpg.

``postgresql://user[:password]@host:port/db?schema=app`` (see :class:`PostgresSettings`). All
tables live in one schema (default ``workhive``), so several apps share a database and tests
isolate by schema; :meth:`PostgresBackend.open` creates it idempotently under an advisory lock.

Layers: the shared SQL engine (:class:`~workhive.backends._sql.backend.SQLBackend`) does events,
cron, counters, dead letters, inspection, results and the task browser; this module adds the
transport (enqueue, fetch and its waiting, settle, extend), whose statements are in ``queue``,
over the pool and listener of ``database``.

Claims: one ``UPDATE ... WHERE seq IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`` statement
(several queues through a lateral join, in the given order, strictly, like memory/sqlite), so
concurrent workers never get the same row and never wait on each other's rows. Settle, enqueue
and extend are one statement per batch (arrays through ``unnest``).

Clock: the database's (see :mod:`workhive.backends.postgres.queue`). Lease deadlines, windows,
heartbeats and "now" in a claim all come from ``clock_timestamp()`` in SQL; an envelope's eta is
sent as a delay relative to the client's clock and added to the database clock.

Waiting: an idle ``fetch`` does not poll. It LISTENs on ``<schema>_wake`` on a dedicated
connection; enqueue / retry / release / publish / replay ``pg_notify`` it in the same
transaction, so a waiter wakes once the rows are visible. It also wakes at the nearest future
``available_at`` of its queues (an eta or a lease running out), and re-checks every
``poll_interval`` as a safety net in case the listener connection was lost.

Behind a transaction-mode pooler (PgBouncer), give ``pooler=transaction``: prepared statements
are not cached, and LISTEN goes to ``listen_url`` (a direct connection) or, without one, idle
fetches poll every ``poll_interval`` (0.25 s by default). See
:mod:`workhive.backends.postgres.pooling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from workhive._envelope import Envelope
from workhive.backend import Capability, Delivery, EnqueueResult, Features, Settlement
from workhive.backends._sql.backend import SQLBackend
from workhive.backends._sql.engine import run_async
from workhive.backends.postgres.database import PostgresDatabase
from workhive.backends.postgres.settings import PostgresSettings

__all__ = ["PostgresBackend", "PostgresSettings"]

logger = logging.getLogger(__name__)

_CHUNK = 1000  # envelopes per enqueue statement
_MIN_SLEEP = 0.002  # floor for "due now" waits: rows another claim holds locked for a moment


class PostgresBackend(SQLBackend):
    """Durable queue, delays, priorities, leases, DLQ, events, cron, counters, inspection,
    task results and cancel; task history, paused queues and task listing for the dashboard.

    One instance may be shared by many coroutines of one event loop; it holds an asyncpg pool
    plus one LISTEN connection (opened by the first waiting fetch; none in polling mode). Share
    the *database*, not the object, across processes. Who acks: only :meth:`settle`, matching
    the lease token.
    """

    name = "postgres"
    features = Features(frozenset(Capability), lease="timed", results=True, cancel=True)

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._pg = PostgresDatabase(settings)
        self._sql = self._pg.sql
        super().__init__(self._pg)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresBackend:
        """``postgresql://[user[:password]@]host[:port]/db[?schema=app]`` plus options."""
        return cls(PostgresSettings.from_url(url, **options))

    def __repr__(self) -> str:
        return f"PostgresBackend({self.settings.redacted_url!r}, schema={self.settings.schema!r})"

    async def wipe(self) -> None:
        """Drop the whole schema (tests, benchmarks); works on a closed backend too."""
        await self._pg.wipe()

    @contextlib.asynccontextmanager
    async def _conn(self, doing: str) -> AsyncIterator[Any]:
        """A pooled connection (opening the backend on first use), driver errors translated."""
        async with self._pg.conn(doing) as con:
            yield con

    # -- core -----------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes, one statement per 1000; duplicates by key report the holder's id."""
        if not envelopes:
            return []
        results: list[EnqueueResult] = []
        for start in range(0, len(envelopes), _CHUNK):
            async with self._pg.conn("enqueue") as con:
                results += await run_async(con, self._pg.insert(envelopes[start:start + _CHUNK]))
        if results:
            self._pg.woke()
        await self._housekeep()
        return results

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages (queues in order, priority then eta then FIFO).

        Bodies are returned raw; decoding is the worker's job. Cancelling a fetch gives back
        whatever its claim had already leased.
        """
        if not queues or limit <= 0:
            return []
        pg = self._pg
        until = time.monotonic() + max(wait, 0.0)
        generation = pg.generation
        listening = wait > 0 and await pg.ensure_listener()
        while True:
            woken = pg.wake_event()
            claim = asyncio.ensure_future(self._claim(list(queues), limit, lease, wait > 0))
            pg.track(claim)
            try:
                deliveries, due_in = await asyncio.shield(claim)
            except asyncio.CancelledError:
                claim.add_done_callback(self._give_back)
                raise
            if deliveries:
                return deliveries
            remaining = until - time.monotonic()
            if remaining <= 0 or generation != pg.generation:
                return []
            timeout = min(remaining, self.settings.poll_every)
            if due_in is not None:
                timeout = min(timeout, max(due_in, _MIN_SLEEP))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await woken.wait()
            if generation != pg.generation:
                return []
            if wait > 0 and not listening:
                listening = await pg.ensure_listener()

    async def _claim(
        self, queues: list[str], limit: int, lease: float, want_due: bool
    ) -> tuple[list[Delivery], float | None]:
        """Claim from the queues in order, in one statement; when nothing was ready and
        ``want_due``, also return the seconds until the earliest row becomes due."""
        token = secrets.randbits(62) | 1
        async with self._pg.conn("fetch") as con:
            if len(queues) == 1:
                rows = await con.fetch(self._sql.claim, queues[0], limit, token, float(lease))
                out = [Delivery(queues[0], bytes(body), (seq, token)) for seq, body in rows]
            else:
                rows = await con.fetch(self._sql.claim_many, queues, limit, token, float(lease))
                out = [Delivery(q, bytes(body), (seq, token)) for q, seq, body in rows]
            if out or not want_due:
                return out, None
            due = await con.fetchval(self._sql.next_due, queues)
        return out, None if due is None else float(due)

    def _give_back(self, claim: asyncio.Future[tuple[list[Delivery], float | None]]) -> None:
        """A cancelled fetch's claim finished anyway: release its rows now, not at lease end."""
        if claim.cancelled() or claim.exception() is not None:
            return
        deliveries = claim.result()[0]
        if deliveries:
            self._pg.track(asyncio.ensure_future(self._release(deliveries)))

    async def _release(self, deliveries: Sequence[Delivery]) -> None:
        try:
            async with self._pg.conn("release") as con:
                await con.execute(self._sql.release, [d.receipt[0] for d in deliveries],
                                  [d.receipt[1] for d in deliveries])
        except Exception as exc:  # background: nothing to raise to; the lease expires anyway
            logger.warning("could not give back %d cancelled deliveries: %s", len(deliveries), exc)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply a batch in one statement; a settlement whose lease was lost is ignored."""
        if not settlements:
            return
        now = time.time()
        seqs, tokens, actions, bodies, delays, reasons = [], [], [], [], [], []
        for s in settlements:
            seq, token = s.delivery.receipt
            seqs.append(seq)
            tokens.append(token)
            actions.append(s.action)
            bodies.append(s.body if s.action in ("retry", "dead") else None)
            delays.append(s.eta - now if s.action == "retry" else 0.0)
            reasons.append(s.reason)
        async with self._pg.conn("settle") as con:
            requeued = await con.fetchval(self._sql.settle, seqs, tokens, actions, bodies,
                                          delays, reasons, self.settings.channel)
        if requeued:
            self._pg.woke()

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Push still-held leases ``lease`` seconds past the database's now."""
        if not deliveries:
            return
        async with self._pg.conn("extend") as con:
            await con.execute(self._sql.extend, [d.receipt[0] for d in deliveries],
                              [d.receipt[1] for d in deliveries], float(lease))
