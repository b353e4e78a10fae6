"""Harnesses: how each backend joins the conformance suite (a pytest plugin).

Each harness hands out fresh clients on one isolated store: a new SQLite file under tmp_path, a
unique Redis key prefix or PostgreSQL schema (wiped afterwards), one in-process memory instance,
a unique RabbitMQ name prefix (its queues deleted at the end of the session). RabbitMQ runs with
each coordination store it is documented with (Redis and SQLite).
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._services import in_ci, require_service, unique_name
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
RABBIT_PREFIX = "whconf"


def _import(module: str, cls: str) -> Any:
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        if in_ci():
            pytest.fail(f"{module} is not importable: {exc}", pytrace=False)
        pytest.skip(f"{module} is not importable: {exc}")


def _redis(prefix: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    url = require_service("redis")
    redis = _import("workhive.backends.redis", "RedisBackend")

    def wipe() -> None:
        async def go() -> None:
            cleaner = redis.from_url(url, prefix=prefix)
            await cleaner.open()
            await cleaner.wipe()
            await cleaner.close()

        asyncio.run(go())

    return (lambda: redis.from_url(url, prefix=prefix)), wipe


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    name = request.param
    if name == "memory":
        from workhive.backends.memory import MemoryBackend

        shared = MemoryBackend()
        yield Harness(lambda: shared)
    elif name == "sqlite":
        sqlite = _import("workhive.backends.sqlite", "SQLiteBackend")
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
        yield Harness(lambda: sqlite.from_url(url))
    elif name == "postgres":
        url = require_service("postgres")
        postgres = _import("workhive.backends.postgres", "PostgresBackend")
        schema = unique_name("conf")
        yield Harness(lambda: postgres.from_url(url, schema=schema))
        asyncio.run(postgres.from_url(url, schema=schema).wipe())
    elif name == "redis":
        factory, wipe = _redis(unique_name("conf"))
        yield Harness(factory)
        wipe()
    else:
        amqp = require_service("rabbitmq")
        rabbit = _import("workhive.backends.rabbitmq", "RabbitMQBackend")
        exchange = unique_name(RABBIT_PREFIX)
        transport = lambda: rabbit.from_url(amqp, exchange=exchange)  # noqa: E731
        if name == "rabbitmq+redis":
            factory, wipe = _redis(unique_name("conf"))
            yield Harness(transport, coordination=factory)
            wipe()
        else:
            sqlite = _import("workhive.backends.sqlite", "SQLiteBackend")
            url = f"sqlite:///{tmp_path / 'coordination.db'}"
            yield Harness(transport, coordination=lambda: sqlite.from_url(url))


@pytest.fixture(scope="session", autouse=True)
def _delete_rabbit_topology() -> Iterator[None]:
    """Delete the conformance runs' RabbitMQ queues and exchanges once, at the end."""
    yield
    try:
        import aio_pika
    except ImportError:
        return
    names = {}
    for kind in ("queues", "exchanges"):
        try:
            out = subprocess.run(["rabbitmqctl", "-q", f"list_{kind}", "name"], check=True,
                                 capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return
        names[kind] = [n for n in out.split() if n.startswith(RABBIT_PREFIX)]

    async def delete() -> None:
        from tests._services import service_url

        connection = await aio_pika.connect(service_url("rabbitmq"))
        async with connection:
            channel = await connection.channel()
            for queue in names["queues"]:
                await channel.queue_delete(queue)
            for exchange in names["exchanges"]:
                await channel.exchange_delete(exchange)

    if names.get("queues") or names.get("exchanges"):
        asyncio.run(delete())
