"""The default backend: one durable SQLite file, shared safely by several worker processes.

``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (options as query parameters or keyword
arguments: ``busy_timeout``, ``max_poll_interval``, ``idempotency_ttl``).

Layers: the shared SQL engine (:class:`~workhive.backends._sql.backend.SQLBackend`) does events,
cron, counters, dead letters, inspection, results and the task browser; this module adds the
transport (enqueue, fetch and its waiting, settle, extend), whose statements are in ``queue``.

Threading: every blocking sqlite3 call runs on one dedicated thread per backend, which owns the
connection (``database``); the event loop only awaits it. Concurrency across processes comes
from SQLite itself: WAL mode lets readers run beside the one writer, and each claim is a
``BEGIN IMMEDIATE`` transaction, so two workers never lease the same message.

Waiting: an idle ``fetch`` does not re-run its claim in a loop. It polls ``PRAGMA
data_version`` (which changes when any other connection commits) with a sleep growing from
1 ms to ``max_poll_interval``, wakes at once on an enqueue through this same backend object,
and wakes at the nearest eta or lease expiry.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from workhive._envelope import Envelope
from workhive.backend import Capability, Delivery, EnqueueResult, Features, Settlement
from workhive.backends._sql.backend import SQLBackend
from workhive.backends._sql.layout import DATA_TABLES
from workhive.backends.sqlite import queue
from workhive.backends.sqlite.connection import SQLiteThread
from workhive.backends.sqlite.database import SQLiteDatabase
from workhive.backends.sqlite.settings import MIN_POLL, SQLiteSettings

__all__ = ["SQLiteBackend", "SQLiteSettings"]

_STAT_POLL = 0.004  # longest sleep between file-mark checks while idle


class SQLiteBackend(SQLBackend):
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
        self._sqlite = SQLiteDatabase(settings, clock)
        super().__init__(self._sqlite)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteBackend:
        clock = options.pop("clock", time.time)
        return cls(SQLiteSettings.from_url(url, **options), clock=clock)

    def __repr__(self) -> str:
        return f"SQLiteBackend(path={self.path!r})"

    # -- core -----------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes in one transaction; duplicates by key report the holder's id."""
        if not envelopes:
            return []
        results = await self._db.run(self._sqlite.insert(envelopes), "enqueue", tx=True)
        self._sqlite.woke()
        await self._housekeep()
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
        thread = await self._sqlite.ready()
        while True:
            woken = self._sqlite.wake_event()
            marks = self._file_marks()
            handoff = queue.Handoff()
            claim = thread.future(queue.claim, self._clock(), queues, limit, lease, handoff)
            try:
                deliveries, next_due, version = await asyncio.shield(claim)
            except asyncio.CancelledError:
                self._give_back(claim, handoff, thread)
                raise
            if deliveries:
                return deliveries
            if not await self._idle(woken, version, next_due, until, marks):
                return []

    @staticmethod
    def _give_back(claim: asyncio.Future[Any], handoff: queue.Handoff,
                   thread: SQLiteThread) -> None:
        """A cancelled fetch: release rows the connection thread already handed over."""
        with handoff.lock:
            handoff.cancelled = True
            delivered = handoff.delivered
        if not delivered:
            return

        def release(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                thread.submit(queue.release, done.result()[0])

        if claim.done():
            release(claim)
        else:  # pragma: no cover - the thread finished but the loop has not seen it yet
            claim.add_done_callback(release)

    def _file_marks(self) -> tuple[int, int, int, int]:
        """A cheap change hint: another process's commit touches the WAL (or database) file.

        Only a hint, so it may run on the loop: a change triggers the authoritative ``PRAGMA
        data_version`` check on the connection thread, which also runs every
        ``max_poll_interval``.
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
                thread = await self._sqlite.ready()
                if await thread.call(queue.data_version) != version:
                    return True
        finally:
            waiter.cancel()

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply a batch in one transaction; a settlement whose lease was lost is ignored."""
        if not settlements:
            return
        thread = await self._sqlite.ready()
        if await thread.call(queue.settle, self._clock(), settlements):
            self._sqlite.woke()

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        if deliveries:
            thread = await self._sqlite.ready()
            await thread.call(queue.extend, self._clock() + lease, deliveries)

    async def wipe(self) -> None:
        """Delete every row of every table (tests and benchmarks); the schema stays."""
        thread = await self._sqlite.ready()
        await thread.call(queue.wipe, DATA_TABLES)
