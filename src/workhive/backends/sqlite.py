"""The default backend: one durable SQLite file, shared safely by several worker processes.

``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (options as query parameters or keyword
arguments: ``busy_timeout``, ``max_poll_interval``, ``idempotency_ttl``).

Threading: every blocking sqlite3 call runs on one dedicated thread per backend, which owns the
connection; the event loop only awaits it. Concurrency across processes comes from SQLite
itself: WAL mode lets readers run beside the one writer, and each claim is a ``BEGIN
IMMEDIATE`` transaction, so two workers never lease the same message (see ``_sqlite_store``).

Waiting: an idle ``fetch`` does not re-run its claim in a loop. It polls ``PRAGMA
data_version`` (which changes when any other connection commits) with a sleep growing from
1 ms to ``max_poll_interval``, wakes at once on an enqueue through this same backend object,
and wakes at the nearest eta or lease expiry.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote

from workhive._backend import (
    Capability,
    DeadLetter,
    Delivery,
    EnqueueResult,
    QueueStats,
    Settlement,
    WorkerInfo,
)
from workhive._envelope import Envelope
from workhive.backends import _sqlite_schema as schema
from workhive.backends._sqlite_store import Handoff, SQLiteStore
from workhive.errors import BackendError, ConfigError

__all__ = ["SQLiteBackend", "SQLiteSettings"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

_MIN_POLL = 0.001
_STAT_POLL = 0.004  # longest sleep between file-mark checks while idle


@dataclass(frozen=True, slots=True)
class SQLiteSettings:
    """Where the database file lives and how patiently to share it.

    ``busy_timeout``: seconds a write waits for another process's transaction before failing
    with :class:`BackendError`. ``max_poll_interval``: the longest an idle fetch sleeps between
    checks for other processes' commits (bounds cross-process pickup latency).
    ``idempotency_ttl``: how long an idempotency key dedupes enqueues.
    """

    path: str
    busy_timeout: float = 5.0
    max_poll_interval: float = 0.02
    idempotency_ttl: float = 86_400.0

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("sqlite backend needs a file path: sqlite:///workhive.db")
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise ConfigError(
                "sqlite backend needs a file shared by workers, not ':memory:'; "
                "use memory:// for an in-process backend"
            )
        for name in ("busy_timeout", "max_poll_interval", "idempotency_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"sqlite option {name} must be a number, got {value!r}")
            if not 0 < value < math.inf:
                raise ConfigError(f"sqlite option {name} must be positive, got {value}")
        if self.max_poll_interval < _MIN_POLL:
            raise ConfigError(
                f"sqlite option max_poll_interval must be at least {_MIN_POLL}, "
                f"got {self.max_poll_interval}"
            )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteSettings:
        """Parse ``sqlite:///relative.db`` / ``sqlite:////abs/path.db`` plus options.

        Query parameters and keyword ``options`` name the same fields; keywords win. Unknown
        names and values that are not numbers raise :class:`ConfigError`.
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() != "sqlite":
            raise ConfigError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
        rest, _, query = rest.partition("?")
        if rest in ("", "/"):
            raise ConfigError(f"sqlite URL {url!r} needs a file path: sqlite:///workhive.db")
        if not rest.startswith("/"):
            raise ConfigError(
                f"sqlite URL {url!r} has a host part; use sqlite:///relative.db "
                "or sqlite:////absolute/path.db"
            )
        merged: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        merged.update(options)
        known = {f.name for f in fields(cls)} - {"path"}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ConfigError(
                f"unknown sqlite option(s) {', '.join(unknown)} in {url!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        values: dict[str, float] = {}
        for key, raw in merged.items():
            if isinstance(raw, str):
                try:
                    values[key] = float(raw)
                except ValueError:
                    msg = f"sqlite option {key} must be a number, got {raw!r}"
                    raise ConfigError(msg) from None
            else:
                values[key] = raw
        return cls(path=unquote(rest[1:]), **values)


class SQLiteBackend:
    """Durable queue, delays, priorities, leases, DLQ, events, cron, counters, inspection.

    Thread-safety: use one instance from one event loop; share the *file*, not the object,
    across processes. Who acks: only :meth:`settle`, matching the lease token of the fetch.
    """

    name = "sqlite"
    capabilities = frozenset(Capability)

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
        delay = _MIN_POLL
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

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        await self._call(SQLiteStore.heartbeat, info, ttl)

    async def workers(self) -> list[WorkerInfo]:
        return await self._call(SQLiteStore.workers)

    async def forget_worker(self, worker_id: str) -> None:
        await self._call(SQLiteStore.forget_worker, worker_id)
