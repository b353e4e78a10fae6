"""Faults on a Redis Cluster: a worker killed mid-batch, a master killed mid-run.

* kill -9 a real ``workhive worker`` (tests/faults/rig.py) draining queues on all three
  masters: every task completes, and only what the dead worker held can run twice.
* kill -9 one master (no replica: its slots have no owner until it returns) while a worker
  drains queues on every master: enqueues to its queue fail with BackendUnavailable, the other
  queues keep flowing (new work included) while it is down, and once it is restarted on the
  same port and directory (AOF, fsync always) its queue resumes with every acknowledged
  enqueue run.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._outage import wait_until
from tests._services import unique_name
from tests.backends.redis.cluster import RedisCluster, port_of, spread_queues
from tests.backends.redis.conftest import require_cluster_tools
from tests.faults.rig import Rig, finish
from workhive import BackendUnavailable, Hive, Module
from workhive.backends.redis import RedisBackend

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster_rig(redis_cluster: RedisCluster, tmp_path: Path) -> Iterator[tuple[Rig, str]]:
    prefix = unique_name("cfault")
    seed = f"127.0.0.1:{redis_cluster.ports[0]}"  # one seed: the workers find the others
    rig = Rig(tmp_path, {"WORKHIVE_BACKEND": f"redis://{seed}?cluster=true&prefix={prefix}"})
    yield rig, prefix
    rig.stop_all()
    asyncio.run(RedisBackend.from_url(redis_cluster.url, prefix=prefix).wipe())


def test_kill_9_worker_mid_batch_on_a_cluster(
    cluster_rig: tuple[Rig, str], redis_cluster: RedisCluster
) -> None:
    rig, prefix = cluster_rig
    n, concurrency = 3000, 20

    async def fill() -> list[str]:
        backend = RedisBackend.from_url(redis_cluster.url, prefix=prefix)
        queues = await spread_queues(backend)
        await backend.close()
        hive = rig.hive()
        envs = [hive.build("fault:work", {"i": i, "sleep": 0.001}, queue=queues[i % 3])
                for i in range(n)]
        for start in range(0, n, 1000):
            await hive.enqueue_many([e for e in envs[start:start + 1000] if e])
        await hive.close()
        return queues

    queues = asyncio.run(fill())
    args = ("--concurrency", str(concurrency), "--lease", "2", "--queues", ",".join(queues))
    victim = rig.worker(*args)
    rig.wait_for(lambda: sum(rig.count("end").values()) >= 600)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rescuer = rig.worker(*args, "--burst")
    output = finish(rescuer)
    assert rescuer.returncode == 0, output
    ends, starts = rig.count("end"), rig.count("start")
    assert set(ends) == set(range(n)), f"lost: {sorted(set(range(n)) - set(ends))[:20]}"
    duplicates = sum(c - 1 for c in starts.values() if c > 1)
    assert duplicates <= 2 * concurrency, (duplicates, concurrency)
    print(f"cluster kill -9: {sum(starts.values())} runs of {n} tasks; duplicates={duplicates}")


async def test_a_dead_master_stops_only_its_own_queues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_cluster_tools()
    cluster = RedisCluster(tmp_path, durable=True)
    await asyncio.to_thread(cluster.start)
    backend = RedisBackend.from_url(cluster.url, prefix=unique_name("outage"),
                                    connect_timeout=0.5, retries=1)
    m, done = Module("co"), Counter[tuple[str, int]]()

    @m.task("co:work", max_retries=10, retry_backoff=0.05)
    async def work(p: dict[str, Any]) -> None:
        await asyncio.sleep(p["sleep"])
        done[(p["q"], p["i"])] += 1

    hive = Hive(backend)
    hive.include(m)
    concurrency, n = 10, 200
    try:
        queues = await spread_queues(backend)
        victim, others = queues[0], queues[1:]
        master = cluster.ports.index(port_of(backend, victim))

        async def enqueue(pairs: list[tuple[str, int]]) -> set[tuple[str, int]]:
            # the victim's tasks are slow: plenty of them are still queued when its master dies
            envs = [hive.build("co:work", {"q": q, "i": i, "sleep": 0.05 if q == victim else
                                           0.005}, queue=q) for q, i in pairs]
            await hive.enqueue_many([e for e in envs if e])
            return set(pairs)

        acked = await enqueue([(q, i) for q in queues for i in range(n)])
        worker = hive.worker(queues=queues, concurrency=concurrency, lease=2, cron=False)
        running = asyncio.create_task(worker.run())
        await wait_until(lambda: sum(q == victim for q, _ in done) >= 20)
        with caplog.at_level(logging.WARNING):
            await asyncio.to_thread(cluster.kill, master)
            with pytest.raises(BackendUnavailable):
                await hive.enqueue("co:work", {"q": victim, "i": -1, "sleep": 0}, queue=victim)
            # the other queues keep flowing while the master is down: new work included
            acked |= await enqueue([(q, i) for q in others for i in range(n, n + 50)])
            theirs = {(q, i) for q, i in acked if q != victim}
            await wait_until(lambda: set(done) >= theirs)
            assert cluster.procs[master] is None  # all of that ran without the dead master
            stuck = {(q, i) for q, i in acked if q == victim} - set(done)
            assert stuck  # its queue waited (not lost: it comes back below)

            await asyncio.to_thread(cluster.restart, master)
            await wait_until(lambda: set(done) >= acked, timeout=120)
        worker.stop()
        await running
    finally:
        await hive.close()
        await asyncio.to_thread(cluster.stop)
    assert set(done) >= acked  # every acknowledged enqueue ran
    assert (victim, -1) not in done  # the refused enqueue was not stored either
    duplicates = sum(c - 1 for c in done.values())
    assert duplicates <= 2 * concurrency, duplicates
    print(f"master down: {len(stuck)} of the victim queue's tasks waited for it; "
          f"duplicates={duplicates}")
    assert "is unreachable" in caplog.text and "answers again" in caplog.text
