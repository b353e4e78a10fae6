"""The benchmark app: a no-op task, a one-``INCR`` task (``--work redis-incr``) and a latency
probe, on whatever backend the env names."""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks._work import KEY_ENV, Work
from workhive import Hive, Module, TaskContext

bench = Module("bench")
_work: list[Work] = []  # made on first use, in the worker process


@bench.task("bench:noop")
async def noop(p: Any) -> None:
    return None


@bench.task("bench:incr")
async def incr(p: Any) -> None:
    """One Redis INCR on the key the benchmark passed in ``$BENCH_WORK_KEY``."""
    if not _work:
        _work.append(Work("redis-incr", os.environ[KEY_ENV]))
    await _work[0]()


def task_for(work: str) -> str:
    """The task that does ``work`` (see :mod:`benchmarks._work`)."""
    return "bench:noop" if work == "noop" else "bench:incr"


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
