"""End to end: a real Hive and Worker on Kafka (``workhive.testing.run_until_idle``), and dead
letters parked in the dead-letter topic when there is no coordination store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.backends.kafka.tansu import bootstrap
from workhive import Hive, Module
from workhive.backends.kafka import KafkaBackend
from workhive.testing import run_until_idle

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


async def read_dead(url: str, backend: KafkaBackend, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(backend.names.dead, bootstrap_servers=bootstrap(url),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + 10
        while len(out) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += records
    finally:
        await consumer.stop()
    return out


async def test_worker_runs_tasks_and_parks_dead_letters(
        kafka_url: str, make: Callable[..., KafkaBackend]) -> None:
    m = Module("e2e")
    seen: list[int] = []

    @m.task("e2e:add")
    async def add(p: dict[str, Any]) -> None:
        seen.append(p["i"])

    @m.task("e2e:doomed", max_retries=1, retry_backoff=0.05)
    async def doomed() -> None:
        raise ValueError("never works")

    backend = make()
    hive = Hive(backend)
    hive.include(m)
    await hive.open()
    for i in range(30):
        await hive.enqueue("e2e:add", {"i": i})
    await hive.enqueue("e2e:doomed")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(kafka_url))
    await producer.start()
    try:  # a record that is not an envelope, straight into the band topic
        await producer.send_and_wait(backend.names.band_topic("default", 0), b"\x00garbage")
    finally:
        await producer.stop()
    worker = await run_until_idle(hive, concurrency=8, timeout=60)
    assert sorted(seen) == list(range(30))
    assert worker.processed >= 32
    dead = await read_dead(kafka_url, backend, 2)
    reasons = {dict(r.headers)["reason"].decode(): r for r in dead}
    assert len(dead) == 2, reasons
    garbage = next(r for reason, r in reasons.items() if "malformed" in reason)
    assert garbage.value == b"\x00garbage"
    failed = next(r for reason, r in reasons.items() if "ValueError: never works" in reason)
    assert dict(failed.headers)["attempt"] == b"1"
    assert dict(failed.headers)["queue"] == b"default"
    await hive.close()
