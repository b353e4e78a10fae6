"""The baseline the ``rabbitmq`` backend is measured against: aio-pika with no framework.

``raw_drain_per_s`` declares one durable quorum queue, publishes ``n`` persistent ~100-byte
messages with publisher confirms (gathered 500 at a time), then times only the drain: one
consumer with prefetch 100 whose callback "handles" each message (a counter) and acks it
right after the handler. That is the least a correct at-least-once consumer can do on
RabbitMQ: no priorities, no retries, no dead letters, no batching. It is the ceiling, not a
competitor. With ``work="redis-incr"`` the handler is one Redis ``INCR``.

Run: ``python benchmarks/raw_rabbitmq.py [--url amqp://guest:guest@127.0.0.1:5672/] [-n 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from benchmarks._work import WORKS, Work, counted

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def _raw(url: str, n: int, work: str) -> float:
    connection = await aio_pika.connect_robust(url)
    handler = Work(work)
    name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(name, durable=True,
                                            arguments={"x-queue-type": "quorum"})
        body = b"m" * 100
        for start in range(0, n, 500):
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name)
                for _ in range(min(500, n - start))))
        consumer_channel = await connection.channel(publisher_confirms=False)
        await consumer_channel.set_qos(prefetch_count=100)
        consuming = await consumer_channel.get_queue(name)
        handled = 0
        done = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal handled
            await handler()
            handled += 1
            await message.ack()
            if handled >= n:
                done.set()

        start_t = time.perf_counter()
        tag = await consuming.consume(on_message)
        await done.wait()
        elapsed = time.perf_counter() - start_t
        assert handled == n, (handled, n)
        counted(work, await handler.count(), n)
        await consuming.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return n / elapsed
    finally:
        await handler.aclose()
        await connection.close()


def raw_drain_per_s(url: str, n: int, work: str = "noop") -> float:
    """Messages per second drained by the minimal consume + ack loop."""
    return asyncio.run(_raw(url, n, work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="noop", choices=WORKS)
    args = parser.parse_args()
    rates = [raw_drain_per_s(args.url, args.n, args.work) for _ in range(args.runs)]
    print(json.dumps({"raw_drain_per_s": round(max(rates)), "runs": [round(r) for r in rates]}))


if __name__ == "__main__":
    main()
