"""The nats backend on a three-node JetStream cluster (``_cluster.py``) with every stream and
bucket replicated three times: a worker keeps draining while the node its connection is on is
stopped, producers keep enqueueing, and after the node is restarted nothing enqueued is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.backends.nats._cluster import Cluster
from workhive import Hive, Module
from workhive.backends.nats import NatsBackend
from workhive.backends.nats.settings import NatsSettings
from workhive.errors import BackendError, ConfigError


def test_seed_list_and_replicas_options() -> None:
    s = NatsSettings.from_url("nats://app:pw@h1,h2:4223,[::1]:4224?replicas=3&stream=APP")
    assert s.url == "nats://h1:4222,h2:4223,[::1]:4224" and s.replicas == 3
    assert s.connect_options()["servers"] == [
        "nats://h1:4222", "nats://h2:4223", "nats://[::1]:4224"]
    assert (s.user, s.password) == ("app", "pw")
    assert "pw" not in s.redacted_url and "pw" not in repr(s)
    assert NatsSettings.from_url("nats://h").replicas == 1
    with pytest.raises(ConfigError, match="'replicas' must be 1..5"):
        NatsSettings.from_url("nats://h?replicas=7")
    with pytest.raises(ConfigError, match="invalid nats url"):
        NatsSettings.from_url("nats://h1:4222,h2:port")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    rig = Cluster(tmp_path)
    try:
        rig.start()
        yield rig
    finally:
        rig.stop()


async def _until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _enqueue(hive: Hive, i: int) -> None:
    """Enqueue, retrying while the client fails over or a stream elects a new leader (the
    error is BackendUnavailable / BackendError meanwhile, never a silent loss)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await hive.enqueue("cl:work", {"i": i})
            return
        except BackendError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_worker_keeps_going_while_a_node_is_stopped_and_restarted(
    cluster: Cluster,
) -> None:
    m, done = Module("cl"), Counter[int]()

    @m.task("cl:work", max_retries=10, retry_backoff=0.05)
    async def work(p: dict[str, int]) -> None:
        await asyncio.sleep(0.002)
        done[p["i"]] += 1

    backend = NatsBackend.from_url(cluster.url, stream="CLUSTER", replicas=3)
    hive = Hive(backend)
    hive.include(m)
    concurrency = 10
    try:
        await hive.enqueue_many([e for i in range(300) if (e := hive.build("cl:work", {"i": i}))])
        info = await backend.js.stream_info(backend.names.tasks)
        assert info.config.num_replicas == 3 and info.cluster is not None
        assert len(info.cluster.replicas or []) == 2  # the leader plus two followers
        worker = hive.worker(concurrency=concurrency, lease=5, cron=False)
        running = asyncio.create_task(worker.run())
        await _until(lambda: len(done) >= 50)

        # stop the node this client is connected to: its connection has to fail over too
        connected = urlsplit(str(backend.nc.connected_url.geturl())).port
        (node,) = [n for n in cluster.nodes if n.port == connected]
        await asyncio.to_thread(node.stop)
        for i in range(300, 400):
            await _enqueue(hive, i)
        await _until(lambda: set(done) >= set(range(400)))  # drained with one node down

        await asyncio.to_thread(node.start)
        await cluster.wait_ready()
        for i in range(400, 450):
            await _enqueue(hive, i)
        await _until(lambda: set(done) >= set(range(450)))
        worker.stop()
        await running
    finally:
        await hive.close()
    assert set(done) == set(range(450))
    duplicates = sum(c - 1 for c in done.values())
    assert duplicates <= 2 * concurrency, duplicates  # only what was leased when the node went
