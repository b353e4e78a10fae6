"""Fixtures for the rabbitmq backend tests: a fresh vhost per test, backends built on it.

A missing server skips (locally) or fails (``CI=true``) with the reason. Every backend built
through ``make`` is closed at teardown, then the vhost is deleted with everything in it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests._services import in_ci
from tests.backends.rabbitmq.vhosts import create_vhost, delete_vhost, skip_reason, vhost_url
from workhive.backends.rabbitmq import RabbitMQBackend


@pytest.fixture
def vhost() -> Iterator[str]:
    reason = skip_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI needs every broker: {reason}", pytrace=False)
        pytest.skip(reason)
    name = create_vhost()
    yield name
    delete_vhost(name)


@pytest.fixture
def url(vhost: str) -> str:
    return vhost_url(vhost)


@pytest.fixture
async def make(url: str) -> AsyncIterator[Callable[..., RabbitMQBackend]]:
    made: list[RabbitMQBackend] = []

    def factory(**options: Any) -> RabbitMQBackend:
        backend = RabbitMQBackend.from_url(url, **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.close()


@pytest.fixture
async def backend(make: Callable[..., RabbitMQBackend]) -> RabbitMQBackend:
    b = make()
    await b.open()
    return b
