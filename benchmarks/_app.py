"""The benchmark app: a no-op task and a latency probe, on whatever backend the env names."""

from __future__ import annotations

import os
import time
from typing import Any

from workhive import Hive, Module, TaskContext

bench = Module("bench")


@bench.task("bench:noop")
async def noop(p: Any) -> None:
    return None


@bench.task("bench:probe")
async def probe(p: Any, ctx: TaskContext) -> None:
    """Append enqueue-to-start latency (ms) to $BENCH_LATENCY_FILE."""
    lag_ms = (time.time() - ctx.envelope.enqueued_at) * 1000
    fd = os.open(os.environ["BENCH_LATENCY_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{lag_ms:.4f}\n".encode())
    os.close(fd)


def make_hive(url: str, prefix: str | None = None) -> Hive:
    from workhive.backends import open_backend

    # the isolating name prefix: ``exchange`` (RabbitMQ), ``stream`` (NATS), ``topic`` (Kafka),
    # ``prefix`` (Redis)
    key = ("exchange" if url.startswith(("amqp://", "amqps://"))
           else "stream" if url.startswith(("nats://", "tls://"))
           else "topic" if url.startswith(("kafka://", "redpanda://")) else "prefix")
    options = {key: prefix} if prefix else {}
    hive = Hive(open_backend(url, **options))
    hive.include(bench)
    return hive
