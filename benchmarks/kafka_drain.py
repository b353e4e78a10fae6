"""One workhive worker draining a pre-filled Kafka queue, beside the raw aiokafka loop.

``python benchmarks/kafka_drain.py [--url kafka://127.0.0.1:9092] [-n 20000] [--runs 3]
[--profile out.prof]``

Fills ``n`` no-op tasks through ``Hive.enqueue_many`` (4 partitions, 1,000 per call), then times
one in-process ``hive.worker(concurrency=50)`` from ``run(until_idle=True)`` to the n-th
completion, the way ``benchmarks/_worker.py`` times the other backends: the group join is
included, as it is in :mod:`benchmarks.raw_kafka`. Both use a 1 s session timeout (Tansu joins
take about one). Without ``--url`` it starts a private Tansu broker. ``--profile`` writes a
cProfile of the last workhive drain. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.backends.kafka.tansu import start_tansu, stop_tansu

from benchmarks._app import bench
from benchmarks.raw_kafka import raw_drain_per_s
from workhive import Hive
from workhive.backends.kafka import KafkaBackend


def _hive(url: str, tag: str) -> Hive:
    hive = Hive(KafkaBackend.from_url(url, topic=f"b{tag}", group=f"g{tag}",
                                      session_timeout=1.0))
    hive.include(bench)
    return hive


async def _drain(url: str, n: int, concurrency: int, profile: str | None) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    hive = _hive(url, tag)
    await hive.open()
    envs = [hive.build("bench:noop", {"i": i}) for i in range(n)]
    for start in range(0, n, 1000):
        await hive.enqueue_many([e for e in envs[start:start + 1000] if e is not None])
    await hive.close()
    hive = _hive(url, tag)
    await hive.open()
    worker = hive.worker(concurrency=concurrency, cron=False)
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    running = asyncio.create_task(worker.run(until_idle=True))
    first = 0.0
    while worker.processed < n and not running.done():
        if not first and worker.processed:
            first = time.perf_counter() - started
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile or "")
    await running
    await hive.close()
    return {"drain_per_s": worker.processed / elapsed, "processed": worker.processed,
            "first_s": first, "after_first_per_s": (n - 1) / max(1e-9, elapsed - first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="kafka://host:port (default: start Tansu)")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--profile", default=None, help="write a cProfile of the last drain")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw aiokafka loop")
    args = parser.parse_args()
    broker = start_tansu() if args.url is None else None
    try:
        url = args.url or (broker.url if broker else "")
        runs = [asyncio.run(_drain(url, args.n, args.concurrency,
                                   args.profile if i == args.runs - 1 else None))
                for i in range(args.runs)]
        raw = 0.0 if args.no_raw else max(raw_drain_per_s(url, args.n) for _ in range(args.runs))
    finally:
        if broker is not None:
            stop_tansu(broker)
    best = max(r["drain_per_s"] for r in runs)
    print(json.dumps({
        "backend": "kafka", "n": args.n, "drain_per_s": round(best),
        "runs": [round(r["drain_per_s"]) for r in runs],
        "first_s": [round(r["first_s"], 2) for r in runs],
        "after_first_per_s": [round(r["after_first_per_s"]) for r in runs],
        "raw_drain_per_s": round(raw), "drain_vs_raw": round(best / raw, 3) if raw else None}))


if __name__ == "__main__":
    main()
