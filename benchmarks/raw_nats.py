"""The baseline the ``nats`` backend is measured against: nats-py with no framework at all.

``raw_drain_per_s`` pre-fills a work-queue stream with ``n`` ~100-byte messages (``publish``
gathered per 1,000), then times only the drain: one durable pull consumer, ``fetch(100)``, and an
``ack_sync`` per message, the acks of one batch gathered (``ack()`` alone is fire-and-forget and
would not be a fair comparison with a backend that confirms every ack). It has no leases to
extend, no retries, delays or priorities. It is the loop nats-py's API leads to, not a strict
ceiling: the workhive backend confirms a batch's acks through one reply subject instead of one
``ack_sync`` request each, which costs less CPU, so its drain can beat this loop.
``raw_drain_sequential_per_s`` acks one message after another, the loop most examples show.
With ``work="redis-incr"`` each message is handled by one Redis ``INCR`` before its ack (the
messages of a batch concurrently, like the acks).

Run: ``python -m benchmarks.raw_nats [--url nats://127.0.0.1:4222] [-n 20000]
[--work redis-incr]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from benchmarks._work import WORKS, Work, counted


async def _drain(url: str, n: int, *, gathered: bool, work: str = "noop",
                 cpu: list[float] | None = None) -> float:
    """The drain rate; appends the drain's CPU seconds (user + system) to ``cpu``."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    handler = Work(work)

    async def handle(m: Msg) -> None:
        await handler()
        await m.ack_sync()

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
        started, cpu_started = time.perf_counter(), time.process_time()
        while handled < n:
            msgs = await sub.fetch(100, timeout=5)
            if gathered and work == "noop":
                await asyncio.gather(*(m.ack_sync() for m in msgs))
            elif gathered:
                await asyncio.gather(*(handle(m) for m in msgs))
            else:
                for m in msgs:
                    await handle(m)
            handled += len(msgs)
        elapsed = time.perf_counter() - started
        if cpu is not None:
            cpu.append(time.process_time() - cpu_started)
        assert handled == n, (handled, n)
        counted(work, await handler.count(), n)
        return n / elapsed
    finally:
        await handler.aclose()
        await js.delete_stream(name)
        await nc.close()


def raw_drain_per_s(url: str, n: int, work: str = "noop",
                    cpu: list[float] | None = None) -> float:
    """Messages per second drained by fetch(100) + gathered ack_sync per message."""
    return asyncio.run(_drain(url, n, gathered=True, work=work, cpu=cpu))


def raw_drain_sequential_per_s(url: str, n: int, work: str = "noop") -> float:
    """The same with one message after another."""
    return asyncio.run(_drain(url, n, gathered=False, work=work))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="noop", choices=WORKS)
    args = parser.parse_args()
    cpu: list[float] = []
    rates = [raw_drain_per_s(args.url, args.n, args.work, cpu) for _ in range(args.runs)]
    sequential = [raw_drain_sequential_per_s(args.url, args.n, args.work)
                  for _ in range(args.runs)]
    print(json.dumps({
        "raw_drain_per_s": round(max(rates)),
        "cpu_us_per_msg": [round(c / args.n * 1e6) for c in cpu],
        "raw_drain_sequential_per_s": round(max(sequential)),
        "runs": [round(r) for r in rates],
        "runs_sequential": [round(r) for r in sequential],
    }))


if __name__ == "__main__":
    main()
