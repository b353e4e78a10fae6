"""Task history: per-minute outcome and latency buckets kept in the backend.

Why in the backend: every dashboard instance (and every browser tab) must draw the same
charts, and a dashboard restart must not forget the last day. So each worker adds up what it
ran per ``(minute, queue, task)`` in memory (:class:`HistoryRecorder`) and flushes the sums
every few seconds through :class:`SupportsHistory`, which the backend stores by *adding* to
what other workers flushed for the same key. Run times go into a fixed histogram
(:data:`BOUNDS_MS`), so p50/p95 over any range are merged counts, not averages of averages.

One bucket is a dozen integers; a day of one busy task is 1,440 of them. Backends keep
:data:`RETENTION` seconds and drop older buckets on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from workhive.errors import BackendError

if TYPE_CHECKING:
    from workhive._envelope import Envelope
    from workhive.backend import Action, Backend

logger = logging.getLogger(__name__)

MINUTE = 60
#: how long backends keep buckets (two days: the charts show at most one)
RETENTION = 2 * 86_400
#: upper bounds (ms) of the run-time histogram bins; one more bin holds everything slower
BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000)
BINS = len(BOUNDS_MS) + 1
#: the counters of a bucket besides the histogram, in storage order
COUNTERS = ("succeeded", "retried", "dead", "run_ms", "wait_ms")


def _zeros() -> list[int]:
    return [0] * BINS


@dataclass(slots=True)
class Bucket:
    """What one queue's task did during one minute (``minute``: unix seconds, a multiple of
    60). ``run_ms``/``wait_ms`` are sums over every attempt (``total``); ``hist`` counts
    attempts per run-time bin of :data:`BOUNDS_MS`."""

    minute: int
    queue: str
    task: str
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    run_ms: int = 0
    wait_ms: int = 0
    hist: list[int] = field(default_factory=_zeros)

    @property
    def key(self) -> tuple[int, str, str]:
        return self.minute, self.queue, self.task

    @property
    def total(self) -> int:
        return self.succeeded + self.retried + self.dead

    def add(self, other: Bucket) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]

    def counters(self) -> dict[str, int]:
        """Flat ``name -> count`` (histogram bins as ``h0``...), how Redis stores a bucket."""
        flat = {name: int(getattr(self, name)) for name in COUNTERS}
        flat.update({f"h{i}": n for i, n in enumerate(self.hist)})
        return flat

    @classmethod
    def from_counters(cls, minute: int, queue: str, task: str,
                      flat: dict[str, int]) -> Bucket:
        counts = {n: int(flat.get(n, 0)) for n in COUNTERS}
        return cls(minute, queue, task, counts["succeeded"], counts["retried"], counts["dead"],
                   counts["run_ms"], counts["wait_ms"],
                   [int(flat.get(f"h{i}", 0)) for i in range(BINS)])


def bin_of(ms: float) -> int:
    """The histogram bin of a run time in milliseconds."""
    for i, bound in enumerate(BOUNDS_MS):
        if ms <= bound:
            return i
    return len(BOUNDS_MS)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram as its bin's upper bound in ms (the slowest
    bin reads as twice the last bound); None when empty. Coarse by design: it is a chart."""
    total = sum(hist)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= rank and count:
            return float(BOUNDS_MS[i] if i < len(BOUNDS_MS) else BOUNDS_MS[-1] * 2)
    return float(BOUNDS_MS[-1] * 2)  # pragma: no cover - rank <= total always hits above


@runtime_checkable
class SupportsHistory(Protocol):
    """A backend that keeps task history (memory, SQLite, Redis, PostgreSQL)."""

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        """Add these buckets to the stored ones with the same ``(minute, queue, task)``."""

    async def history(self, since: float) -> list[Bucket]:
        """Every stored bucket whose minute starts at or after ``since`` (unix seconds)."""
        ...


def merge(buckets: Iterable[Bucket]) -> dict[tuple[int, str, str], Bucket]:
    """Buckets with equal keys added together (one per ``(minute, queue, task)``)."""
    out: dict[tuple[int, str, str], Bucket] = {}
    for b in buckets:
        have = out.get(b.key)
        if have is None:
            have = out[b.key] = Bucket(b.minute, b.queue, b.task)
        have.add(b)
    return out


class HistoryRecorder:
    """The worker's side: count each settled attempt, flush sums every ``flush_every`` s.

    Why not write each outcome: a busy worker settles thousands of tasks per second, and one
    small write per (minute, queue, task) every few seconds keeps the history nearly free.
    A failed flush keeps its sums for the next one, so a broker hiccup loses nothing.
    """

    def __init__(self, backend: Backend, flush_every: float = 2.0) -> None:
        self.store = history_of(backend)
        self.flush_every = flush_every
        self._pending: dict[tuple[int, str, str], Bucket] = {}
        self._last_flush = time.monotonic()
        self._flushing: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def observe(self, queue: str, env: Envelope | None, action: Action,
                started: float, now: float | None = None) -> None:
        """Count one attempt of ``env`` from ``queue`` that began at ``started`` (unix s)."""
        if self.store is None or env is None or action == "release":
            return
        end = time.time() if now is None else now
        minute = int(end // MINUTE * MINUTE)
        key = (minute, queue, env.name)
        bucket = self._pending.get(key)
        if bucket is None:
            bucket = self._pending[key] = Bucket(minute, queue, env.name)
        if action == "ack":
            bucket.succeeded += 1
        elif action == "retry":
            bucket.retried += 1
        else:
            bucket.dead += 1
        run_ms = max(end - started, 0.0) * 1000
        bucket.run_ms += round(run_ms)
        ready_at = max(env.eta or 0.0, env.enqueued_at)
        if ready_at:
            bucket.wait_ms += round(max(started - ready_at, 0.0) * 1000)
        bucket.hist[bin_of(run_ms)] += 1
        if self._flushing is None:  # one flush scheduled at a time, whatever the rate
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Flush ``flush_every`` s after the last flush (at once when closing)."""
        try:
            delay = self._last_flush + self.flush_every - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._closing.wait()
            await self.flush()
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Write what was counted since the last flush (kept for the next one on failure)."""
        self._last_flush = time.monotonic()
        if self.store is None or not self._pending:
            return
        batch, self._pending = list(self._pending.values()), {}
        try:
            await self.store.record_history(batch)
        except (BackendError, OSError) as exc:
            logger.warning("could not store task history (kept for the next try): %s", exc)
            for b in batch:
                have = self._pending.get(b.key)
                if have is None:
                    self._pending[b.key] = b
                else:
                    have.add(b)

    async def close(self) -> None:
        """Flush now and wait for it (the worker calls it on shutdown)."""
        self._closing.set()
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        await self.flush()


def history_of(backend: Backend) -> SupportsHistory | None:
    """Where ``backend`` keeps task history: itself, or the coordination store of a transport
    that has one (RabbitMQ, Kafka, NATS with ``coordination=``); None when nothing keeps it."""
    for candidate in (backend, getattr(backend, "coordination", None)):
        if isinstance(candidate, SupportsHistory):
            return candidate
    return None


def summarize(buckets: Iterable[Bucket]) -> dict[str, Any]:
    """Totals of some buckets: counts, failure rate, mean wait/run and p50/p95 run time."""
    total = Bucket(0, "", "")
    for b in buckets:
        total.add(b)
    n = total.total
    failed = total.retried + total.dead
    return {"succeeded": total.succeeded, "retried": total.retried, "dead": total.dead,
            "attempts": n, "failure_rate": round(failed / n, 4) if n else None,
            "run_ms_avg": round(total.run_ms / n, 1) if n else None,
            "wait_ms_avg": round(total.wait_ms / n, 1) if n else None,
            "p50_ms": percentile(total.hist, 0.5), "p95_ms": percentile(total.hist, 0.95)}


class InMemoryHistory:
    """:class:`SupportsHistory` in a dict: the memory backend keeps its history in one, and it
    is the reference for other backends (add on write, prune what is older than
    :data:`RETENTION`)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, str, str], Bucket] = {}

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        store = self._buckets
        for b in merge(buckets).values():
            have = store.get(b.key)
            if have is None:
                store[b.key] = b
            else:
                have.add(b)
        oldest = time.time() - RETENTION
        for key in [k for k in store if k[0] < oldest]:
            del store[key]

    async def history(self, since: float) -> list[Bucket]:
        merged = merge(b for b in self._buckets.values() if b.minute >= since)
        return sorted(merged.values(), key=lambda b: b.key)
