"""The durable ``postgres`` backend: every capability, on one PostgreSQL database via asyncpg.

``postgresql://user[:password]@host:port/db?schema=app`` (see :class:`PostgresSettings`). All
tables live in one schema (default ``workhive``), so several apps share a database and tests
isolate by schema; :meth:`PostgresBackend.open` creates it idempotently under an advisory lock.

Claims: one ``UPDATE ... WHERE seq IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`` statement
(several queues through a lateral join, in the given order, strictly, like memory/sqlite), so
concurrent workers never get the same row and never wait on each other's rows. Settle, enqueue
and extend are one statement per batch (arrays through ``unnest``).

Clock: the database's (see :mod:`workhive.backends.postgres.sql`). Lease deadlines, windows,
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
from collections.abc import Sequence
from typing import Any

from workhive._envelope import Envelope, encode
from workhive.backend import Capability, Delivery, EnqueueResult, Features, Settlement
from workhive.backends.postgres.browse import PostgresBrowse
from workhive.backends.postgres.connection import PostgresConnection
from workhive.backends.postgres.extras import PostgresExtras
from workhive.backends.postgres.history import PostgresHistory
from workhive.backends.postgres.pauses import PostgresPauses
from workhive.backends.postgres.results import PostgresResults
from workhive.backends.postgres.settings import PostgresSettings

__all__ = ["PostgresBackend", "PostgresSettings"]

logger = logging.getLogger(__name__)

_CHUNK = 1000  # envelopes per enqueue statement
_MIN_SLEEP = 0.002  # floor for "due now" waits: rows another claim holds locked for a moment
_HOUSEKEEP_EVERY = 300.0


def _keyed(envelope: Envelope) -> bool:
    """Whether storing it must look at a unique or idempotency key (the SQL function)."""
    return envelope.idempotency_key is not None or envelope.unique_key is not None


class PostgresBackend(PostgresConnection, PostgresExtras, PostgresResults, PostgresHistory,
                      PostgresPauses, PostgresBrowse):
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
        super().__init__(settings)
        self._next_housekeeping = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresBackend:
        """``postgresql://[user[:password]@]host[:port]/db[?schema=app]`` plus options."""
        return cls(PostgresSettings.from_url(url, **options))

    def __repr__(self) -> str:
        return f"PostgresBackend({self.settings.redacted_url!r}, schema={self.settings.schema!r})"

    async def __aenter__(self) -> PostgresBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- core -----------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes, one statement per 1000; duplicates by key report the holder's id."""
        if not envelopes:
            return []
        results: list[EnqueueResult] = []
        for start in range(0, len(envelopes), _CHUNK):
            async with self._conn("enqueue") as con:
                results += await self._enqueue_on(con, envelopes[start : start + _CHUNK])
        if results:
            self._notify_local()
        await self._housekeep()
        return results

    async def _enqueue_on(self, con: Any, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Insert and ``pg_notify`` in one statement (keyed batches through the SQL function)."""
        if len(envelopes) == 1 and not _keyed(envelopes[0]):
            return await self._enqueue_one(con, envelopes[0])
        now = time.time()
        ids = [e.id for e in envelopes]
        queues = [e.queue for e in envelopes]
        prios = [e.priority for e in envelopes]
        delays = [0.0 if e.eta is None else e.eta - now for e in envelopes]
        bodies = [encode(e) for e in envelopes]
        if not any(_keyed(e) for e in envelopes):
            await con.fetchval(self._sql.enqueue, ids, queues, prios, delays, bodies,
                               self.settings.channel)
            return [EnqueueResult(i) for i in ids]
        rows = await con.fetch(
            self._sql.enqueue_keyed, ids, queues, prios, delays,
            [e.unique_key for e in envelopes], [e.idempotency_key for e in envelopes], bodies,
            self.settings.idempotency_ttl, self.settings.channel,
        )
        return [EnqueueResult(r[0], duplicate=r[1]) for r in rows]

    async def _enqueue_one(self, con: Any, e: Envelope) -> list[EnqueueResult]:
        """One envelope without keys: a plain ``INSERT`` and its ``pg_notify`` in one statement,
        which autocommit makes one round trip (no arrays to build and unpack)."""
        delay = 0.0 if e.eta is None else e.eta - time.time()
        await con.execute(self._sql.enqueue_one, e.id, e.queue, e.priority, delay, encode(e),
                          self.settings.channel)
        return [EnqueueResult(e.id)]

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages (queues in order, priority then eta then FIFO).

        Bodies are returned raw; decoding is the worker's job. Cancelling a fetch gives back
        whatever its claim had already leased.
        """
        if not queues or limit <= 0:
            return []
        until = time.monotonic() + max(wait, 0.0)
        generation = self._generation
        listening = wait > 0 and await self._ensure_listener()
        while True:
            woken = self._wake_event()
            claim = asyncio.ensure_future(self._claim(list(queues), limit, lease, wait > 0))
            self._track(claim)
            try:
                deliveries, due_in = await asyncio.shield(claim)
            except asyncio.CancelledError:
                claim.add_done_callback(self._give_back)
                raise
            if deliveries:
                return deliveries
            remaining = until - time.monotonic()
            if remaining <= 0 or generation != self._generation:
                return []
            timeout = min(remaining, self.settings.poll_every)
            if due_in is not None:
                timeout = min(timeout, max(due_in, _MIN_SLEEP))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await woken.wait()
            if generation != self._generation:
                return []
            if wait > 0 and not listening:
                listening = await self._ensure_listener()

    async def _claim(
        self, queues: list[str], limit: int, lease: float, want_due: bool
    ) -> tuple[list[Delivery], float | None]:
        """Claim from the queues in order, in one statement; when nothing was ready and
        ``want_due``, also return the seconds until the earliest row becomes due."""
        token = secrets.randbits(62) | 1
        async with self._conn("fetch") as con:
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
            self._track(asyncio.ensure_future(self._release(deliveries)))

    async def _release(self, deliveries: Sequence[Delivery]) -> None:
        try:
            async with self._conn("release") as con:
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
        async with self._conn("settle") as con:
            requeued = await con.fetchval(self._sql.settle, seqs, tokens, actions, bodies,
                                          delays, reasons, self.settings.channel)
        if requeued:
            self._notify_local()

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Push still-held leases ``lease`` seconds past the database's now."""
        if not deliveries:
            return
        async with self._conn("extend") as con:
            await con.execute(self._sql.extend, [d.receipt[0] for d in deliveries],
                              [d.receipt[1] for d in deliveries], float(lease))

    async def _housekeep(self) -> None:
        """Every few minutes per client: drop expired keys/claims/windows/ticks/results/cancel
        flags and history older than two days, compact totals.

        Only one client at a time does it (try-lock); failures are logged, never raised, since
        the caller's own write already succeeded.
        """
        if time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + _HOUSEKEEP_EVERY
        try:
            async with self._conn("housekeeping") as con, con.transaction():
                if await con.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))",
                                      f"workhive:housekeeping:{self.settings.schema}"):
                    for statement in self._sql.housekeeping:
                        await con.execute(statement)
        except Exception as exc:
            logger.warning("postgres housekeeping failed: %s", exc)
