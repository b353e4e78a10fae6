"""Micro-benchmark of the ``redis`` backend alone (no worker runtime), for tuning.

Measures, on a fresh key prefix that is wiped afterwards:

* ``enqueue_per_s``: ``enqueue`` of pre-built envelopes in batches of ``--batch``;
* ``drain_per_s``: a loop of ``fetch(limit=--batch)``, decode every envelope (a worker must),
  then one ``settle`` of acks for the batch: the backend's share of a worker's drain;
* ``drain_incr_per_s``: the same drain with one pipelined ``INCR`` per message, the work the
  raw loop in :mod:`raw_redis` does, so the two read as a ratio;
* ``latency_ms``: enqueue-to-fetch latency at a low rate (one message every 5 ms, a consumer
  blocked in ``fetch(wait=1)``), p50 / p99.

Run: ``python benchmarks/redis_backend_micro.py [--url ...] [-n 20000] [--batch 100] [--json]``.
Numbers depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement
from workhive.backends.redis import RedisBackend


async def _enqueue(backend: RedisBackend, n: int, batch: int, queue: str) -> float:
    envelopes = [make_envelope("bench.noop", {"i": i}, queue=queue) for i in range(n)]
    start = time.perf_counter()
    for i in range(0, n, batch):
        await backend.enqueue(envelopes[i : i + batch])
    return n / (time.perf_counter() - start)


async def _drain(backend: RedisBackend, n: int, batch: int, queue: str, incr: bool) -> float:
    client = backend._redis()
    counter = f"{backend.settings.prefix}:bench:handled"
    done = 0
    start = time.perf_counter()
    while done < n:
        got = await backend.fetch([queue], batch, lease=30.0, wait=1.0)
        for d in got:
            decode(d.body)
        if incr:
            pipe = client.pipeline(transaction=False)
            for _ in got:
                pipe.incr(counter)
            await pipe.execute()
        await backend.settle([Settlement(d, "ack") for d in got])
        done += len(got)
    return n / (time.perf_counter() - start)


async def _latency(backend: RedisBackend, samples: int, queue: str) -> dict[str, float]:
    sent: dict[str, float] = {}
    lat: list[float] = []

    async def consume() -> None:
        while len(lat) < samples:
            for d in await backend.fetch([queue], 10, lease=30.0, wait=1.0):
                now = time.perf_counter()
                lat.append(now - sent[decode(d.body).id])
                await backend.settle([Settlement(d, "ack")])

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    for _ in range(samples):
        env = make_envelope("bench.noop", None, queue=queue)
        sent[env.id] = time.perf_counter()
        await backend.enqueue([env])
        await asyncio.sleep(0.005)
    await asyncio.wait_for(consumer, 10)
    lat.sort()
    return {"p50": 1000 * statistics.median(lat), "p99": 1000 * lat[int(len(lat) * 0.99) - 1]}


async def run(url: str, n: int, batch: int) -> dict[str, Any]:
    backend = RedisBackend.from_url(url, prefix=f"bench_{uuid.uuid4().hex[:8]}")
    await backend.open()
    try:
        enq = await _enqueue(backend, n, batch, "bench")
        drain = await _drain(backend, n, batch, "bench", incr=False)
        await _enqueue(backend, n, batch, "bench")
        drain_incr = await _drain(backend, n, batch, "bench", incr=True)
        latency = await _latency(backend, 300, "lat")
        return {
            "enqueue_per_s": round(enq),
            "drain_per_s": round(drain),
            "drain_incr_per_s": round(drain_incr),
            "latency_ms": {k: round(v, 3) for k, v in latency.items()},
            "n": n,
            "batch": batch,
        }
    finally:
        await backend.wipe()
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--raw", action="store_true", help="also run raw_redis and print ratios")
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.n, args.batch))
    if args.raw:
        try:
            from benchmarks.raw_redis import raw_drain_async_per_s, raw_drain_per_s
        except ImportError:  # run as a script from the repo root
            from raw_redis import (  # type: ignore[import-not-found,no-redef]
                raw_drain_async_per_s,
                raw_drain_per_s,
            )
        raw = raw_drain_per_s(args.url, args.n)
        raw_async = raw_drain_async_per_s(args.url, args.n)
        result["raw_drain_per_s"] = round(raw)
        result["raw_drain_async_per_s"] = round(raw_async)
        result["ratio_incr_vs_raw"] = round(result["drain_incr_per_s"] / raw, 3)
        result["ratio_incr_vs_raw_async"] = round(result["drain_incr_per_s"] / raw_async, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
