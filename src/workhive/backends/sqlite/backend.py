"""The default backend: one durable SQLite file, shared safely by several worker processes.

``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (options as query parameters or keyword
arguments: ``busy_timeout``, ``max_poll_interval``, ``idempotency_ttl``).

Threading: every blocking sqlite3 call runs on one dedicated thread per backend, which owns the
connection; the event loop only awaits it. Concurrency across processes comes from SQLite
itself: WAL mode lets readers run beside the one writer, and each claim is a ``BEGIN
IMMEDIATE`` transaction, so two workers never lease the same message (see ``store``).

Waiting: an idle ``fetch`` does not re-run its claim in a loop. It polls ``PRAGMA
data_version`` (which changes when any other connection commits) with a sleep growing from
1 ms to ``max_poll_interval``, wakes at once on an enqueue through this same backend object,
and wakes at the nearest eta or lease expiry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from workhive._envelope import Envelope
from workhive.backend import (
    Capability,
    DeadLetter,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    WorkerInfo,
)
from workhive.backends.sqlite import schema
from workhive.backends.sqlite.browse import SQLiteBrowse
from workhive.backends.sqlite.history import SQLiteHistory
from workhive.backends.sqlite.results import SQLiteResults
from workhive.backends.sqlite.settings import MIN_POLL, SQLiteSettings
from workhive.backends.sqlite.store import Handoff, SQLiteStore
from workhive.errors import BackendError

__all__ = ["SQLiteBackend", "SQLiteSettings"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

_STAT_POLL = 0.004  # longest sleep between file-mark checks while idle


class SQLiteBackend(SQLiteResults, SQLiteHistory, SQLiteBrowse):
    """Durable queue, delays, priorities, leases, DLQ, events, cron, counters, inspection.

    Thread-safety: use one instance from one event loop; share the *file*, not the object,
    across processes. Who acks: only :meth:`settle`, matching the lease token of the fetch.
    """

    name = "sqlite"
    features = Features(frozenset(Capability), lease="timed", results=True, cancel=True)

    def __init__(self, settings: SQLiteSettings, *, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.path = settings.path
        self._wal_path = settings.path + "-wal"
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._store: SQLiteStore | None = None
        self._closed = False
        self._open_lock: asyncio.Lock | None = None
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteBackend:
        clock = options.pop("clock", time.time)
        return cls(SQLiteSettings.from_url(url, **options), clock=clock)

    def __repr__(self) -> str:
        return f"SQLiteBackend(path={self.path!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it and its tables if needed). Idempotent."""
        if self._store is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._store is not None:
                return
            executor = ThreadPoolExecutor(1, thread_name_prefix="workhive-sqlite")
            settings = self.settings
            try:
                con = await asyncio.get_running_loop().run_in_executor(
                    executor, schema.connect, settings.path, settings.busy_timeout
                )
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor = executor
            self._store = SQLiteStore(con, self._clock, settings.idempotency_ttl)
            self._closed = False
            logger.debug("opened sqlite backend %s", self.path)

    async def close(self) -> None:
        """Close the connection; leased messages stay leased until their lease runs out."""
        store, executor = self._store, self._executor
        if store is None or executor is None:
            return
        self._store, self._executor, self._closed = None, None, True
        try:
            await asyncio.get_running_loop().run_in_executor(executor, store.close)
        finally:
            executor.shutdown(wait=False)

    async def __aenter__(self) -> SQLiteBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, fn: Callable[Concatenate[SQLiteStore, P], T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on the connection's thread, driver errors translated."""
        executor = await self._ready()
        return await asyncio.get_running_loop().run_in_executor(
            executor, self._guard, self._store, fn, *args
        )

    async def _ready(self) -> ThreadPoolExecutor:
        if self._executor is None:
            if self._closed:
                raise BackendError(f"sqlite backend {self.path!r} is closed")
            await self.open()
        assert self._executor is not None
        return self._executor

    def _guard(self, store: SQLiteStore | None, fn: Callable[..., T], *args: Any) -> T:
        """Runs on the store thread. ``store`` was captured when the job was queued, so work
        queued before :meth:`close` still runs (the executor is FIFO and closes last)."""
        if store is None:
            raise BackendError(f"sqlite backend {self.path!r} is closed")
        try:
            return fn(store, *args)
        except sqlite3.Error as exc:
            raise schema.translate(exc, self.path) from exc

    # -- wake-ups within this process ------------------------------------------------------

    def _wake_event(self) -> asyncio.Event:
        """The event the next local commit sets; a fresh one per generation and loop."""
        loop = asyncio.get_running_loop()
        if self._wake is None or self._wake[0] is not loop:
            self._wake = (loop, asyncio.Event())
        return self._wake[1]

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake[1].set()
            self._wake = None

    # -- core -----------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes in one transaction; duplicates by key report the holder's id."""
        if not envelopes:
            return []
        results = await self._call(SQLiteStore.enqueue, envelopes)
        self._notify()
        return results

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages (queues in order, priority then eta then FIFO).

        Bodies are returned raw; decoding (and dead-lettering malformed bytes) is the worker's
        job. Cancelling a fetch gives back whatever it had already claimed.
        """
        if not queues or limit <= 0:
            return []
        until = time.monotonic() + max(wait, 0.0)
        executor = await self._ready()
        loop = asyncio.get_running_loop()
        while True:
            woken = self._wake_event()
            marks = self._file_marks()
            handoff = Handoff()
            future = loop.run_in_executor(
                executor, self._guard, self._store, SQLiteStore.claim, queues, limit, lease, handoff
            )
            try:
                deliveries, next_due, version = await asyncio.shield(future)
            except asyncio.CancelledError:
                self._give_back(future, handoff, executor)
                raise
            if deliveries:
                return deliveries
            if not await self._idle(woken, version, next_due, until, marks):
                return []

    def _give_back(
        self, future: asyncio.Future[Any], handoff: Handoff, executor: ThreadPoolExecutor
    ) -> None:
        """A cancelled fetch: release rows the store thread already handed over."""
        with handoff.lock:
            handoff.cancelled = True
            delivered = handoff.delivered
        if delivered and future.done() and not future.cancelled() and not future.exception():
            deliveries = future.result()[0]
            executor.submit(self._guard, self._store, SQLiteStore.release, deliveries)
        elif delivered:  # pragma: no cover - the thread finished but the loop has not seen it
            future.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else executor.submit(
                    self._guard, self._store, SQLiteStore.release, f.result()[0]
                )
            )

    def _file_marks(self) -> tuple[int, int, int, int]:
        """A cheap change hint: another process's commit touches the WAL (or database) file.

        Only a hint, so it may run on the loop: a change triggers the authoritative ``PRAGMA
        data_version`` check on the store thread, which also runs every ``max_poll_interval``.
        """
        marks = [0, 0, 0, 0]
        for i, name in enumerate((self._wal_path, self.path)):
            try:
                st = os.stat(name)
            except OSError:
                continue
            marks[2 * i], marks[2 * i + 1] = st.st_mtime_ns, st.st_size
        return marks[0], marks[1], marks[2], marks[3]

    async def _idle(
        self,
        woken: asyncio.Event,
        version: int,
        next_due: float | None,
        until: float,
        marks: tuple[int, int, int, int],
    ) -> bool:
        """Sleep until something may be ready; False once ``until`` (monotonic) has passed.

        Wakes on a local commit (``woken``), on another connection's commit (file marks, then
        ``data_version``), or at ``next_due`` (an eta or lease deadline becoming due).
        """
        delay = MIN_POLL
        max_poll = self.settings.max_poll_interval
        checked = time.monotonic()
        waiter = asyncio.ensure_future(woken.wait())
        try:
            while True:
                now = time.monotonic()
                remaining = until - now
                if remaining <= 0:
                    return False
                if next_due is not None:
                    due_in = next_due - self._clock()
                    if due_in <= 0:
                        return True
                    remaining = min(remaining, due_in)
                done, _ = await asyncio.wait((waiter,), timeout=min(delay, remaining))
                if done:
                    return True
                delay = min(delay * 2, _STAT_POLL, max_poll)
                current = self._file_marks()
                if current == marks and time.monotonic() - checked < max_poll:
                    continue
                marks, checked = current, time.monotonic()
                if await self._call(SQLiteStore.data_version) != version:
                    return True
        finally:
            waiter.cancel()

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply a batch in one transaction; a settlement whose lease was lost is ignored."""
        if not settlements:
            return
        if await self._call(SQLiteStore.settle, settlements):
            self._notify()

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        if deliveries:
            await self._call(SQLiteStore.extend, deliveries, lease)

    async def wipe(self) -> None:
        """Delete every row of every table (tests and benchmarks); the schema stays."""
        await self._call(SQLiteStore.wipe)

    # -- events, cron, counters -----------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        await self._call(SQLiteStore.bind, pattern, group)

    async def publish(self, envelope: Envelope) -> int:
        copies = await self._call(SQLiteStore.publish, envelope)
        if copies:
            self._notify()
        return copies

    async def claim_tick(self, job: str, tick: float) -> bool:
        return await self._call(SQLiteStore.claim_tick, job, tick)

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        return await self._call(SQLiteStore.hit_window, key, period, limit)

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        return await self._call(SQLiteStore.take_token, key, rate, burst)

    # -- dead letters and inspection ------------------------------------------------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        return await self._call(SQLiteStore.dead_letters, queue, limit, offset)

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        count = await self._call(SQLiteStore.replay_dead, ids, queue)
        if count:
            self._notify()
        return count

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        return await self._call(SQLiteStore.purge_dead, ids, queue)

    async def stats(self) -> list[QueueStats]:
        return await self._call(SQLiteStore.stats)

    # -- coordination for a composite's transport -----------------------------------------

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Own ``key`` unless a live claim holds it; the owner (see :class:`Coordination`)."""
        return await self._call(SQLiteStore.claim_key, key, holder, ttl)

    async def release_key(self, key: str, holder: str) -> None:
        await self._call(SQLiteStore.release_key, key, holder)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store a transport's dead letters here, where :meth:`dead_letters` and
        :meth:`purge_dead` see them (``replay_dead`` would move them into *this* backend's
        queues; a composite replays onto its transport itself)."""
        if letters:
            await self._call(SQLiteStore.keep_dead, letters)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        await self._call(SQLiteStore.heartbeat, info, ttl)

    async def workers(self) -> list[WorkerInfo]:
        return await self._call(SQLiteStore.workers)

    async def forget_worker(self, worker_id: str) -> None:
        await self._call(SQLiteStore.forget_worker, worker_id)
