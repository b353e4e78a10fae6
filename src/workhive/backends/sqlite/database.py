"""The SQLite file as the shared SQL engine's :class:`~workhive.backends._sql.backend.Database`.

One connection on one dedicated thread per backend (:class:`SQLiteThread`); opening is lazy and
idempotent, and creates or upgrades the layout (:func:`workhive.backends._sql.layout.migrate`).
"Now" is the injected clock (wall time, shared across processes, unlike ``time.monotonic``;
tests pass a fake one), which the shared statements read as ``workhive_now()``. Wake-ups stay
in this process: another process's commit is noticed by the fetch's own polling.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from workhive._envelope import Envelope
from workhive.backend import EnqueueResult
from workhive.backends._sql import layout
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, run_blocking
from workhive.backends.sqlite import queue
from workhive.backends.sqlite.connection import SQLiteThread
from workhive.backends.sqlite.settings import SQLiteSettings
from workhive.errors import BackendError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SQLiteDatabase:
    """The connection thread, the clock and this process's wake-ups of one SQLite backend."""

    dialect = Dialect.sqlite()
    housekeeping: tuple[str, ...] = ()

    def __init__(self, settings: SQLiteSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.path = settings.path
        self.clock = clock
        self.thread: SQLiteThread | None = None
        self._closed = False
        self._open_lock: asyncio.Lock | None = None
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def open(self) -> None:
        """Open the file (creating it and its tables if needed). Idempotent."""
        if self.thread is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.thread is None:
                self.thread = await SQLiteThread.open(self.path, self.settings.busy_timeout,
                                                      setup=self._setup)
                self._closed = False
                logger.debug("opened sqlite backend %s", self.path)

    def _setup(self, con: sqlite3.Connection) -> None:
        con.create_function("workhive_now", 0, self.clock)
        with queue.write(con):
            run_blocking(con, layout.migrate(self.dialect, f"sqlite database {self.path!r}",
                                             queue.TABLES))

    async def close(self) -> None:
        """Close the connection; leased messages stay leased until their lease runs out."""
        thread, self.thread = self.thread, None
        if thread is not None:
            self._closed = True
            await thread.close()

    async def ready(self) -> SQLiteThread:
        """The connection thread, opening on first use (but not after :meth:`close`)."""
        if self.thread is None:
            if self._closed:
                raise BackendError(f"sqlite backend {self.path!r} is closed")
            await self.open()
        assert self.thread is not None
        return self.thread

    async def run(self, op: Op[T], doing: str, *, tx: bool) -> T:
        thread = await self.ready()
        return await thread.call(_run, op, tx)

    def insert(self, envelopes: Sequence[Envelope]) -> Op[list[EnqueueResult]]:
        return queue.insert(envelopes, self.clock(), self.settings.idempotency_ttl)

    # -- wake-ups within this process -----------------------------------------------------

    def wake_event(self) -> asyncio.Event:
        """The event the next local commit sets; a fresh one per generation and loop."""
        loop = asyncio.get_running_loop()
        if self._wake is None or self._wake[0] is not loop:
            self._wake = (loop, asyncio.Event())
        return self._wake[1]

    def woke(self) -> None:
        if self._wake is not None:
            self._wake[1].set()
            self._wake = None


def _run(con: sqlite3.Connection, op: Op[T], tx: bool) -> T:
    if not tx:
        return run_blocking(con, op)
    with queue.write(con):
        return run_blocking(con, op)
