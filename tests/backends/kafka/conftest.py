"""Fixtures for the kafka backend tests: fresh names per test (the broker is tests/conftest.py's).

A missing broker binary skips (locally) or fails (``CI=true``) with the reason. Every test gets
its own topic prefix and consumer-group prefix (Tansu rejoins of a reused group stall), and
short session timeouts so group joins and failovers take about a second.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.backends.kafka.tansu import Broker
from workhive.backends.kafka import KafkaBackend

#: session timeout (s) the tests use: Tansu joins take about this long
SESSION = 1.0


def pytest_configure(config: pytest.Config) -> None:
    # also in pyproject once the lead adds it; registering twice is harmless
    config.addinivalue_line("markers", "kafka: needs a Kafka-API broker (Tansu in tests)")


@pytest.fixture
def kafka_url(kafka_broker: Broker) -> str:
    return kafka_broker.url


@pytest.fixture
def names() -> dict[str, Any]:
    """A unique topic prefix and group prefix for one test."""
    tag = uuid.uuid4().hex[:10]
    return {"topic": f"t{tag}", "group": f"g{tag}", "session_timeout": SESSION}


@pytest.fixture
async def make(kafka_url: str,
               names: dict[str, Any]) -> AsyncIterator[Callable[..., KafkaBackend]]:
    made: list[KafkaBackend] = []

    def factory(**options: Any) -> KafkaBackend:
        backend = KafkaBackend.from_url(kafka_url, **{**names, **options})
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.close()


@pytest.fixture
async def backend(make: Callable[..., KafkaBackend]) -> KafkaBackend:
    b = make()
    await b.open()
    return b
