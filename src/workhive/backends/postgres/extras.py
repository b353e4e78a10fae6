"""The smaller capabilities of the Postgres backend: events, cron, counters, DLQ, inspection,
and the key claims and dead letters a composite's transport (RabbitMQ) keeps here.

Split from :mod:`workhive.backends.postgres` to keep modules short. Same rules: one statement
(one round trip) per call where SQL can express it, times from the database clock, driver errors
translated by :meth:`PostgresExtras._conn`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec

from workhive._envelope import Envelope, decode, replay_copy
from workhive.backend import (
    DeadLetter,
    EnqueueResult,
    QueueStats,
    WorkerInfo,
    fan_out,
    topic_matches,
)
from workhive.backends.postgres.settings import PostgresSettings
from workhive.backends.postgres.sql import Statements
from workhive.errors import SerializationError

logger = logging.getLogger(__name__)


class PostgresExtras:
    """Events, cron locks, rate-limit counters, dead letters and inspection over SQL."""

    settings: PostgresSettings
    _sql: Statements

    def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]:
        """A pooled connection with errors translated; provided by the backend."""
        raise NotImplementedError

    async def _enqueue_on(self, con: Any, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Insert (and notify) on ``con``; provided by the backend."""
        raise NotImplementedError

    def _notify_local(self) -> None:
        """Wake this process's idle fetches; provided by the backend."""
        raise NotImplementedError

    async def _housekeep(self) -> None:
        """Sweep expired keys, claims, windows and ticks now and then; provided by the backend.
        Called from the coordination writes too, so a store used only for coordination (a
        composite's) is swept as well as one that enqueues."""
        raise NotImplementedError

    # -- events, cron, counters ------------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        """Persist that ``group`` receives events matching ``pattern`` (idempotent)."""
        async with self._conn("bind") as con:
            await con.execute(self._sql.bind, pattern, group)

    async def publish(self, envelope: Envelope) -> int:
        """Store one copy per bound group in one transaction; returns the copy count.

        Bindings are read inside the same transaction, so a copy is written for every group
        bound before the publish committed.
        """
        async with self._conn("publish") as con, con.transaction():
            groups = [
                g for p, g in await con.fetch(self._sql.bindings)
                if topic_matches(p, envelope.name)
            ]
            copies = fan_out(envelope, groups)
            if copies:
                await self._enqueue_on(con, copies)
        if copies:
            self._notify_local()
        return len(copies)

    async def claim_tick(self, job: str, tick: float) -> bool:
        """True for exactly one caller per ``(job, tick)``: the one whose INSERT went in."""
        async with self._conn("claim_tick") as con:
            won = await con.fetchval(self._sql.claim_tick, job, float(tick)) is not None
        await self._housekeep()
        return won

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        """Fixed window on the database clock; ``retry_after`` is the time to its end."""
        async with self._conn("hit_window") as con:
            allowed, retry_after = await con.fetchrow(
                self._sql.hit_window, key, float(period), int(limit)
            )
        await self._housekeep()
        return (True, 0.0) if allowed else (False, max(float(retry_after), 0.0))

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Token bucket refilled and charged in one statement on the database clock."""
        async with self._conn("take_token") as con:
            allowed, tokens = await con.fetchrow(
                self._sql.take_token, key, float(rate), float(burst)
            )
        return (True, 0.0) if allowed else (False, (1.0 - float(tokens)) / rate)

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Dead letters in the order they died."""
        async with self._conn("dead_letters") as con:
            rows = await con.fetch(self._sql.dead_list, queue, limit, offset)
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-enqueue dead letters as fresh envelopes (new id, attempt 0), like memory.py.

        A dead letter whose bytes are not an envelope cannot be rebuilt: it stays in the
        dead-letter queue and is logged, rather than being lost or failing the whole replay.
        """
        id_list = None if ids is None else list(ids)
        async with self._conn("replay_dead") as con, con.transaction():
            replayed: list[Envelope] = []
            gone: list[int] = []
            for seq, dead_id, body in await con.fetch(self._sql.dead_for_replay, id_list, queue):
                try:
                    env = decode(bytes(body))
                except SerializationError as exc:
                    logger.warning("cannot replay dead letter %s: %s", dead_id, exc)
                    continue
                replayed.append(replay_copy(env))
                gone.append(seq)
            if gone:
                await con.execute(self._sql.dead_delete_seqs, gone)
                await self._enqueue_on(con, replayed)
        if replayed:
            self._notify_local()
        return len(replayed)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Delete dead letters (all of them when both filters are ``None``)."""
        id_list = None if ids is None else list(ids)
        async with self._conn("purge_dead") as con:
            status = await con.execute(self._sql.dead_purge, id_list, queue)
        return int(status.split()[-1])

    # -- coordination for a composite's transport ------------------------------------------

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Own ``key`` unless a live claim holds it (database clock); the owner."""
        async with self._conn("claim_key") as con:
            owner = await con.fetchval(self._sql.claim_key, key, holder,
                                       None if ttl is None else float(ttl))
        await self._housekeep()
        return str(owner)

    async def release_key(self, key: str, holder: str) -> None:
        async with self._conn("release_key") as con:
            await con.execute(self._sql.release_key, key, holder)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store a transport's dead letters beside this backend's own, in order; an id already
        dead stays as it is (a crash between keep and ack keeps the same letter twice)."""
        if not letters:
            return
        async with self._conn("keep_dead") as con:
            await con.execute(self._sql.keep_dead, [d.id for d in letters],
                              [d.queue for d in letters], [d.body for d in letters],
                              [d.reason for d in letters], [float(d.failed_at) for d in letters])

    # -- inspection ------------------------------------------------------------------------

    async def stats(self) -> list[QueueStats]:
        """Per-queue counts on the database clock; an expired lease counts as ready."""
        by_queue: dict[str, QueueStats] = {}

        def get(q: str) -> QueueStats:
            return by_queue.setdefault(q, QueueStats(q))

        async with self._conn("stats") as con:
            for q, ready, delayed, in_flight in await con.fetch(self._sql.stats_jobs):
                stat = get(q)
                stat.ready, stat.delayed, stat.in_flight = ready, delayed, in_flight
            for q, dead in await con.fetch(self._sql.stats_dead):
                get(q).dead = dead
            for q, processed, failed in await con.fetch(self._sql.stats_totals):
                get(q).processed, get(q).failed = int(processed), int(failed)
        return sorted(by_queue.values(), key=lambda s: s.queue)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        async with self._conn("heartbeat") as con:
            await con.execute(self._sql.heartbeat, info.id, float(ttl), msgspec.json.encode(info))

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat has not expired (database clock), by id."""
        async with self._conn("workers") as con:
            rows = await con.fetch(self._sql.workers)
        out = []
        for (info,) in rows:
            try:
                out.append(msgspec.json.decode(bytes(info), type=WorkerInfo))
            except (msgspec.DecodeError, msgspec.ValidationError):
                logger.error("postgres: skipping a worker with a corrupt heartbeat %r",
                             bytes(info)[:100])
        return out

    async def forget_worker(self, worker_id: str) -> None:
        async with self._conn("forget_worker") as con:
            await con.execute(self._sql.forget_worker, worker_id)
