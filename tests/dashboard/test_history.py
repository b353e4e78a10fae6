"""Task history and paused queues in each backend that keeps them, and the worker obeying a
pause. Redis needs a server (tests/_services.py: skipped locally without one, fails in CI)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests._services import require_service, unique_name
from tests.dashboard.conftest import build_hive
from workhive import Hive
from workhive.backends import memory
from workhive.backends.sqlite import SQLiteBackend
from workhive.errors import BackendUnavailable
from workhive.history import (
    BOUNDS_MS,
    MINUTE,
    Bucket,
    HistoryRecorder,
    SupportsHistory,
    bin_of,
    percentile,
    summarize,
)
from workhive.pauses import SupportsPause
from workhive.testing import run_until_idle


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hive]:
    if request.param == "redis":
        url = require_service("redis") + f"?prefix={unique_name('hist')}"
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'h.db'}"
    hive = Hive(url)
    await hive.open()
    yield hive
    if request.param == "redis":
        await hive.backend.wipe()  # type: ignore[attr-defined]
        client = hive.backend._redis()  # type: ignore[attr-defined]
        prefix = hive.backend._keys.prefix  # type: ignore[attr-defined]
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
    await hive.close()


def _bucket(minute: int, task: str = "t", *, succeeded: int = 0, retried: int = 0,
            dead: int = 0, run_ms: int = 0) -> Bucket:
    """One bucket as a worker flushes it, with one histogram entry for its run time."""
    b = Bucket(minute, "q", task, succeeded, retried, dead, run_ms)
    b.hist[bin_of(run_ms)] += 1
    return b


async def test_history_adds_what_workers_flush(store: Hive) -> None:
    history = store.backend
    assert isinstance(history, SupportsHistory)
    now = int(time.time() // MINUTE * MINUTE)
    await history.record_history([_bucket(now, succeeded=2, run_ms=40),
                                  _bucket(now - MINUTE, succeeded=1, dead=1, run_ms=3)])
    await history.record_history([_bucket(now, succeeded=1, retried=1, run_ms=20),
                                  _bucket(now, task="other", succeeded=5)])
    got = {(b.minute, b.task): b for b in await history.history(now - 10 * MINUTE)}
    assert set(got) == {(now, "t"), (now - MINUTE, "t"), (now, "other")}
    this = got[(now, "t")]
    assert (this.succeeded, this.retried, this.dead, this.run_ms) == (3, 1, 0, 60)
    assert sum(this.hist) == 2
    assert [b.minute for b in await history.history(now)] == [now, now]


async def test_pauses_are_shared_state(store: Hive) -> None:
    pauses = store.backend
    assert isinstance(pauses, SupportsPause)
    await pauses.set_paused("a", True)
    await pauses.set_paused("a", True)  # idempotent
    await pauses.set_paused("b", True)
    await pauses.set_paused("b", False)
    assert await pauses.paused_queues() == {"a"}


def test_percentiles_and_summaries() -> None:
    hist = [0] * (len(BOUNDS_MS) + 1)
    hist[bin_of(3)] += 90  # <= 5 ms
    hist[bin_of(700)] += 10  # <= 1 s
    assert percentile(hist, 0.5) == 5.0 and percentile(hist, 0.95) == 1000.0
    assert percentile([0] * len(hist), 0.5) is None
    assert bin_of(10**9) == len(BOUNDS_MS)
    total = summarize([_bucket(0, succeeded=3, retried=1, run_ms=80)])
    assert total["attempts"] == 4 and total["failure_rate"] == 0.25
    assert summarize([])["failure_rate"] is None


async def test_a_failed_flush_keeps_its_sums() -> None:
    class Flaky(memory.MemoryBackend):
        down = True

        async def record_history(self, buckets: object) -> None:
            if self.down:
                raise BackendUnavailable("broker restarting")
            await super().record_history(buckets)  # type: ignore[arg-type]

    backend = Flaky()
    recorder = HistoryRecorder(backend, flush_every=3600)
    from workhive._envelope import Envelope

    env = Envelope(id="1", name="t", enqueued_at=time.time() - 1)
    recorder.observe("q", env, "ack", time.time() - 0.01)
    await recorder.flush()
    assert await backend.history(0) == []
    backend.down = False
    recorder.observe("q", env, "dead", time.time())
    await recorder.close()
    (bucket,) = await backend.history(0)
    assert (bucket.succeeded, bucket.dead) == (1, 1) and bucket.wait_ms >= 1000


async def test_the_worker_skips_paused_queues(tmp_path: Path) -> None:
    hive = build_hive(f"sqlite:///{tmp_path / 'p.db'}")
    backend = hive.backend
    assert isinstance(backend, SQLiteBackend)
    await backend.set_paused("fast", True)
    await hive.enqueue("demo:ok", {"n": 1})  # queue "fast"
    await hive.enqueue("demo:boom", {"note": "x"})  # queue "default"
    await run_until_idle(hive)  # idle: the paused queue's task waits for a resume
    stats = {s.queue: s for s in await backend.stats()}
    assert stats["fast"].ready == 1 and stats["fast"].processed == 0
    assert stats["default"].dead == 1
    await backend.set_paused("fast", False)
    await run_until_idle(hive)
    assert {s.queue: s for s in await backend.stats()}["fast"].processed == 1
    await hive.close()
