"""Queue statistics and worker heartbeats of the ``redis`` backend (``workhive status``).

Statistics read every queue in the registry (``{P}:queues``) in one atomic script per slot (on
one Redis: one read for every queue). A heartbeat is a key Redis itself expires
(``P:w:<id>``) plus an index set (``P:workers``); listing the workers prunes ids whose key has
expired, so a killed worker disappears without any sweep.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from workhive.backend import QueueStats, WorkerInfo
from workhive.backends.redis import lua
from workhive.backends.redis.connection import RedisConnection, Script

logger = logging.getLogger(__name__)

_STATS = Script(lua.STATS)


class RedisInspection:
    """:class:`~workhive.backend.SupportsInspect` over one :class:`RedisConnection`."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def stats(self) -> list[QueueStats]:
        """One row per queue ever used under this prefix, sorted by name; one atomic read per
        slot (on one Redis: one read for every queue)."""
        conn = self._conn

        async def read(qs: list[str]) -> list[int]:
            keys, args = conn.queue_call(qs)
            result: list[int] = await conn.run(_STATS, keys, args)
            return result

        rows = []
        for qs, flat in await conn.per_slot(await conn.registered_queues(), read):
            for n, q in enumerate(qs):
                rows.append(QueueStats(q, *(int(v) for v in flat[n * 6 : n * 6 + 6])))
        return sorted(rows, key=lambda s: s.queue)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Store ``info`` under a key that Redis itself expires after ``ttl`` seconds.

        The key and the index are single keys of their own slots on a cluster (written one
        after the other there: a beat whose index write fails is listed at the next beat)."""
        layout = self._conn.keys
        key = layout.worker(info.id)
        body = msgspec.msgpack.encode(info)
        ttl_ms = max(1, int(ttl * 1000))

        async def write(r: Any) -> None:
            if layout.cluster:
                await r.set(key, body, px=ttl_ms)
                await r.sadd(layout.workers, info.id)
                return
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(key, body, px=ttl_ms)
                pipe.sadd(layout.workers, info.id)
                await pipe.execute()

        await self._conn.guard(write)

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired; expired ids are pruned from the index."""
        conn, layout = self._conn, self._conn.keys
        index = layout.workers
        members: set[Any] = await conn.guard(lambda r: r.smembers(index))
        ids: list[bytes] = sorted(members)
        if not ids:
            return []
        keys = [layout.prefix.encode() + b":w:" + i for i in ids]
        if layout.cluster:  # one slot per heartbeat key
            bodies: list[Any] = await conn.guard(lambda r: r.mget_nonatomic(keys))
        else:
            bodies = await conn.guard(lambda r: r.mget(keys))
        gone = [i for i, b in zip(ids, bodies, strict=True) if b is None]
        if gone:
            await conn.guard(lambda r: r.srem(index, *gone))
        out = []
        for worker_id, body in zip(ids, bodies, strict=True):
            if body is None:
                continue
            try:
                out.append(msgspec.msgpack.decode(body, type=WorkerInfo))
            except (msgspec.DecodeError, msgspec.ValidationError):
                logger.error("redis: skipping worker %r with a corrupt heartbeat", worker_id[:100])
        return out

    async def forget_worker(self, worker_id: str) -> None:
        layout = self._conn.keys
        key = layout.worker(worker_id)

        async def drop(r: Any) -> None:
            if layout.cluster:
                await r.srem(layout.workers, worker_id)
                await r.delete(key)
                return
            async with r.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.srem(layout.workers, worker_id)
                await pipe.execute()

        await self._conn.guard(drop)
