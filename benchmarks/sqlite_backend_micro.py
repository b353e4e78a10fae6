"""The SQLite backend alone, no worker runtime: how fast can it enqueue and drain?

Measures ``enqueue`` of pre-built envelopes in chunks, then a drain of the same messages with
``fetch(limit=batch)`` + ``settle(ack)`` per batch, and the raw sqlite3 loop of
:mod:`benchmarks.raw_sqlite` on a fresh file for the ratio. Also the idle-wait pick-up latency:
enqueue through the same backend (asyncio wake) and through a second backend on the same file
(``PRAGMA data_version`` polling). Reports; never asserts.

Run: ``python -m benchmarks.sqlite_backend_micro [n] [batch]``.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time

from benchmarks.raw_sqlite import raw_drain_per_s
from workhive._envelope import make_envelope
from workhive.backend import Settlement
from workhive.backends.sqlite import SQLiteBackend


async def rates(path: str, n: int, batch: int) -> tuple[float, float]:
    async with SQLiteBackend.from_url(f"sqlite:///{path}") as backend:
        envelopes = [make_envelope("bench:noop", {"i": i}) for i in range(n)]
        start = time.perf_counter()
        for i in range(0, n, 1000):
            await backend.enqueue(envelopes[i : i + 1000])
        enqueue_rate = n / (time.perf_counter() - start)
        done = 0
        start = time.perf_counter()
        while True:
            batch_ = await backend.fetch(["default"], batch, lease=60.0, wait=0.0)
            if not batch_:
                break
            await backend.settle([Settlement(d, "ack") for d in batch_])
            done += len(batch_)
        drain_rate = done / (time.perf_counter() - start)
        assert done == n, (done, n)
    return enqueue_rate, drain_rate


async def latency(path: str, samples: int, same_object: bool) -> list[float]:
    """Milliseconds from enqueue to a waiting fetch returning it, idle worker."""
    url = f"sqlite:///{path}"
    async with SQLiteBackend.from_url(url) as worker, SQLiteBackend.from_url(url) as other:
        producer = worker if same_object else other
        out: list[float] = []
        for i in range(samples):
            fetcher = asyncio.create_task(worker.fetch(["lat"], 1, lease=30.0, wait=5.0))
            await asyncio.sleep(random.uniform(0.02, 0.2))  # idle: the poll interval grows
            start = time.perf_counter()
            await producer.enqueue([make_envelope("bench:lat", i, queue="lat")])
            got = await fetcher
            out.append((time.perf_counter() - start) * 1000)
            await worker.settle([Settlement(d, "ack") for d in got])
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    runs = 3  # best of three, alternating, to damp a noisy machine
    enq = drain = raw = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            e, d = asyncio.run(rates(os.path.join(tmp, f"backend{i}.db"), n, batch))
            enq, drain = max(enq, e), max(drain, d)
            raw = max(raw, raw_drain_per_s(os.path.join(tmp, f"raw{i}.db"), n, batch))
        local = asyncio.run(latency(os.path.join(tmp, "lat.db"), 50, True))
        remote = asyncio.run(latency(os.path.join(tmp, "lat.db"), 50, False))
    print(f"n={n} batch={batch} (best of {runs})")
    print(f"backend enqueue: {enqueue_per_s(enq)}")
    print(f"backend drain (fetch+ack): {enqueue_per_s(drain)}")
    print(f"raw sqlite3 drain: {enqueue_per_s(raw)}  ratio {drain / raw:.0%}")
    for label, xs in (("same backend", local), ("other connection", remote)):
        qs = statistics.quantiles(xs, n=100)
        print(f"idle pick-up latency, {label}: p50 {qs[49]:.2f} ms, p99 {qs[98]:.2f} ms")


def enqueue_per_s(rate: float) -> str:
    return f"{rate:,.0f} msg/s"


if __name__ == "__main__":
    main()
