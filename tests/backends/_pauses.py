"""The pause scenario every broker runs (RabbitMQ and Kafka with a coordination store, NATS on
its own): a running worker consumes a queue, the queue is paused, tasks for it and for another
queue arrive; the other queue's run, the paused queue's wait *in the broker* (counted ready,
none held by the worker), and after a resume each runs exactly once.

No wall-clock thresholds: every wait is "until the condition holds", bounded only by the
scenario's overall timeout, which fails the test if the condition never comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from workhive import Hive, Module
from workhive.backend import SupportsStats
from workhive.backends.composite import Composite
from workhive.backends.sqlite import SQLiteBackend
from workhive.pauses import pauses_of

TIMEOUT = 90.0
STEP = 0.05


async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Return once ``check()`` is true (the caller bounds the whole scenario)."""
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(STEP)


async def paused_queue_waits_and_resumes(hive: Hive) -> None:
    async with asyncio.timeout(TIMEOUT):
        await _scenario(hive)


async def paused_in_the_coordination_store(transport: Any, store_path: Path) -> None:
    """The scenario for a transport that cannot pause (RabbitMQ, Kafka): built with a SQLite
    coordination store, the paused set lives there."""
    hive = Hive(transport, coordination=f"sqlite:///{store_path}")
    try:
        assert isinstance(hive.backend, Composite)
        assert isinstance(pauses_of(hive.backend), SQLiteBackend)
        await paused_queue_waits_and_resumes(hive)
    finally:
        await hive.close()


async def _scenario(hive: Hive) -> None:
    m = Module("pause")
    ran: dict[str, list[int]] = {"fast": [], "slow": []}

    @m.task("pause:fast", queue="fast")
    async def fast(p: dict[str, Any]) -> None:
        ran["fast"].append(p["i"])

    @m.task("pause:slow", queue="slow")
    async def slow(p: dict[str, Any]) -> None:
        ran["slow"].append(p["i"])

    hive.include(m)
    await hive.open()
    store = pauses_of(hive.backend)
    assert store is not None, f"{hive.backend!r} cannot pause queues"
    backend = hive.backend
    assert isinstance(backend, SupportsStats)

    async def slow_waits_in_the_broker(ready: int) -> bool:
        stat = next((s for s in await backend.stats() if s.queue == "slow"), None)
        return stat is not None and (stat.ready, stat.in_flight) == (ready, 0)

    worker = hive.worker(queues=["fast", "slow"], concurrency=4, cron=False)
    running = asyncio.create_task(worker.run())
    try:
        await hive.enqueue("pause:slow", {"i": 0})  # the worker is consuming "slow" now
        await until(lambda: ran["slow"] == [0])

        await store.set_paused("slow", True)
        await until(lambda: worker._pauses.is_paused("slow"))
        for i in (1, 2, 3):
            await hive.enqueue("pause:slow", {"i": i})
        for i in (1, 2, 3):
            await hive.enqueue("pause:fast", {"i": i})
        await until(lambda: sorted(ran["fast"]) == [1, 2, 3])
        await until(lambda: slow_waits_in_the_broker(3))
        assert ran["slow"] == [0], "a paused queue's task ran"

        await store.set_paused("slow", False)
        await until(lambda: len(ran["slow"]) >= 4)
        await until(lambda: slow_waits_in_the_broker(0))
    finally:
        worker.stop()
        await running
    assert sorted(ran["slow"]) == [0, 1, 2, 3]  # each exactly once
    assert sorted(ran["fast"]) == [1, 2, 3]
    assert await store.paused_queues() == set()
