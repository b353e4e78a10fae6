"""redis-pubsub through the Hive: subscribers run (at-most-once, with a warning); tasks refused."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests._services import unique_name
from workhive import CapabilityError, Hive, Module

pytestmark = pytest.mark.redis


async def test_subscribers_run_on_pubsub_and_tasks_are_refused(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = "redis-pubsub://" + redis_url.split("://", 1)[1]
    m, got = Module("ps"), []

    @m.subscribe("todos.*", group="notifier")
    async def on_todo(e: dict[str, int]) -> None:
        got.append(e["n"])

    listener = Hive(url)
    with caplog.at_level(logging.WARNING):
        listener.include(m)
    assert "at-most-once" in caplog.text
    prefix = unique_name("ps")
    listener = Hive(type(listener.backend).from_url(url, prefix=prefix))  # type: ignore[attr-defined]
    listener.include(m)
    worker = listener.worker(cron=False)
    running = asyncio.create_task(worker.run())
    publisher = Hive(type(listener.backend).from_url(url, prefix=prefix))  # type: ignore[attr-defined]
    for _ in range(100):  # wait until the subscription is live (pub/sub keeps nothing)
        if await publisher.publish("todos.created", {"n": -1}):
            break
        await asyncio.sleep(0.02)
    for n in range(5):
        await publisher.publish("todos.created", {"n": n})
    for _ in range(200):
        if len([g for g in got if g >= 0]) == 5:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await running
    assert [g for g in got if g >= 0] == [0, 1, 2, 3, 4]

    tasks = Module("t")

    @tasks.task("t:x")
    async def x() -> None: ...

    hive = Hive(url)
    hive.include(tasks)
    with pytest.raises(CapabilityError, match="use the durable 'redis' backend"):
        await hive.enqueue("t:x")
    with pytest.raises(CapabilityError, match="does not support queue"):
        await hive.worker().run()
    for h in (listener, publisher, hive):
        await h.close()
