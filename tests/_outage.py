"""One broker-restart scenario, shared by every backend whose server a test can restart.

A worker drains 300 tasks; mid-run the broker is stopped (enqueue must raise
BackendUnavailable, the worker must log and back off), then started again; every task must
complete, with at most ``2 x concurrency`` run twice (what was leased when the broker went).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest

from workhive import Backend, BackendUnavailable, Hive, Module


async def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def ride_out_restart(backend: Backend, stop: Callable[[], None],
                           start: Callable[[], None], caplog: pytest.LogCaptureFixture) -> None:
    """Run the scenario; the caller owns the server (and stops it afterwards)."""
    m, done = Module("outage"), Counter[int]()

    @m.task("outage:work", max_retries=10, retry_backoff=0.05)
    async def work(p: dict[str, int]) -> None:
        await asyncio.sleep(0.005)
        done[p["i"]] += 1

    n, concurrency = 300, 10
    hive = Hive(backend)
    hive.include(m)
    try:
        await hive.enqueue_many(
            [e for i in range(n) if (e := hive.build("outage:work", {"i": i}))])
        worker = hive.worker(concurrency=concurrency, lease=2, cron=False)
        running = asyncio.create_task(worker.run())
        await wait_until(lambda: len(done) >= 50)
        with caplog.at_level(logging.ERROR):
            await asyncio.to_thread(stop)
            await asyncio.sleep(1.0)  # the worker is now failing to fetch and settle
            with pytest.raises(BackendUnavailable):
                await hive.enqueue("outage:work", {"i": -1})
            await asyncio.to_thread(start)
            await wait_until(lambda: set(done) >= set(range(n)))
        worker.stop()
        await running
    finally:
        await backend.close()
    assert set(done) == set(range(n))
    duplicates = sum(c - 1 for c in done.values())
    assert duplicates <= 2 * concurrency, duplicates
    assert "fetch failed" in caplog.text, caplog.text[-2000:]
