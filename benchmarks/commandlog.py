"""Command-log benchmarks: dispatch rate, append rate, latency, memory per idle worker.

``python -m benchmarks.commandlog --json [-n 100000]`` prints a JSON list of results; ``run(n)``
returns it. Benchmarks report; they are never timed tests. PostgreSQL is measured when
``WORKHIVE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) answers,
NATS when ``WORKHIVE_TEST_NATS_URL`` (default ``nats://127.0.0.1:4222``) does; Kafka on a private
Tansu broker.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import tempfile
import time
import tracemalloc
import uuid
from typing import Any
from urllib.parse import urlparse

from workhive.commandlog import (
    App,
    AppContext,
    Command,
    CommandWorker,
    Executor,
    Message,
    MessageLog,
    WorkerContext,
    open_log,
)
from workhive.commandlog.sqlite import SQLiteMessageLog

PG_URL = os.environ.get("WORKHIVE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("WORKHIVE_TEST_NATS_URL", "nats://127.0.0.1:4222")


class Ping(Command, frozen=True):
    command_name = "bench/ping"
    seq: int
    body: str


def _result(name: str, backend: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"benchmark": name, "backend": backend, "value": round(value, 3), "unit": unit, **extra}


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def _prefill(log: MessageLog, n: int) -> None:
    ex = Executor(log)
    payload = ex.registry.encode(Ping(seq=0, body="x" * 64))
    for start in range(0, n, 10_000):
        await log.append_many([(Ping.command_name, payload, None)] * min(10_000, n - start))


async def bench_dispatch(log: MessageLog, backend: str, n: int) -> list[dict[str, Any]]:
    """One CommandWorker draining a pre-filled log, handler does a trivial state update."""
    await _prefill(log, n)
    gaps: list[int] = []
    clock = time.perf_counter_ns

    def handler(ctx: WorkerContext[list[int]], cmd: Ping, msg: Message) -> None:
        ctx.state[0] += 1

    worker = CommandWorker(f"bench-{uuid.uuid4().hex[:6]}", state=[0], batch_size=5000)
    worker.on_command(Ping, handler)
    ctx = AppContext(log, Executor(log))
    await worker.start(ctx)
    t0 = time.perf_counter()
    while True:
        b0 = clock()
        moved = await worker.work()
        if not moved:
            break
        gaps.append((clock() - b0) // moved)
    elapsed = time.perf_counter() - t0
    assert worker.state[0] == n, (worker.state[0], n)
    per_msg_us = [g / 1000 for g in gaps]
    return [
        _result("dispatch", backend, n / elapsed, "msg/s", messages=n),
        _result("dispatch_cost_per_msg_p50", backend, _pct(per_msg_us, 50), "us"),
        _result("dispatch_cost_per_msg_p99", backend, _pct(per_msg_us, 99), "us"),
    ]


async def bench_append(log: MessageLog, backend: str, n: int) -> list[dict[str, Any]]:
    ex = Executor(log)
    t0 = time.perf_counter()
    for i in range(n):
        await ex.execute(Ping(seq=i, body="hello"))
    single = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, n * 10, 1000):
        await ex.execute_many([Ping(seq=i, body="hello") for i in range(start, start + 1000)])
    batched = n * 10 / (time.perf_counter() - t0)
    return [
        _result("executor_append", backend, single, "cmd/s", commands=n),
        _result("executor_append_many", backend, batched, "cmd/s", commands=n * 10, batch=1000),
    ]


async def bench_latency(log: MessageLog, backend: str, n: int) -> list[dict[str, Any]]:
    """Executor.execute -> handler call in a running App (append, commit, wake, read, decode)."""
    lat: list[float] = []
    done = asyncio.Event()

    def handler(ctx: WorkerContext[None], cmd: Ping, msg: Message) -> None:
        lat.append((time.time() - msg.timestamp) * 1000)
        done.set()

    worker: CommandWorker[None] = CommandWorker(f"lat-{uuid.uuid4().hex[:6]}", replay=False)
    worker.on_command(Ping, handler)
    await log.save_checkpoint(worker.name, await log.head())  # skip what earlier benches wrote
    app = App(log, tick=1.0)
    app.register_worker(worker)
    await app.start_workers()
    for i in range(n):
        done.clear()
        await app.executor.execute(Ping(seq=i, body="x"))
        await done.wait()
    await app.stop_workers(timeout=10)
    return [
        _result("end_to_end_latency_p50", backend, _pct(lat, 50), "ms", samples=n),
        _result("end_to_end_latency_p99", backend, _pct(lat, 99), "ms", samples=n),
    ]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def bench_idle_memory(
    log: MessageLog, backend: str, count: int = 100
) -> list[dict[str, Any]]:
    """100 started, idle CommandWorkers (each with 10 routes and a running task) in one App."""
    gc.collect()
    tracemalloc.start()
    rss0, snap0 = _rss(), tracemalloc.take_snapshot()
    app = App(log, tick=5.0)
    for i in range(count):
        w: CommandWorker[dict[str, int]] = CommandWorker(f"idle-{i}", state={})
        w.on_command(Ping, lambda ctx, cmd, msg: None)
        app.register_worker(w)
    await app.start_workers()
    await asyncio.sleep(0.2)
    gc.collect()
    snap1, rss1 = tracemalloc.take_snapshot(), _rss()
    tracemalloc.stop()
    await app.stop_workers(timeout=10)
    traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    return [
        _result("idle_worker_memory_traced", backend, traced / count / 1024, "KiB/worker"),
        _result(
            "idle_worker_memory_rss", backend, max(0, rss1 - rss0) / count / 1024, "KiB/worker"
        ),
    ]


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1",
                                       parsed.port or default_port), 1):
            return True
    except OSError:
        return False


async def _run(n: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with SQLiteMessageLog(os.path.join(tmp, "bench.db")) as log:
            results += await bench_dispatch(log, "sqlite", n)
        async with SQLiteMessageLog(os.path.join(tmp, "append.db")) as log:
            results += await bench_append(log, "sqlite", min(n, 2000))
            results += await bench_latency(log, "sqlite", 500)
            results += await bench_idle_memory(log, "sqlite")
    if _reachable(PG_URL, 5432):
        from workhive.commandlog.postgres import PostgresMessageLog

        pg = PostgresMessageLog(PG_URL, prefix=f"bench_{uuid.uuid4().hex[:8]}")
        await pg.open()
        try:
            results += await bench_dispatch(pg, "postgres", n)
            results += await bench_append(pg, "postgres", min(n, 2000))
            results += await bench_latency(pg, "postgres", 500)
        finally:
            await pg.drop()
            await pg.close()
    results += await _broker_logs(min(n, BROKER_N))
    return results


#: pre-filled messages on the broker logs (a broker round trip per batch: keep the run short)
BROKER_N = 20_000


async def _broker_logs(n: int) -> list[dict[str, Any]]:
    """The NATS JetStream log (when the loopback server answers) and the Kafka log (on a private
    Tansu broker, as the tests use), through the same URLs users give ``open_log``."""
    results: list[dict[str, Any]] = []
    name = f"bench_{uuid.uuid4().hex[:8]}"
    if _reachable(NATS_URL, 4222):
        results += await _one_log("nats", f"{NATS_URL.rstrip('/')}/{name.upper()}", n)
    from tests.backends.kafka.tansu import start_tansu, stop_tansu

    broker = start_tansu()
    try:
        results += await _one_log("kafka", f"{broker.url.rstrip('/')}/{name}", n)
    finally:
        stop_tansu(broker)
    return results


async def _one_log(backend: str, url: str, n: int) -> list[dict[str, Any]]:
    log: Any = open_log(url)
    await log.open()
    try:
        return [*await bench_dispatch(log, backend, n),
                *await bench_append(log, backend, min(n, 2000)),
                *await bench_latency(log, backend, 500)]
    finally:
        await log.drop()
        await log.close()


def run(n: int = 100_000) -> list[dict[str, Any]]:
    """Run every command-log benchmark with ``n`` pre-filled messages; return the results."""
    return asyncio.run(_run(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="messages to pre-fill")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = run(args.n)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['backend']:9} {r['benchmark']:32} {r['value']:>14,.3f} {r['unit']}")


if __name__ == "__main__":
    main()
