"""Task history and paused queues of the ``redis`` backend.

Keys (no hash tag: each is used alone, so they spread over a cluster's nodes)::

    P:history:<minute>   hash   "<queue>\\x1f<task>\\x1f<counter>" -> count, EXPIRE 2 days
    P:paused             set    the paused queues

A flush is one pipeline of ``HINCRBY`` per counter of each bucket (Redis adds, so workers
never overwrite each other) plus one ``EXPIRE`` per minute touched; reading a day is one
pipeline of 1,440 ``HGETALL``. Queue and task names cannot contain the separator ``\\x1f``
(a unit separator no one types), so the field splits back unambiguously.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from workhive.backends.redis.connection import RedisConnection
from workhive.history import MINUTE, RETENTION, Bucket, merge

_SEP = "\x1f"


class RedisHistory:
    """:class:`~workhive.history.SupportsHistory` and :class:`~workhive.pauses.SupportsPause`
    over one :class:`RedisConnection`."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn
        self._paused_key = f"{conn.keys.prefix}:paused"

    def _history_key(self, minute: int) -> str:
        return f"{self._conn.keys.prefix}:history:{minute}"

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        merged = list(merge(buckets).values())
        if not merged:
            return

        async def write(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for b in merged:
                    key = self._history_key(b.minute)
                    for name, count in b.counters().items():
                        if count:
                            pipe.hincrby(key, f"{b.queue}{_SEP}{b.task}{_SEP}{name}", count)
                for minute in {b.minute for b in merged}:
                    pipe.expire(self._history_key(minute), RETENTION)
                await pipe.execute()

        await self._conn.guard(write)

    async def history(self, since: float) -> list[Bucket]:
        first = int(since // MINUTE * MINUTE)
        if first < since:
            first += MINUTE
        first = max(first, int(time.time() - RETENTION) // MINUTE * MINUTE)
        minutes = list(range(first, int(time.time()) + MINUTE, MINUTE))

        async def read(r: Any) -> list[dict[bytes, bytes]]:
            async with r.pipeline(transaction=False) as pipe:
                for minute in minutes:
                    pipe.hgetall(self._history_key(minute))
                found: list[dict[bytes, bytes]] = await pipe.execute()
                return found

        out: list[Bucket] = []
        for minute, fields in zip(minutes, await self._conn.guard(read), strict=True):
            flat: dict[tuple[str, str], dict[str, int]] = {}
            for raw, count in fields.items():
                parts = raw.decode(errors="replace").split(_SEP)
                if len(parts) == 3:
                    flat.setdefault((parts[0], parts[1]), {})[parts[2]] = int(count)
            out += [Bucket.from_counters(minute, q, t, c) for (q, t), c in sorted(flat.items())]
        return out

    async def set_paused(self, queue: str, paused: bool) -> None:
        key = self._paused_key
        if paused:
            await self._conn.guard(lambda r: r.sadd(key, queue))
        else:
            await self._conn.guard(lambda r: r.srem(key, queue))

    async def paused_queues(self) -> set[str]:
        key = self._paused_key
        raw: set[bytes] = await self._conn.guard(lambda r: r.smembers(key))
        return {q.decode(errors="replace") for q in raw}
