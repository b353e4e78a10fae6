"""Harnesses: how each backend joins the conformance suite (a pytest plugin).

Each harness hands out fresh clients on one isolated store: a new SQLite file under tmp_path, a
unique Redis key prefix or PostgreSQL schema (wiped afterwards), one in-process memory instance,
a unique RabbitMQ name prefix (its queues deleted at the end of the session by
tests/conftest.py). RabbitMQ runs with
each coordination store it is documented with (Redis and SQLite).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests._services import RABBIT_PREFIX, in_ci, require_service, unique_name
from workhive.testing.conformance import Harness

_MARKS = {
    "memory": [pytest.mark.memory],
    "sqlite": [pytest.mark.sqlite],
    "redis": [pytest.mark.redis],
    "postgres": [pytest.mark.postgres],
    "rabbitmq+redis": [pytest.mark.rabbitmq, pytest.mark.redis],
    "rabbitmq+sqlite": [pytest.mark.rabbitmq, pytest.mark.sqlite],
}
BACKENDS = [pytest.param(name, marks=marks, id=name) for name, marks in _MARKS.items()]


def _import(module: str, cls: str) -> Any:
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        if in_ci():
            pytest.fail(f"{module} is not importable: {exc}", pytrace=False)
        pytest.skip(f"{module} is not importable: {exc}")


def _redis(prefix: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[None]]]:
    url = require_service("redis")
    redis = _import("workhive.backends.redis", "RedisBackend")

    async def wipe() -> None:
        cleaner = redis.from_url(url, prefix=prefix)
        await cleaner.open()
        await cleaner.wipe()
        await cleaner.close()

    return (lambda: redis.from_url(url, prefix=prefix)), wipe


#: every queue a scenario uses, so a RabbitMQ run can delete what it made (AMQP cannot list)
SCENARIO_QUEUES = ["default", "leased", "@billing", "@shipping", "@audit", "@pool"]


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """Runs in the test's own event loop, so clients are closed where they were opened."""
    name = request.param
    cleanups: list[Callable[[], Awaitable[None]]] = []
    if name == "memory":
        from workhive.backends.memory import MemoryBackend

        shared = MemoryBackend()
        harness = Harness(lambda: shared)
    elif name == "sqlite":
        sqlite = _import("workhive.backends.sqlite", "SQLiteBackend")
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
        harness = Harness(lambda: sqlite.from_url(url))
    elif name == "postgres":
        url = require_service("postgres")
        postgres = _import("workhive.backends.postgres", "PostgresBackend")
        schema = unique_name("conf")
        harness = Harness(lambda: postgres.from_url(url, schema=schema))
        cleanups.append(lambda: postgres.from_url(url, schema=schema).wipe())
    elif name == "redis":
        factory, wipe = _redis(unique_name("conf"))
        harness = Harness(factory)
        cleanups.append(wipe)
    else:
        amqp = require_service("rabbitmq")
        rabbit = _import("workhive.backends.rabbitmq", "RabbitMQBackend")
        exchange = unique_name(RABBIT_PREFIX)

        def transport() -> Any:
            return rabbit.from_url(amqp, exchange=exchange)

        async def wipe_rabbit() -> None:  # quorum queues hold server file handles: delete now
            cleaner = transport()
            try:
                await cleaner.wipe(queues=SCENARIO_QUEUES)
            finally:
                await cleaner.close()

        cleanups.append(wipe_rabbit)
        if name == "rabbitmq+redis":
            factory, wipe = _redis(unique_name("conf"))
            harness = Harness(transport, coordination=factory)
            cleanups.append(wipe)
        else:
            sqlite = _import("workhive.backends.sqlite", "SQLiteBackend")
            url = f"sqlite:///{tmp_path / 'coordination.db'}"
            harness = Harness(transport, coordination=lambda: sqlite.from_url(url))
    try:
        yield harness
    finally:
        await harness.close_all()
        for cleanup in cleanups:
            await cleanup()
