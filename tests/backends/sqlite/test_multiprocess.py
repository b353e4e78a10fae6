"""Several worker processes on one SQLite file: each message is settled exactly once and never
held by two processes at the same time (claims are BEGIN IMMEDIATE transactions)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from workhive._envelope import Envelope, make_envelope
from workhive.backend import QueueStats
from workhive.backends.sqlite import SQLiteBackend

pytestmark = [pytest.mark.sqlite, pytest.mark.integration]

WORKER = Path(__file__).with_name("_mp_worker.py")
N = 3000
PROCESSES = 3


async def _fill(url: str, envelopes: list[Envelope]) -> None:
    async with SQLiteBackend.from_url(url) as backend:
        await backend.enqueue(envelopes)


async def _stats(url: str) -> list[QueueStats]:
    async with SQLiteBackend.from_url(url) as backend:
        return await backend.stats()


def test_workers_in_several_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    url = f"sqlite:///{path}"
    envelopes = [make_envelope("mp:task", i, queue="mp") for i in range(N)]
    asyncio.run(_fill(url, envelopes))
    go = tmp_path / "go"
    outs = [tmp_path / f"out{i}.json" for i in range(PROCESSES)]
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(path), str(out), str(go)])
        for out in outs
    ]
    try:
        for out in outs:  # start claiming together, once every interpreter has imported
            while not Path(f"{out}.ready").exists():
                assert all(p.poll() is None for p in procs), "a worker died on start-up"
                time.sleep(0.01)
        go.touch()
        codes = [p.wait(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0] * PROCESSES

    records = [rec for out in outs for rec in json.loads(out.read_text())]
    assert len({rec[2] for rec in records}) == PROCESSES, "every process should claim some work"

    # Each (message, attempt) was delivered exactly once; each message acked exactly once.
    assert max(Counter((rec[0], rec[1]) for rec in records).values()) == 1
    acks = Counter(rec[0] for rec in records if rec[5] == "ack")
    assert set(acks) == {e.id for e in envelopes}
    assert set(acks.values()) == {1}

    # No two holds of one message overlap in time (fetch-returned .. settle-called).
    holds: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rec in records:
        holds[rec[0]].append((rec[3], rec[4]))
    for spans in holds.values():
        for (_, end), (start, _) in itertools.pairwise(sorted(spans)):
            assert end <= start

    [stats] = asyncio.run(_stats(url))
    assert (stats.ready, stats.in_flight, stats.delayed) == (0, 0, 0)
    assert (stats.processed, stats.failed) == (N, N // 10)



async def test_many_connections_opening_a_new_file_at_once(tmp_path: Path) -> None:
    """Workers started together on a fresh file all get in: the switch to WAL races with the
    other openers, and SQLite reports that race as "locked" without waiting."""
    for round_ in range(30):
        url = f"sqlite:///{tmp_path / f'fresh{round_}.db'}"
        backends = [SQLiteBackend.from_url(url) for _ in range(8)]
        await asyncio.gather(*(b.open() for b in backends))
        await asyncio.gather(*(b.close() for b in backends))
