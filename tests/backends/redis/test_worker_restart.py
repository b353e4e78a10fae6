"""A running worker survives a Redis restart: it logs, backs off, reconnects and finishes.

The private redis-server keeps its data (AOF, fsync always) so the restart is a real broker
restart, not a wipe: every task enqueued before it must still complete, none acknowledged lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import pytest

from tests._services import free_port, unique_name
from tests.backends.redis.conftest import PrivateRedis, require_redis_server
from workhive import BackendUnavailable, Hive, Module
from workhive.backends.redis import RedisBackend

pytestmark = [pytest.mark.redis, pytest.mark.integration]


async def wait_until(predicate: object, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_worker_rides_out_a_redis_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_redis_server()
    server = PrivateRedis(free_port(), data_dir=str(tmp_path))
    server.start()
    m, done = Module("rr"), Counter[int]()

    @m.task("rr:work", max_retries=10, retry_backoff=0.05)
    async def work(p: dict[str, int]) -> None:
        await asyncio.sleep(0.005)
        done[p["i"]] += 1

    n, concurrency = 300, 10
    backend = RedisBackend.from_url(server.url, prefix=unique_name("rr"))
    hive = Hive(backend)
    hive.include(m)
    try:
        await hive.enqueue_many([e for i in range(n) if (e := hive.build("rr:work", {"i": i}))])
        worker = hive.worker(concurrency=concurrency, lease=2, cron=False)
        running = asyncio.create_task(worker.run())
        await wait_until(lambda: len(done) >= 50)
        with caplog.at_level(logging.ERROR):
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(1.0)  # the worker is now failing to fetch and settle
            with pytest.raises(BackendUnavailable):
                await hive.enqueue("rr:work", {"i": -1})
            await asyncio.to_thread(server.start)
            await wait_until(lambda: set(done) >= set(range(n)))
        worker.stop()
        await running
    finally:
        await backend.close()
        server.stop()
    assert set(done) == set(range(n))
    duplicates = sum(c - 1 for c in done.values())
    assert duplicates <= 2 * concurrency, duplicates
    assert "fetch failed" in caplog.text, caplog.text[-2000:]
