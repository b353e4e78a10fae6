"""Opening a SQLite file the way every workhive store does, and its errors in our terms.

Shared by the SQLite backend and the SQLite command log: both want WAL (readers never wait for
the writer, across processes), a busy timeout instead of an immediate "database is locked", one
connection per thread, and driver errors that name the file and say what to do.

:class:`SQLiteThread` owns one connection on one dedicated thread: sqlite3 calls block, so the
event loop only awaits them, and a connection used from one thread needs no locks of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from workhive.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def check_path(path: str) -> None:
    """Fail with a :class:`ConfigError` naming ``path`` before SQLite gives a vaguer one."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"sqlite database {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"sqlite database {path!r} is a directory, not a file")
    target = path if os.path.exists(path) else directory
    if not os.access(target, os.W_OK):
        raise ConfigError(f"sqlite database {path!r}: {target!r} is not writable")


def connect(path: str, busy_timeout: float, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (callers issue ``BEGIN IMMEDIATE`` themselves) with WAL.

    ``synchronous=NORMAL`` with WAL survives a process crash (``kill -9``); a power loss may
    drop the last commits (``FULL`` fsyncs every commit). Call on the thread that will own the
    connection.
    """
    check_path(path)
    try:
        con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    try:
        con.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = _enable_wal(con, busy_timeout)
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a network filesystem
            logger.warning("sqlite database %s refused WAL mode (journal_mode=%s)", path, mode)
        con.execute(f"PRAGMA synchronous = {synchronous}")
        con.execute("PRAGMA temp_store = MEMORY")
    except sqlite3.Error as exc:
        con.close()
        raise translate(exc, path, opening=True) from exc
    return con


def _enable_wal(con: sqlite3.Connection, busy_timeout: float) -> str:
    """Switch to WAL, retrying: SQLite answers a journal-mode change with SQLITE_BUSY at once,
    without its busy handler, while another connection is opening the same new file (several
    workers starting together)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return str(con.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def translate(exc: sqlite3.Error, path: str, *, opening: bool = False) -> Exception:
    """Map a driver error onto :mod:`workhive.errors` with a message naming the file."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return BackendError(
            f"sqlite database {path!r} is locked: another process held it longer than the busy "
            f"timeout ({text}); raise busy_timeout or reduce writers"
        )
    if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        return ConfigError(f"sqlite database {path!r} cannot be opened for writing: {text}")
    if opening and "not a database" in lowered:
        return ConfigError(f"sqlite database {path!r} is not a SQLite database: {text}")
    return BackendError(f"sqlite database {path!r}: {type(exc).__name__}: {text}")


class SQLiteThread:
    """One connection on its own thread; :meth:`call` runs ``fn(connection, ...)`` there.

    Calls run in the order they were made (one thread, FIFO), so work queued before
    :meth:`close` still runs, and a transaction begun by one call is seen by the next.
    """

    def __init__(self, path: str, executor: ThreadPoolExecutor, con: sqlite3.Connection) -> None:
        self.path = path
        self.con: sqlite3.Connection | None = con
        self._executor = executor

    @classmethod
    async def open(
        cls, path: str, busy_timeout: float, synchronous: str = "NORMAL",
        setup: Callable[[sqlite3.Connection], None] | None = None, *, name: str = "sqlite",
    ) -> SQLiteThread:
        """Connect on a new thread, then run ``setup(connection)`` there (tables, functions)."""
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"workhive-{name}")

        def start() -> sqlite3.Connection:
            con = connect(path, busy_timeout, synchronous)
            if setup is not None:
                try:
                    setup(con)
                except sqlite3.Error as exc:
                    con.close()
                    raise translate(exc, path, opening=True) from exc
                except BaseException:
                    con.close()
                    raise
            return con

        try:
            con = await asyncio.get_running_loop().run_in_executor(executor, start)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, con)

    def future(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: Any
    ) -> asyncio.Future[T]:
        """``fn(connection, *args)`` queued on the thread; the future of its result (driver
        errors translated). A bare future, not a task: a fetch on the hot path needs no more."""
        con = self._connection()
        return asyncio.get_running_loop().run_in_executor(
            self._executor, self._guard, con, fn, *args)

    async def call(self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: Any) -> T:
        """``fn(connection, *args)`` on the thread; driver errors translated."""
        return await self.future(fn, *args)

    def submit(self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: Any) -> None:
        """Queue ``fn(connection, *args)`` without waiting for it (nothing to report to)."""
        self._executor.submit(self._guard, self._connection(), fn, *args)

    def _connection(self) -> sqlite3.Connection:
        """The connection, taken when a call is queued: calls queued before :meth:`close`
        still run (the thread closes the connection last)."""
        if self.con is None:
            raise BackendError(f"sqlite database {self.path!r} is closed")
        return self.con

    def _guard(self, con: sqlite3.Connection, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(con, *args)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    async def close(self) -> None:
        """Close the connection after the calls already queued; safe to call twice."""
        con, self.con = self.con, None
        if con is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, con.close)
        finally:
            self._executor.shutdown(wait=False)
