"""What one benchmark task does: nothing (``noop``, the default) or one Redis ``INCR``
(``redis-incr``).

Why: a no-op drain measures only the queue machinery; comparisons with other frameworks give
each task one small real I/O instead. The same :class:`Work` runs in the workhive worker (the
``bench:incr`` task) and in every raw loop, all on one counter key, so the count at the end
proves every task did its work exactly as often as it was handled. The Redis server comes from
``$WORKHIVE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); the key from
``$BENCH_WORK_KEY`` in the worker process.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

WORKS = ("noop", "redis-incr")
REDIS_URL = os.environ.get("WORKHIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY_ENV = "BENCH_WORK_KEY"


def check(kind: str) -> str:
    if kind not in WORKS:
        raise SystemExit(f"unknown --work {kind!r}; expected one of {', '.join(WORKS)}")
    return kind


def new_key() -> str:
    return f"bench:work:{uuid.uuid4().hex}"


POOL = 100  # redis-py's default connection limit for asyncio clients


class Work:
    """``await work()`` once per handled message (asyncio loops). One client for the process:
    concurrent calls take connections from its pool, at most :data:`POOL`, and wait for a free
    one beyond that (redis-py's default pool raises "Too many connections" instead, which would
    turn a busy worker's tasks into failures)."""

    def __init__(self, kind: str, key: str | None = None) -> None:
        self.kind, self.key = check(kind), key or new_key()
        self._client: Any = None
        self._pool: Any = None
        if kind == "redis-incr":
            import redis.asyncio as aredis

            self._pool = aredis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=POOL)
            self._client = aredis.Redis(connection_pool=self._pool)

    async def __call__(self) -> None:
        if self._client is not None:
            await self._client.incr(self.key)

    async def count(self) -> int:
        """How many times the work ran (0 for ``noop``)."""
        if self._client is None:
            return 0
        return int(await self._client.get(self.key) or 0)

    async def aclose(self, *, delete: bool = True) -> None:
        """Close the client; ``delete=False`` leaves the counter for another process to read."""
        if self._client is not None:
            if delete:
                await self._client.delete(self.key)
            await self._client.aclose()
            await self._pool.disconnect()


class SyncWork:
    """The same for synchronous loops: ``run(k)`` does the work of ``k`` messages, the INCRs
    pipelined in one round trip (the cheapest a hand-written loop can do)."""

    def __init__(self, kind: str) -> None:
        self.kind, self.key = check(kind), new_key()
        self._client: Any = None
        if kind == "redis-incr":
            import redis

            self._client = redis.Redis.from_url(REDIS_URL)

    def run(self, k: int) -> None:
        if self._client is not None:
            pipe = self._client.pipeline(transaction=False)
            for _ in range(k):
                pipe.incr(self.key)
            pipe.execute()

    def count(self) -> int:
        return 0 if self._client is None else int(self._client.get(self.key) or 0)

    def close(self) -> None:
        if self._client is not None:
            self._client.delete(self.key)
            self._client.close()


def take_count(kind: str, key: str) -> int:
    """Read and delete the counter a worker process left at ``key`` (0 for ``noop``)."""
    if kind == "noop":
        return 0
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.get(key) or 0)
    finally:
        client.delete(key)
        client.close()


def counted(kind: str, done: int, n: int) -> None:
    """Fail loudly when the work did not run once per message."""
    if kind != "noop" and done != n:
        raise RuntimeError(f"--work {kind}: ran {done} times for {n} messages")
