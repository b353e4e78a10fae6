"""Real worker processes against real stores: kill -9, SIGTERM, competing workers.

Parametrised over the durable backends; each test has its own SQLite file or Redis prefix.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._services import RABBIT_PREFIX, require_service, unique_name
from tests.faults.rig import Rig, finish
from workhive.backend import Settlement

pytestmark = [pytest.mark.integration, pytest.mark.slow]

@pytest.fixture(params=[
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.sqlite]),
    pytest.param("nats", marks=pytest.mark.nats),
])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "rabbitmq":  # session leases; a SQLite file coordinates
        amqp = require_service("rabbitmq")
        env = {"WORKHIVE_BACKEND": f"{amqp}?exchange={unique_name(RABBIT_PREFIX)}",
               "WORKHIVE_COORDINATION": f"sqlite:///{tmp_path / 'coordination.db'}"}
    elif request.param == "nats":
        env = {"WORKHIVE_BACKEND": f"{require_service('nats')}?stream={unique_name('FAULTS')}"}
    elif request.param == "sqlite":
        env = {"WORKHIVE_BACKEND": f"sqlite:///{tmp_path / 'faults.db'}"}
    elif request.param == "postgres":
        url = require_service("postgres")
        sep = "&" if "?" in url else "?"
        env = {"WORKHIVE_BACKEND": f"{url}{sep}schema={unique_name('faults')}"}
    else:
        env = {"WORKHIVE_BACKEND": require_service("redis"),
               "WORKHIVE_REDIS_PREFIX": unique_name("faults")}
    rig = Rig(tmp_path, env)
    yield rig
    rig.stop_all()
    if request.param in ("redis", "postgres", "nats"):
        async def wipe() -> None:
            hive = rig.hive()
            await hive.open()
            await hive.backend.wipe()  # type: ignore[attr-defined]
            await hive.close()

        asyncio.run(wipe())


def test_kill_9_mid_batch_loses_nothing(rig: Rig) -> None:
    n, concurrency = 5000, 20
    rig.fill(n, sleep=0.001)
    victim = rig.worker("--concurrency", str(concurrency), "--lease", "2")
    rig.wait_for(lambda: sum(rig.count("end").values()) >= 1000)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before_kill = rig.count("start")
    rescuer = rig.worker("--concurrency", str(concurrency), "--lease", "2", "--burst")
    output = finish(rescuer)
    assert rescuer.returncode == 0, output
    ends = rig.count("end")
    starts = rig.count("start")
    assert set(ends) == set(range(n)), f"lost: {sorted(set(range(n)) - set(ends))[:20]}"
    duplicates = sum(c - 1 for c in starts.values() if c > 1)
    # only what the killed worker held leased can run twice: <= concurrency running or awaiting
    # settlement, plus one settle batch being committed (see workhive.worker)
    assert duplicates <= 2 * concurrency, (duplicates, concurrency)
    print(f"killed after {sum(before_kill.values())} starts; duplicates={duplicates}")


def test_sigterm_drains_in_flight_and_returns_nothing_lost(rig: Rig) -> None:
    n = 40
    rig.fill(n, sleep=0.4)
    worker = rig.worker("--concurrency", "5", "--shutdown-timeout", "20")
    rig.wait_for(lambda: sum(rig.count("start").values()) >= 5)
    worker.send_signal(signal.SIGTERM)
    output = finish(worker)
    assert worker.returncode == 0, output
    starts, ends = rig.count("start"), rig.count("end")
    assert starts == ends, "a task started before SIGTERM did not finish"
    assert "Waiting up to 20s" in output, output
    rest = rig.worker("--burst")
    assert (finish(rest), rest.returncode)[1] == 0
    ends = rig.count("end")
    assert ends == Counter(range(n)), ends  # every task exactly once: nothing lost, no repeats


def test_sigterm_grace_expiry_releases_unfinished_work(rig: Rig) -> None:
    rig.fill(3, sleep=60)
    worker = rig.worker("--concurrency", "3", "--shutdown-timeout", "0.5", "--lease", "300")
    rig.wait_for(lambda: sum(rig.count("start").values()) == 3)
    worker.send_signal(signal.SIGTERM)
    output = finish(worker)
    assert worker.returncode == 0, output
    assert "Returning 3 unfinished task(s) to the queue" in output, output

    async def ready() -> int:
        hive = rig.hive()
        await hive.open()
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += await hive.backend.fetch(["default"], 10, lease=5, wait=1)
        await hive.backend.settle([Settlement(d, "release") for d in got])
        await hive.close()
        return len(got)

    # released, not left leased for 300 s: another worker can take them at once
    assert asyncio.run(ready()) == 3


def test_two_workers_never_run_one_task_concurrently(rig: Rig) -> None:
    n = 600
    rig.fill(n, sleep=0.002)
    workers = [rig.worker("--concurrency", "8", "--burst") for _ in range(2)]
    for proc in workers:
        assert (finish(proc), proc.returncode)[1] == 0
    runs: dict[int, list[tuple[str, float, str]]] = {}
    for parts in rig.lines():
        runs.setdefault(int(parts[1]), []).append((parts[0], float(parts[2]), parts[3]))
    assert set(runs) == set(range(n))
    for i, events in runs.items():
        assert [e[0] for e in events].count("start") == 1, (i, events)
    pids = {events[0][2] for events in runs.values()}
    print(f"tasks per worker process: {Counter(e[0][2] for e in runs.values())}")
    assert len(pids) >= 1
