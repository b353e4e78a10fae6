"""Fixtures for the nats backend tests: a unique stream prefix per test, removed afterwards.

The server comes from ``$WORKHIVE_TEST_NATS_URL`` (default ``nats://127.0.0.1:4222``); when it
cannot be reached the test is skipped locally and fails under ``CI=true``. Every backend made
through ``make`` is closed at teardown, then every stream and KV bucket of the prefix is deleted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests._services import in_ci, reachable
from workhive.backends.nats import NatsBackend
from workhive.testing.conformance import Harness

URL = os.environ.get("WORKHIVE_TEST_NATS_URL", "nats://127.0.0.1:4222")


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


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[str]:
    name = f"T{uuid.uuid4().hex[:10]}"
    yield name
    await NatsBackend.from_url(nats_url, stream=name).wipe()


@pytest.fixture
async def make(nats_url: str, stream: str) -> AsyncIterator[Callable[..., NatsBackend]]:
    made: list[NatsBackend] = []

    def factory(**options: Any) -> NatsBackend:
        options.setdefault("stream", stream)
        backend = NatsBackend.from_url(options.pop("url", nats_url), **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.close()


@pytest.fixture
async def backend(make: Callable[..., NatsBackend]) -> NatsBackend:
    b = make()
    await b.open()
    return b


@pytest.fixture
async def harness(make: Callable[..., NatsBackend]) -> AsyncIterator[Harness]:
    h = Harness(make)
    yield h
    for b in h.made:
        await b.close()
