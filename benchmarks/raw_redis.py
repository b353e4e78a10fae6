"""The baseline the ``redis`` backend is measured against: redis-py with no framework at all.

``raw_drain_per_s`` pre-fills a list with ``n`` ~100-byte messages (pipelined LPUSH), then times
only the drain: pop 100 at a time (``LPOP key 100``) and "handle" each message with one pipelined
``INCR``, the same work the issue's peer comparison gave each task. It uses the synchronous
client with the hiredis parser, the cheapest loop redis-py offers, so the workhive/raw ratio is
an honest upper-bound comparison. It has no acks, leases, retries or priorities: it is the
ceiling, not a competitor. Its handler *is* one ``INCR`` whatever ``work`` says, so
``--work redis-incr`` (:mod:`benchmarks._work`) runs the same loop.

Run: ``python benchmarks/raw_redis.py [--url redis://127.0.0.1:6379/0] [-n 20000]``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import redis


def raw_drain_per_s(url: str, n: int, work: str = "noop") -> float:
    """Messages per second drained by the minimal pop-100 + pipelined-INCR loop (the INCR is
    the handler for every ``work``)."""
    client = redis.Redis.from_url(url)
    key = f"bench:raw:{uuid.uuid4().hex}"
    counter = f"{key}:handled"
    message = b"m" * 100
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.lpush(key, message)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        handled = 0
        start = time.perf_counter()
        while True:
            batch = client.lpop(key, 100)
            if not batch:
                break
            pipe = client.pipeline(transaction=False)
            for _ in batch:
                pipe.incr(counter)
            pipe.execute()
            handled += len(batch)
        elapsed = time.perf_counter() - start
        assert handled == n, (handled, n)
        return n / elapsed
    finally:
        client.delete(key, counter)
        client.close()


def raw_drain_async_per_s(url: str, n: int) -> float:
    """The same loop on ``redis.asyncio``: the floor an asyncio worker cannot go below."""
    import asyncio

    import redis.asyncio as aredis

    async def run() -> float:
        client = aredis.Redis.from_url(url)
        key = f"bench:raw:{uuid.uuid4().hex}"
        counter = f"{key}:handled"
        try:
            pipe = client.pipeline(transaction=False)
            for _ in range(n):
                pipe.lpush(key, b"m" * 100)
            await pipe.execute()
            handled = 0
            start = time.perf_counter()
            while batch := await client.lpop(key, 100):
                pipe = client.pipeline(transaction=False)
                for _ in batch:
                    pipe.incr(counter)
                await pipe.execute()
                handled += len(batch)
            elapsed = time.perf_counter() - start
            assert handled == n, (handled, n)
            return n / elapsed
        finally:
            await client.delete(key, counter)
            await client.aclose()

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates = [raw_drain_per_s(args.url, args.n) for _ in range(args.runs)]
    rates_async = [raw_drain_async_per_s(args.url, args.n) for _ in range(args.runs)]
    print(json.dumps({
        "raw_drain_per_s": round(max(rates)),
        "raw_drain_async_per_s": round(max(rates_async)),
        "runs": [round(r) for r in rates],
        "runs_async": [round(r) for r in rates_async],
    }))


if __name__ == "__main__":
    main()
