"""``python -m benchmarks [--backend sqlite|redis|postgres|rabbitmq|nats|kafka|all] [--n N]
[--work noop|redis-incr] [--json]``.

For each backend: enqueue rate (batches of 1,000 through ``Hive.enqueue_many``), drain rate of
tasks by ONE worker process from a pre-filled queue, enqueue-to-start latency p50/p99 at a low
rate (100 probes, 20 ms apart) with an idle worker, the worker's peak RSS, and the same N
messages moved by a minimal hand-written loop on the same store (``raw_drain_per_s``), so the
result reads as a ratio. Each task (in the worker and in the raw loop alike) does nothing, or
with ``--work redis-incr`` one Redis ``INCR`` (:mod:`benchmarks._work`; the counter is checked
to equal N). ``worker_cpu_us_per_task`` is the worker's CPU time per drained task, steadier
than the rates on a busy host. For PostgreSQL also the producer's per-call rate:
``enqueue_call_per_s`` (``Hive.enqueue`` of one task per call, one call at a time) beside
``raw_enqueue_per_s`` (one bare autocommit ``INSERT`` per call, :mod:`benchmarks.raw_postgres`),
run in alternating rounds, and their ratio ``enqueue_call_vs_raw``.
``--commandlog`` runs the command-log benchmark instead.
``--scaling`` measures the drain rate with ``--processes`` worker processes (1, 2 and 4) per
backend, clusters included (:mod:`benchmarks.scaling`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._app import make_hive, task_for
from benchmarks._work import KEY_ENV, WORKS, check, counted, new_key, take_count

ROOT = Path(__file__).resolve().parents[1]
CALLS = 5_000  # per-call enqueues (PostgreSQL): at most this many, each one commit
ROUNDS = 5


def _worker(mode: str, url: str, prefix: str | None, env: dict[str, str], *extra: str) -> Any:
    cmd = [sys.executable, "-m", "benchmarks._worker", mode, "--url", url, *extra]
    if prefix:
        cmd += ["--prefix", prefix]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _fill(url: str, prefix: str | None, n: int, work: str) -> float:
    hive = make_hive(url, prefix)
    await hive.open()
    envs = [hive.build(task_for(work), {"i": i}) for i in range(n)]
    started = time.perf_counter()
    for start in range(0, n, 1000):
        await hive.enqueue_many([e for e in envs[start:start + 1000] if e is not None])
    elapsed = time.perf_counter() - started
    await hive.close()
    return n / elapsed


async def _enqueue_calls(url: str, raw_url: str, calls: int) -> tuple[float, float]:
    """Per-call enqueue rates of workhive and of the bare INSERT loop, in alternating rounds so
    a busy host's load falls on both alike. The tasks stay queued until the schema is wiped."""
    from benchmarks.raw_postgres import RawEnqueue

    hive = make_hive(url)
    await hive.open()
    raw = await RawEnqueue.open(raw_url)
    per_round = max(calls // ROUNDS, 1)
    ours = theirs = 0.0
    try:
        await hive.enqueue("bench:noop", {"i": -1})  # warm up: pool, prepared statements
        await raw.run(100)
        for _ in range(ROUNDS):
            theirs += await raw.run(per_round)
            started = time.perf_counter()
            for i in range(per_round):
                await hive.enqueue("bench:noop", {"i": i})
            ours += time.perf_counter() - started
    finally:
        await raw.close()
        await hive.close()
    return per_round * ROUNDS / ours, per_round * ROUNDS / theirs


async def _probe(url: str, prefix: str | None, count: int) -> None:
    hive = make_hive(url, prefix)
    await hive.open()
    for _ in range(count):
        await hive.enqueue("bench:probe", {})
        await asyncio.sleep(0.02)
    await hive.close()


async def _wipe(url: str, prefix: str | None) -> None:
    hive = make_hive(url, prefix)
    await hive.open()
    wipe = getattr(hive.backend, "wipe", None)
    if wipe is not None:
        await wipe()
    await hive.close()


def _latency(url: str, prefix: str | None, tmp: Path) -> tuple[float, float]:
    lat_file = tmp / f"latency-{uuid.uuid4().hex}.txt"
    env = {"BENCH_LATENCY_FILE": str(lat_file)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._worker", "serve", "--url", url, "--seconds", "5",
         "--concurrency", "10", *(["--prefix", prefix] if prefix else [])],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)  # let the worker start and go idle
    asyncio.run(_probe(url, prefix, 100))
    proc.communicate(timeout=60)
    samples = sorted(float(x) for x in lat_file.read_text().split())
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99


def run_backend(name: str, n: int, work: str = "noop") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        prefix: str | None = None
        if name == "sqlite":
            from benchmarks.raw_sqlite import raw_drain_per_s as raw_sqlite

            url = f"sqlite:///{tmp / 'bench.db'}"
            raw = raw_sqlite(str(tmp / "raw.db"), n, work=work)
        elif name == "redis":
            from benchmarks.raw_redis import raw_drain_per_s as raw_redis

            url = os.environ.get("WORKHIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            raw = raw_redis(url, n, work=work)
        elif name == "postgres":
            from benchmarks.raw_postgres import raw_drain_per_s as raw_postgres

            base = os.environ.get("WORKHIVE_TEST_POSTGRES_URL",
                                  "postgresql://postgres@127.0.0.1:5432/test")
            url = f"{base}?schema=bench_{uuid.uuid4().hex[:8]}"
            raw = raw_postgres(base, n, work=work)
        elif name == "rabbitmq":
            from benchmarks.raw_rabbitmq import raw_drain_per_s as raw_rabbitmq

            url = os.environ.get("WORKHIVE_TEST_RABBITMQ_URL",
                                 "amqp://guest:guest@127.0.0.1:5672/")
            prefix = f"bench-{uuid.uuid4().hex[:8]}"  # the exchange option: names every queue
            raw = raw_rabbitmq(url, n, work=work)
        elif name == "nats":
            from benchmarks.raw_nats import raw_drain_per_s as raw_nats

            url = os.environ.get("WORKHIVE_TEST_NATS_URL", "nats://127.0.0.1:4222")
            prefix = f"BENCH_{uuid.uuid4().hex[:8]}"  # the stream option
            raw = raw_nats(url, n, work=work)
        elif name == "kafka":
            from tests.backends.kafka.tansu import start_tansu, stop_tansu

            from benchmarks.raw_kafka import raw_drain_per_s as raw_kafka

            broker = start_tansu()  # a private in-memory Kafka-API broker for this run
            stack.callback(stop_tansu, broker)
            url = broker.url + "?session_timeout=1"
            prefix = f"bench-{uuid.uuid4().hex[:8]}"  # the topic option
            raw = raw_kafka(broker.url, n, work=work)
        else:
            raise SystemExit(f"unknown backend {name!r}")
        key = new_key()
        per_call: dict[str, Any] = {}
        try:
            enqueue_rate = asyncio.run(_fill(url, prefix, n, work))
            drained = _worker("drain", url, prefix, {KEY_ENV: key}, "--n", str(n))
            counted(work, take_count(work, key), n)
            p50, p99 = _latency(url, prefix, tmp)
            if name == "postgres":
                ours, bare = asyncio.run(_enqueue_calls(url, base, min(n, CALLS)))
                per_call = {"enqueue_call_per_s": round(ours), "raw_enqueue_per_s": round(bare),
                            "enqueue_call_vs_raw": round(ours / bare, 3)}
        finally:
            if (prefix or name == "postgres") and name != "kafka":
                asyncio.run(_wipe(url, prefix))
    return {
        "backend": name,
        "n": n,
        "work": work,
        "enqueue_per_s": round(enqueue_rate),
        "drain_per_s": round(drained["drain_per_s"]),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "worker_rss_mb": round(drained["rss_mb"], 1),
        "worker_cpu_us_per_task": round(drained["cpu_s"] / n * 1e6),
        "raw_drain_per_s": round(raw),
        "drain_vs_raw": round(drained["drain_per_s"] / raw, 3),
        **per_call,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--backend", default="all",
                        help="sqlite, redis, postgres, rabbitmq, nats, kafka or all")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--work", default="noop", choices=WORKS,
                        help="what each task does: nothing, or one Redis INCR")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--commandlog", action="store_true")
    parser.add_argument("--scaling", action="store_true",
                        help="drain rate against worker processes (benchmarks/scaling.py)")
    parser.add_argument("--processes", default="1,2,4",
                        help="--scaling: worker process counts, comma-separated")
    parser.add_argument("--queues", type=int, default=4,
                        help="--scaling: queues the tasks are spread over")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="--scaling: tasks in flight per worker process")
    args = parser.parse_args()
    if args.commandlog:
        from benchmarks import commandlog

        results = commandlog.run()
    elif args.scaling:
        from benchmarks import scaling

        names = list(scaling.BACKENDS) if args.backend == "all" else args.backend.split(",")
        counts = [int(p) for p in args.processes.split(",")]
        results = scaling.run(names, args.n, counts, args.queues, args.concurrency)
    else:
        names = (["sqlite", "redis", "postgres", "rabbitmq", "nats", "kafka"]
                 if args.backend == "all"
                 else args.backend.split(","))
        results = [run_backend(name, args.n, check(args.work)) for name in names]
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print("  ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
