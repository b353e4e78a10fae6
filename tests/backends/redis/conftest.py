"""Fixtures for the redis backend tests: one unique key prefix per test, a private redis-server,
a private Redis Cluster.

Every backend built through ``make`` shares the test's prefix (so two instances compete for the
same queues) and is wiped and closed at teardown. ``private_redis`` launches a throwaway
``redis-server`` on a free port that a test may stop and restart (outage tests).
``redis_cluster`` starts three cluster masters once per session (``cluster.py``);
``cluster_make`` is ``make`` on it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests._services import free_port, in_ci, require_service, unique_name
from tests.backends.redis.cluster import RedisCluster, have_cluster_tools
from workhive.backends.redis import RedisBackend


@pytest.fixture
def redis_url() -> str:
    return require_service("redis")


@pytest.fixture
def prefix() -> str:
    return unique_name("rt")


class FakeClock:
    """A settable clock for scripts (``RedisBackend(clock=...)``): boundaries without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make(redis_url: str, prefix: str) -> AsyncIterator[Callable[..., RedisBackend]]:
    made: list[RedisBackend] = []

    def factory(**options: Any) -> RedisBackend:
        backend = RedisBackend.from_url(redis_url, prefix=prefix, **options)
        made.append(backend)
        return backend

    yield factory
    if made:
        await made[0].wipe()
    for backend in made:
        await backend.close()


@pytest.fixture
async def backend(make: Callable[..., RedisBackend]) -> RedisBackend:
    b = make()
    await b.open()
    return b




class PrivateRedis:
    """A redis-server child process on a fixed port, stoppable and restartable."""

    def __init__(self, port: int, password: str | None = None,
                 data_dir: str | None = None) -> None:
        self.port = port
        self.password = password
        self.data_dir = data_dir  # set: keep data across restarts (AOF, fsync always)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.data_dir:
            args += ["--dir", self.data_dir, "--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        if in_ci():
            pytest.fail("CI needs redis-server on PATH for the outage tests", pytrace=False)
        pytest.skip("redis-server is not on PATH")


def require_cluster_tools() -> None:
    if not have_cluster_tools():
        if in_ci():
            pytest.fail("CI needs redis-server and redis-cli on PATH for the cluster tests",
                        pytrace=False)
        pytest.skip("redis-server / redis-cli are not on PATH")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three cluster masters on free ports, started once per session."""
    require_cluster_tools()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster_make(
    redis_cluster: RedisCluster, prefix: str
) -> AsyncIterator[Callable[..., RedisBackend]]:
    made: list[RedisBackend] = []

    def factory(**options: Any) -> RedisBackend:
        backend = RedisBackend.from_url(redis_cluster.url, prefix=prefix, **options)
        made.append(backend)
        return backend

    yield factory
    if made:
        await made[0].wipe()
    for backend in made:
        await backend.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    require_redis_server()
    server = PrivateRedis(free_port(), password="s3cret-pw")
    server.start()
    try:
        yield server
    finally:
        server.stop()
