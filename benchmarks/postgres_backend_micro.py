"""The Postgres backend alone, no worker runtime: how fast can it enqueue and drain?

Measures ``enqueue`` of pre-built envelopes in chunks of 1000, then a drain of the same messages
with ``fetch(limit=batch)`` + ``settle(ack)`` per batch, from one client and from several
concurrent clients (``FOR UPDATE SKIP LOCKED`` lets them claim side by side). Also the idle
pick-up latency: a fetch waiting on one backend, the enqueue through another (LISTEN/NOTIFY).
Each run uses its own schema, dropped afterwards. Reports; never asserts.

Run: ``python -m benchmarks.postgres_backend_micro [n] [batch]`` with
``WORKHIVE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid

from workhive._envelope import make_envelope
from workhive.backend import Settlement
from workhive.backends.postgres import PostgresBackend

URL = os.environ.get("WORKHIVE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _schema() -> str:
    return f"bench_{uuid.uuid4().hex[:10]}"


async def rates(n: int, batch: int, clients: int) -> tuple[float, float]:
    schema = _schema()
    backends = [PostgresBackend.from_url(URL, schema=schema) for _ in range(clients)]
    try:
        producer = backends[0]
        envelopes = [make_envelope("bench:noop", {"i": i}) for i in range(n)]
        start = time.perf_counter()
        for i in range(0, n, 1000):
            await producer.enqueue(envelopes[i : i + 1000])
        enqueue_rate = n / (time.perf_counter() - start)
        for b in backends:
            await b.open()
        done = 0

        async def drain(backend: PostgresBackend) -> None:
            nonlocal done
            while True:
                got = await backend.fetch(["default"], batch, lease=60.0, wait=0.0)
                if not got:
                    return
                await backend.settle([Settlement(d, "ack") for d in got])
                done += len(got)

        start = time.perf_counter()
        await asyncio.gather(*(drain(b) for b in backends))
        drain_rate = done / (time.perf_counter() - start)
        assert done == n, (done, n)
    finally:
        for b in backends:
            await b.close()
        await backends[0].wipe()
    return enqueue_rate, drain_rate


async def latency(samples: int) -> list[float]:
    """Milliseconds from enqueue (another backend) to a waiting fetch returning it."""
    schema = _schema()
    worker = PostgresBackend.from_url(URL, schema=schema, poll_interval=30)
    producer = PostgresBackend.from_url(URL, schema=schema)
    out: list[float] = []
    try:
        await worker.open()
        for i in range(samples):
            fetcher = asyncio.create_task(worker.fetch(["lat"], 1, lease=30.0, wait=5.0))
            await asyncio.sleep(random.uniform(0.02, 0.1))
            start = time.perf_counter()
            await producer.enqueue([make_envelope("bench:lat", i, queue="lat")])
            got = await fetcher
            out.append((time.perf_counter() - start) * 1000)
            await worker.settle([Settlement(d, "ack") for d in got])
    finally:
        await worker.close()
        await producer.close()
        await worker.wipe()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    runs = 3
    print(f"n={n} batch={batch} (best of {runs}) at {URL}")
    for clients in (1, 4):
        enq = drain = 0.0
        for _ in range(runs):
            e, d = asyncio.run(rates(n, batch, clients))
            enq, drain = max(enq, e), max(drain, d)
        print(f"{clients} client(s): enqueue {enq:,.0f} msg/s, "
              f"drain (fetch+ack) {drain:,.0f} msg/s")
    xs = asyncio.run(latency(50))
    qs = statistics.quantiles(xs, n=100)
    print(f"idle pick-up latency, other backend: p50 {qs[49]:.2f} ms, p99 {qs[98]:.2f} ms")


if __name__ == "__main__":
    main()
