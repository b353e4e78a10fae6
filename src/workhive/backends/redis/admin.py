"""Dead letters, queue statistics and worker heartbeats of the ``redis`` backend.

These are the operator-facing calls (``workhive dlq``, ``workhive status``): rare, so they favour
clarity over round trips, but every change of state is still one atomic script per slot.

Dead letters live with their queue (``{P:Q}:dead...``), so a settle that dead-letters stays one
script on one slot. Calls that span queues read the queue registry (``{P}:queues``) and fan out
per slot: a listing of every queue merges the per-queue indexes by time, then reads the bodies
of the page it kept.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from workhive._envelope import decode, encode, replay_copy
from workhive.backend import DeadLetter, QueueStats, WorkerInfo
from workhive.backends.redis import lua
from workhive.backends.redis.base import RedisBase, Script
from workhive.backends.redis.keys import group

logger = logging.getLogger(__name__)
T = TypeVar("T")

_DEAD_RANGE = Script(lua.DEAD_RANGE)
_DEAD_GET = Script(lua.DEAD_GET)
_REPLAY = Script(lua.REPLAY)
_PURGE = Script(lua.PURGE)
_STATS = Script(lua.STATS)
_CHUNK = 500


def _parse_info(dead_id: bytes, body: bytes, info: bytes) -> DeadLetter | None:
    """``info`` is ``"failed_at|len(queue)|" + queue + reason`` (queue and reason are free text).

    A corrupt record is logged and skipped, so one bad entry never hides the others.
    """
    try:
        failed_at, qlen, rest = info.split(b"|", 2)
        n = int(qlen)
        return DeadLetter(dead_id.decode(), rest[:n].decode(), body,
                          rest[n:].decode(errors="replace"), float(failed_at))
    except ValueError:  # also UnicodeDecodeError
        logger.error("redis: skipping dead letter %r with a corrupt info record %r",
                     dead_id[:100], info[:100])
        return None


class RedisAdmin(RedisBase):
    """Dead-letter, inspection and heartbeat half of the ``redis`` backend."""

    async def _queues(self) -> list[str]:
        """Every queue in the registry, sorted."""
        raw: set[bytes] = await self._guard(lambda r: r.smembers(self._keys.queues))
        return sorted(q.decode(errors="replace") for q in raw)

    async def _per_slot(
        self, queues: Sequence[str], call: Callable[[list[str]], Awaitable[T]]
    ) -> list[tuple[list[str], T]]:
        """``call`` once per slot's queues (concurrently); results in slot order."""
        parts = [qs for _, qs in group(self._keys, queues, str)]
        results = await asyncio.gather(*(call(qs) for qs in parts))
        return list(zip(parts, results, strict=True))

    def _call(self, queues: Sequence[str]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        for q in queues:
            keys += self._keys.bundle(q)
        return keys, [self._now(), len(queues), *queues]

    # -- dead letters -----------------------------------------------------------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Oldest first; ``queue`` filters."""
        if limit <= 0:
            return []
        queues = [queue] if queue is not None else await self._queues()
        last = offset + limit - 1

        async def ranges(qs: list[str]) -> list[list[bytes]]:
            keys, args = self._call(qs)
            result: list[list[bytes]] = await self._run(_DEAD_RANGE, keys, [*args, 0, last])
            return result

        heads: list[list[tuple[float, bytes, str]]] = []
        for qs, per_queue in await self._per_slot(queues, ranges):
            for q, flat in zip(qs, per_queue, strict=True):
                heads.append([(_score(s), i, q) for i, s in zip(flat[0::2], flat[1::2],
                                                                strict=True)])
        page = list(heapq.merge(*heads))[offset : offset + limit]
        return await self._letters([(q, i) for _, i, q in page])

    async def _letters(self, wanted: Sequence[tuple[str, bytes]]) -> list[DeadLetter]:
        """Read the letters ``(queue, id)`` in the given order; gone ones are left out."""
        found: dict[tuple[str, bytes], DeadLetter] = {}

        async def read(qs: list[str]) -> None:
            index = {q: i for i, q in enumerate(qs, 1)}
            mine = [(q, i) for q, i in wanted if q in index]
            for start in range(0, len(mine), _CHUNK):
                chunk = mine[start : start + _CHUNK]
                keys, args = self._call(qs)
                for q, i in chunk:
                    args += (index[q], i)
                raw = await self._run(_DEAD_GET, keys, args)
                for (q, i), body, info in zip(chunk, raw[0::2], raw[1::2], strict=True):
                    if body is not None and info is not None:
                        letter = _parse_info(i, body, info)
                        if letter is not None:
                            found[(q, i)] = letter

        await self._per_slot(list(dict.fromkeys(q for q, _ in wanted)), read)
        return [found[w] for w in wanted if w in found]

    async def _select_dead(self, ids: Sequence[str] | None, queue: str | None) -> list[DeadLetter]:
        if ids is None:
            return await self.dead_letters(queue, limit=1 << 30)
        wanted = [i.encode() for i in dict.fromkeys(ids)]
        if not wanted:
            return []
        queues = [queue] if queue is not None else await self._queues()
        return await self._letters([(q, i) for q in queues for i in wanted])

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-enqueue as *fresh* envelopes (new id, attempt 0, empty history), as memory does.

        Removing the dead letter and storing its replacement happen in one script per chunk
        (a queue's letters and messages share a slot), so a crash in between can neither lose
        nor duplicate a replay.
        """
        rows = await self._select_dead(ids, queue)

        async def replay(qs: list[str]) -> int:
            index = {q: i for i, q in enumerate(qs, 1)}
            mine = [d for d in rows if d.queue in index]
            count = 0
            for start in range(0, len(mine), _CHUNK):
                keys, args = self._call(qs)
                for dead in mine[start : start + _CHUNK]:
                    fresh = replay_copy(decode(dead.body))
                    args += (index[dead.queue], dead.id, fresh.id, str(fresh.priority),
                             encode(fresh))
                count += int(await self._run(_REPLAY, keys, args))
            return count

        done = await self._per_slot(list(dict.fromkeys(d.queue for d in rows)), replay)
        return sum(n for _, n in done)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        rows = await self._select_dead(ids, queue)

        async def purge(qs: list[str]) -> int:
            index = {q: i for i, q in enumerate(qs, 1)}
            mine = [d for d in rows if d.queue in index]
            count = 0
            for start in range(0, len(mine), _CHUNK):
                keys, args = self._call(qs)
                for dead in mine[start : start + _CHUNK]:
                    args += (index[dead.queue], dead.id)
                count += int(await self._run(_PURGE, keys, args))
            return count

        done = await self._per_slot(list(dict.fromkeys(d.queue for d in rows)), purge)
        return sum(n for _, n in done)

    # -- inspection -------------------------------------------------------------------

    async def stats(self) -> list[QueueStats]:
        """One row per queue ever used under this prefix, sorted by name; one atomic read per
        slot (on one Redis: one read for every queue)."""

        async def read(qs: list[str]) -> list[int]:
            keys, args = self._call(qs)
            result: list[int] = await self._run(_STATS, keys, args)
            return result

        rows = []
        for qs, flat in await self._per_slot(await self._queues(), read):
            for n, q in enumerate(qs):
                rows.append(QueueStats(q, *(int(v) for v in flat[n * 6 : n * 6 + 6])))
        return sorted(rows, key=lambda s: s.queue)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Store ``info`` under a key that Redis itself expires after ``ttl`` seconds.

        The key and the index are single keys of their own slots on a cluster (written one
        after the other there: a beat whose index write fails is listed at the next beat)."""
        key = self._keys.worker(info.id)
        body = msgspec.msgpack.encode(info)
        ttl_ms = max(1, int(ttl * 1000))

        async def write(r: Any) -> None:
            if self._keys.cluster:
                await r.set(key, body, px=ttl_ms)
                await r.sadd(self._keys.workers, info.id)
                return
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(key, body, px=ttl_ms)
                pipe.sadd(self._keys.workers, info.id)
                await pipe.execute()

        await self._guard(write)

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired; expired ids are pruned from the index."""
        index = self._keys.workers
        members: set[Any] = await self._guard(lambda r: r.smembers(index))
        ids: list[bytes] = sorted(members)
        if not ids:
            return []
        keys = [self._p.encode() + b":w:" + i for i in ids]
        if self._keys.cluster:  # one slot per heartbeat key
            bodies: list[Any] = await self._guard(lambda r: r.mget_nonatomic(keys))
        else:
            bodies = await self._guard(lambda r: r.mget(keys))
        gone = [i for i, b in zip(ids, bodies, strict=True) if b is None]
        if gone:
            await self._guard(lambda r: r.srem(index, *gone))
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
        key = self._keys.worker(worker_id)

        async def drop(r: Any) -> None:
            if self._keys.cluster:
                await r.srem(self._keys.workers, worker_id)
                await r.delete(key)
                return
            async with r.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.srem(self._keys.workers, worker_id)
                await pipe.execute()

        await self._guard(drop)


def _score(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0
