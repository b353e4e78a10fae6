"""The baseline the ``nats`` backend is measured against: nats-py with no framework at all.

``raw_drain_per_s`` pre-fills a work-queue stream with ``n`` ~100-byte messages (``publish``
gathered per 1,000), then times only the drain: one durable pull consumer, ``fetch(100)``, and an
``ack_sync`` per message, the acks of one batch gathered (``ack()`` alone is fire-and-forget and
would not be a fair comparison with a backend that confirms every ack). It has no leases to
extend, no retries, delays or priorities: it is the ceiling, not a competitor.
``raw_drain_sequential_per_s`` acks one message after another, the loop most examples show.

Run: ``python benchmarks/raw_nats.py [--url nats://127.0.0.1:4222] [-n 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig


async def _drain(url: str, n: int, *, gathered: bool) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = f"BENCHRAW{uuid.uuid4().hex[:8]}"
    try:
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"],
                                         retention=RetentionPolicy.WORK_QUEUE))
        message = b"m" * 100
        for start in range(0, n, 1000):
            await asyncio.gather(*(js.publish(f"{name}.work", message)
                                   for _ in range(min(1000, n - start))))
        await js.add_consumer(name, ConsumerConfig(durable_name="raw", ack_wait=30,
                                                   ack_policy=AckPolicy.EXPLICIT,
                                                   max_ack_pending=-1))
        sub = await js.pull_subscribe_bind("raw", stream=name)
        handled = 0
        started = time.perf_counter()
        while handled < n:
            msgs = await sub.fetch(100, timeout=5)
            if gathered:
                await asyncio.gather(*(m.ack_sync() for m in msgs))
            else:
                for m in msgs:
                    await m.ack_sync()
            handled += len(msgs)
        elapsed = time.perf_counter() - started
        assert handled == n, (handled, n)
        return n / elapsed
    finally:
        await js.delete_stream(name)
        await nc.close()


def raw_drain_per_s(url: str, n: int) -> float:
    """Messages per second drained by fetch(100) + gathered ack_sync per message."""
    return asyncio.run(_drain(url, n, gathered=True))


def raw_drain_sequential_per_s(url: str, n: int) -> float:
    """The same with one ack_sync after another."""
    return asyncio.run(_drain(url, n, gathered=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates = [raw_drain_per_s(args.url, args.n) for _ in range(args.runs)]
    sequential = [raw_drain_sequential_per_s(args.url, args.n) for _ in range(args.runs)]
    print(json.dumps({
        "raw_drain_per_s": round(max(rates)),
        "raw_drain_sequential_per_s": round(max(sequential)),
        "runs": [round(r) for r in rates],
        "runs_sequential": [round(r) for r in sequential],
    }))


if __name__ == "__main__":
    main()
