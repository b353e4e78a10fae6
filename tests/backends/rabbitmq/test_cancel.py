"""Cancel on RabbitMQ with a coordination store.

A queue cannot give up one waiting message, so the store keeps a cancel flag and the worker
drops a flagged task when it receives it: checked once per fetched batch, settled as cancelled
(acknowledged, never run, never retried nor dead-lettered, its result says so).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests._services import RABBIT_PREFIX, require_service, unique_name
from workhive import Hive, Module, TaskContext
from workhive.backend import Backend, Capability, SupportsCancel
from workhive.backends.composite import Composite
from workhive.backends.rabbitmq import RabbitMQBackend
from workhive.cli import cli
from workhive.testing import run_until_idle

pytestmark = [pytest.mark.rabbitmq, pytest.mark.integration]


def _counted(target: Any, method: str) -> list[int]:
    """Count the calls of ``target.method`` (the real method still runs); one entry per call,
    the batch size it was given."""
    calls: list[int] = []
    real = getattr(target, method)

    async def counting(items: Any, *args: Any, **kwargs: Any) -> Any:
        found = await real(items, *args, **kwargs)
        calls.append(len(items) if method == "cancelled" else len(found))
        return found

    setattr(target, method, counting)
    return calls


async def test_flagged_tasks_are_dropped_on_arrival_one_check_per_batch(
        url: str, tmp_path: Path) -> None:
    m, ran = Module("cx"), []

    @m.task("cx:work", store_result=True, max_retries=3)
    async def work(p: dict[str, int]) -> int:
        ran.append(p["n"])
        return p["n"]

    hive = Hive(url, coordination=f"sqlite:///{tmp_path / 'store.db'}")
    hive.include(m)
    backend = hive.backend
    assert isinstance(backend, Composite) and backend.cancel_on_arrival
    assert backend.features.has(Capability.CANCEL)
    try:
        sent = [(await hive.enqueue("cx:work", {"n": n})).id for n in range(30)]
        cancelled = set(sent[::3])
        for task_id in cancelled:
            assert await hive.cancel(task_id) is False  # flagged: the queue keeps the message
        fetched = _counted(backend, "fetch")
        checks = _counted(backend, "cancelled")
        # a poll far away: every check below is one of a fetched batch, none of running tasks
        await run_until_idle(hive, concurrency=8, cancel_poll=3600, timeout=60)
        assert sorted(ran) == [n for n, t in enumerate(sent) if t not in cancelled]
        assert checks == [n for n in fetched if n], (checks, fetched)
        states = {t: (await hive.handle(t).status()).state for t in sent}
        assert {t for t, s in states.items() if s == "cancelled"} == cancelled, states
        assert {s for t, s in states.items() if t not in cancelled} == {"succeeded"}
        assert await backend.dead_letters() == []
        said = await asyncio.to_thread(
            CliRunner().invoke, cli, ["cancel", sent[1], "--backend", url],
            env={"WORKHIVE_COORDINATION": f"sqlite:///{tmp_path / 'store.db'}"},
            catch_exceptions=False)
        assert said.exit_code == 0, said.output
        assert f"{sent[1]}, flagged: it will be dropped when a worker receives it" in " ".join(
            said.output.split()), said.output
    finally:
        await hive.close()


async def test_a_flagged_retry_is_dropped_when_it_comes_due(url: str, tmp_path: Path) -> None:
    """A task flagged while it runs, that fails before any poll saw the flag: its retry waits
    in the broker's delay queues, and is dropped when it comes due."""
    m, attempts = Module("cx"), []
    hive = Hive(url, coordination=f"sqlite:///{tmp_path / 'store.db'}")

    @m.task("cx:flaky", store_result=True, max_retries=3)
    async def flaky(p: Any, ctx: TaskContext) -> None:
        attempts.append(ctx.envelope.attempt)
        assert await hive.cancel(ctx.id) is False
        raise RuntimeError("fails after its cancel")

    hive.include(m)
    try:
        run = await hive.enqueue("cx:flaky")
        # no running-task poll: the retry's arrival is what must see the flag
        await run_until_idle(hive, concurrency=2, cancel_poll=3600, timeout=60)
        assert attempts == [0]
        assert (await hive.handle(run.id).status()).state == "cancelled"
        assert await hive.backend.dead_letters() == []  # type: ignore[attr-defined]
    finally:
        await hive.close()


async def _stores(tmp_path: Path) -> AsyncIterator[Callable[[], Backend]]:
    """Client factories of one store of each kind that keeps cancel flags; each store is
    wiped after its turn."""
    from workhive.backends.postgres import PostgresBackend
    from workhive.backends.redis import RedisBackend
    from workhive.backends.sqlite import SQLiteBackend

    path = f"sqlite:///{tmp_path / 'store.db'}"
    yield lambda: SQLiteBackend.from_url(path)
    redis_url, prefix = require_service("redis"), unique_name("cancel")
    try:
        yield lambda: RedisBackend.from_url(redis_url, prefix=prefix)
    finally:
        cleaner = RedisBackend.from_url(redis_url, prefix=prefix)
        await cleaner.open()
        await cleaner.wipe()
        await cleaner.close()
    pg_url, schema = require_service("postgres"), unique_name("cancel")
    try:
        yield lambda: PostgresBackend.from_url(pg_url, schema=schema)
    finally:
        await PostgresBackend.from_url(pg_url, schema=schema).wipe()


async def test_every_store_flags_what_it_does_not_hold(tmp_path: Path) -> None:
    """SQLite, Redis and PostgreSQL hold none of the broker's messages: their cancel deletes
    nothing and keeps a flag that every other client of the store sees.

    No queue is made, so no vhost of its own: a session-unique exchange name, whose exchanges
    tests/conftest.py deletes at the end of the run."""
    amqp, exchange = require_service("rabbitmq"), unique_name(RABBIT_PREFIX)
    async for store in _stores(tmp_path):
        producer = Composite(RabbitMQBackend.from_url(amqp, exchange=exchange), store())
        consumer = Composite(RabbitMQBackend.from_url(amqp, exchange=exchange), store())
        await producer.open()
        await consumer.open()
        try:
            assert producer.cancel_on_arrival and producer.features.has(Capability.CANCEL)
            assert isinstance(producer, SupportsCancel)
            assert await producer.cancel("task-1", 60) is False, store
            assert await producer.cancel("task-1", 60) is False  # again: still only a flag
            assert await consumer.cancelled(["task-0", "task-1", "task-2"]) == {"task-1"}
            assert await consumer.cancelled([]) == set()
        finally:
            await producer.close()
            await consumer.close()
