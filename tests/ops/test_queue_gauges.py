"""Queue-depth gauges and the worker info metric: filled from the backend's stats by the
worker's probe, and served from that snapshot, so a scrape never calls the broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from workhive import Hive, Module
from workhive._health import Health, probe_forever
from workhive.backend import QueueStats, SupportsStats
from workhive.middleware.prometheus import QUEUE_STATES, WorkerMetrics

pytestmark = pytest.mark.sqlite


class Probed:
    """A probe listener that lets the test wait for the first answer."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()

    def update(self, stats: list[QueueStats]) -> None:
        self.answered.set()

    def broker_down(self) -> None:
        self.answered.set()


async def test_queue_depths_and_worker_info_follow_the_stats(tmp_path: Path) -> None:
    m = Module("g")

    @m.task("g:mail", queue="emails")
    async def mail() -> None: ...

    @m.task("g:report", queue="reports")
    async def report() -> None: ...

    hive = Hive(f"sqlite:///{tmp_path / 'q.db'}")
    hive.include(m)
    for _ in range(3):
        await hive.enqueue("g:mail")
    await hive.enqueue("g:mail", delay=3600)
    await hive.enqueue("g:report")
    await hive.enqueue("g:gone", queue="reports")  # dead-lettered by the worker below
    worker = hive.worker(queues=["reports"], cron=False)
    await worker.run(until_idle=True)

    registry = CollectorRegistry()
    gauges = WorkerMetrics(registry, worker_id="host:1:abc", backend="sqlite", version="9.9")

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    info = {"worker_id": "host:1:abc", "backend": "sqlite", "version": "9.9"}
    assert sample("workhive_worker_info", **info) == 1
    assert sample("workhive_broker_up") == 0  # not probed yet: nothing claimed
    assert sample("workhive_queue_messages", queue="emails", state="ready") is None

    backend = hive.backend
    assert isinstance(backend, SupportsStats)
    calls: list[int] = []
    original = backend.stats

    async def counted() -> list[QueueStats]:
        calls.append(1)
        return await original()

    backend.stats = counted  # type: ignore[method-assign]  # count the broker calls
    health, probed = Health(), Probed()
    probe = asyncio.create_task(probe_forever(health, backend, 3600, [gauges, probed]))
    try:
        await asyncio.wait_for(probed.answered.wait(), 60)
        assert health.broker_ok is True
        truth = {s.queue: s for s in await original()}
        assert sample("workhive_broker_up") == 1
        for queue in ("emails", "reports"):
            for state in QUEUE_STATES:
                assert sample("workhive_queue_messages", queue=queue, state=state) == \
                    getattr(truth[queue], state), (queue, state)
        assert (truth["emails"].ready, truth["emails"].delayed, truth["reports"].dead) == (3, 1, 1)
        for _ in range(5):  # scrapes read the snapshot
            list(registry.collect())
        assert len(calls) == 1
    finally:
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)

    gauges.broker_down()
    assert sample("workhive_broker_up") == 0
    gauges.update([QueueStats("emails", ready=7)])  # a queue gone from the stats disappears
    assert sample("workhive_queue_messages", queue="emails", state="ready") == 7
    assert sample("workhive_queue_messages", queue="reports", state="ready") is None
    await hive.close()
