"""Dead letters, queue statistics and worker heartbeats of the ``redis`` backend.

These are the operator-facing calls (``workhive dlq``, ``workhive status``): rare, so they favour
clarity over round trips, but every change of state is still one atomic script.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec

from workhive._envelope import decode, encode, replay_copy
from workhive.backend import DeadLetter, QueueStats, WorkerInfo
from workhive.backends.redis import lua
from workhive.backends.redis.base import RedisBase, Script

logger = logging.getLogger(__name__)

_DEAD_LIST = Script(lua.DEAD_LIST)
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

    # -- dead letters -----------------------------------------------------------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Oldest first; ``queue`` filters."""
        if limit <= 0:
            return []
        raw = await self._run(_DEAD_LIST, [self._p, self._now(), queue or "", offset, limit])
        return [
            letter
            for i, b, info in zip(raw[0::3], raw[1::3], raw[2::3], strict=True)
            if (letter := _parse_info(i, b, info)) is not None
        ]

    async def _select_dead(self, ids: Sequence[str] | None, queue: str | None) -> list[DeadLetter]:
        if ids is None:
            return await self.dead_letters(queue, limit=1 << 30)
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        bodies: list[Any] = await self._guard(lambda r: r.hmget(f"{self._p}:dead:body", wanted))
        infos: list[Any] = await self._guard(lambda r: r.hmget(f"{self._p}:dead:info", wanted))
        rows = [
            _parse_info(i.encode(), b, info)
            for i, b, info in zip(wanted, bodies, infos, strict=True)
            if b is not None and info is not None
        ]
        return [d for d in rows if d is not None and (queue is None or d.queue == queue)]

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-enqueue as *fresh* envelopes (new id, attempt 0, empty history), as memory does.

        Removing the dead letter and storing its replacement happen in one script per chunk, so
        a crash in between can neither lose nor duplicate a replay.
        """
        count = 0
        rows = await self._select_dead(ids, queue)
        for start in range(0, len(rows), _CHUNK):
            args: list[Any] = [self._p, self._now()]
            for dead in rows[start : start + _CHUNK]:
                env = decode(dead.body)
                fresh = replay_copy(env)
                args += (dead.id, dead.queue, fresh.id, str(fresh.priority), encode(fresh))
            count += int(await self._run(_REPLAY, args))
        return count

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        count = 0
        rows = await self._select_dead(ids, queue)
        for start in range(0, len(rows), _CHUNK):
            args: list[Any] = [self._p, self._now()]
            for dead in rows[start : start + _CHUNK]:
                args += (dead.id, dead.queue)
            count += int(await self._run(_PURGE, args))
        return count

    # -- inspection -------------------------------------------------------------------

    async def stats(self) -> list[QueueStats]:
        """One row per queue ever used under this prefix, sorted by name; one atomic read."""
        raw = await self._run(_STATS, [self._p, self._now()])
        rows = [
            QueueStats(raw[i].decode(errors="replace"), *(int(v) for v in raw[i + 1 : i + 7]))
            for i in range(0, len(raw), 7)
        ]
        return sorted(rows, key=lambda s: s.queue)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Store ``info`` under a key that Redis itself expires after ``ttl`` seconds."""
        key = f"{self._p}:w:{info.id}"
        body = msgspec.msgpack.encode(info)
        ttl_ms = max(1, int(ttl * 1000))

        async def write(r: Any) -> None:
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(key, body, px=ttl_ms)
                pipe.sadd(f"{self._p}:workers", info.id)
                await pipe.execute()

        await self._guard(write)

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired; expired ids are pruned from the index."""
        index = f"{self._p}:workers"
        members: set[Any] = await self._guard(lambda r: r.smembers(index))
        ids: list[bytes] = sorted(members)
        if not ids:
            return []
        keys = [self._p.encode() + b":w:" + i for i in ids]
        bodies: list[Any] = await self._guard(lambda r: r.mget(keys))
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
        async def drop(r: Any) -> None:
            async with r.pipeline(transaction=True) as pipe:
                pipe.delete(f"{self._p}:w:{worker_id}")
                pipe.srem(f"{self._p}:workers", worker_id)
                await pipe.execute()

        await self._guard(drop)
