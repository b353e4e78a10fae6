"""End to end: a real Hive and Worker on RabbitMQ (``workhive.testing.run_until_idle``)."""

from __future__ import annotations

import time
from typing import Any

import aio_pika
import pytest

from workhive import Hive, Module, TaskContext
from workhive.backends.rabbitmq import RabbitMQBackend
from workhive.testing import run_until_idle

pytestmark = [pytest.mark.rabbitmq, pytest.mark.integration]


async def test_plain_tasks_run_once_each(url: str) -> None:
    m = Module("e2e")
    seen: list[int] = []

    @m.task("e2e:add")
    async def add(p: dict[str, Any]) -> None:
        seen.append(p["i"])

    hive = Hive(RabbitMQBackend.from_url(url))
    hive.include(m)
    try:
        for i in range(20):
            await hive.enqueue("e2e:add", {"i": i})
        worker = await run_until_idle(hive, concurrency=4, timeout=30)
    finally:
        await hive.close()
    assert sorted(seen) == list(range(20))
    assert worker.processed == 20


async def test_retry_with_backoff_runs_again_after_the_delay(url: str) -> None:
    m = Module("e2e")
    attempts: list[tuple[int, float]] = []

    @m.task("e2e:flaky", max_retries=2, retry_backoff=1.0)
    async def flaky(p: Any, ctx: TaskContext) -> None:
        attempts.append((ctx.envelope.attempt, time.time()))
        if ctx.envelope.attempt == 0:
            raise RuntimeError("first try fails")

    hive = Hive(RabbitMQBackend.from_url(url))
    hive.include(m)
    try:
        await hive.enqueue("e2e:flaky", None)
        await run_until_idle(hive, concurrency=2, timeout=30)
    finally:
        await hive.close()
    assert [a for a, _ in attempts] == [0, 1]
    gap = attempts[1][1] - attempts[0][1]
    assert gap >= 0.5  # some backoff happened (the exact backoff is the worker's business)
    assert gap < 1.0 + 10  # ...and the delay levels delivered it


async def test_malformed_message_is_dead_lettered(url: str) -> None:
    m = Module("e2e")
    ran: list[int] = []

    @m.task("e2e:ok")
    async def ok(p: Any) -> None:
        ran.append(1)

    backend = RabbitMQBackend.from_url(url)
    hive = Hive(backend)
    hive.include(m)
    try:
        await hive.enqueue("e2e:ok", None)
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(b"\x00garbage"), routing_key=backend.names.physical("default", 0))
        await run_until_idle(hive, concurrency=2, timeout=30)
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            dead = await channel.declare_queue(backend.names.dead, passive=True)
            parked = await dead.get(no_ack=True, timeout=5)
    finally:
        await hive.close()
    assert ran == [1]
    assert parked.body == b"\x00garbage"
    assert "malformed" in str(parked.headers["reason"])
