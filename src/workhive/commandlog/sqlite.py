"""SQLite message log: the embedded default (``sqlite:///path/to/app.db``).

Threading: sqlite3 calls block, so the log owns two single-thread executors, one per
connection. The *writer* runs appends, checkpoints and handler transactions; an
:class:`asyncio.Lock` gives one task at a time the writer, so a handler's transaction spans
several awaits safely. The *reader* runs ``read_after`` and the change poller; with WAL, reads
never wait for the writer.

Ordering: SQLite has one writer per database, so ids (``INTEGER PRIMARY KEY AUTOINCREMENT``)
commit in order across processes; tailing is gap-safe by construction.

Waiting: appends from this process wake readers directly. Appends from other processes are seen
by polling ``PRAGMA data_version`` (one cheap call, no table read) while someone waits, with a
sleep that starts at 2 ms after a change and doubles to 50 ms when the log is quiet.

Durability: ``synchronous=NORMAL`` with WAL survives a process crash (``kill -9``); a power loss
may drop the last commits. Pass ``?synchronous=FULL`` in the URL to fsync every commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from workhive.commandlog._log import Entry, HeadWatcher, Transaction, current_transaction
from workhive.commandlog._message import Message, decode_metadata, encode_metadata
from workhive.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")
_SYNC_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}


class SQLiteTransaction:
    """A transaction on the log's writer connection (see :class:`Transaction`)."""

    def __init__(self, log: SQLiteMessageLog) -> None:
        self.log = log
        self.connection: sqlite3.Connection = log._writer_conn()
        self.appended = 0

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Call ``fn(connection)`` on the writer thread, inside this transaction."""
        return await self.log._write(fn, self.connection)

    async def execute(self, sql: str, *args: Any) -> None:
        await self.log._write(self.connection.execute, sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        def go() -> list[tuple[Any, ...]]:
            return list(self.connection.execute(sql, args).fetchall())

        return await self.log._write(go)

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        await self.log._write(self.log._upsert_checkpoint, self.connection, worker, last_id)


class SQLiteMessageLog:
    """Message log in one SQLite file. Tables: ``{prefix}_messages``, ``{prefix}_checkpoints``."""

    def __init__(self, path: str, *, prefix: str = "workhive", synchronous: str = "NORMAL") -> None:
        if not prefix.isidentifier():
            raise ConfigError(f"sqlite log prefix must be an identifier, got {prefix!r}")
        if synchronous.upper() not in _SYNC_MODES:
            raise ConfigError(f"sqlite synchronous must be one of {sorted(_SYNC_MODES)}")
        self.path = path
        self.url = f"sqlite:///{path}"
        self.prefix = prefix
        self.synchronous = synchronous.upper()
        self._messages = f"{prefix}_messages"
        self._checkpoints = f"{prefix}_checkpoints"
        self._wpool: ThreadPoolExecutor | None = None
        self._rpool: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._watcher = HeadWatcher()
        self._poller: asyncio.Task[None] | None = None
        self._read_sql = (
            f"SELECT id, name, payload, ts, metadata FROM {self._messages} "
            "WHERE id > ? ORDER BY id LIMIT ?"
        )
        self._insert_sql = (
            f"INSERT INTO {self._messages} (name, payload, ts, metadata) VALUES (?, ?, ?, ?)"
        )

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open both connections and create the tables. Idempotent."""
        if self._wconn is not None:
            return
        self._wpool = ThreadPoolExecutor(1, thread_name_prefix="workhive-log-w")
        self._rpool = ThreadPoolExecutor(1, thread_name_prefix="workhive-log-r")
        try:
            self._wconn = await self._write(self._connect, True)
            self._rconn = await self._read(self._connect, False)
        except sqlite3.Error as exc:
            await self.close()
            raise BackendError(f"cannot open sqlite log {self.path!r}: {exc}") from exc
        self._watcher.head = await self.head()

    def _connect(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._messages} (id INTEGER PRIMARY KEY "
                "AUTOINCREMENT, name TEXT NOT NULL, payload BLOB NOT NULL, ts REAL NOT NULL, "
                "metadata BLOB)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._checkpoints} (worker TEXT PRIMARY KEY, "
                "last_id INTEGER NOT NULL, updated_at REAL NOT NULL)"
            )
        return conn

    async def close(self) -> None:
        """Stop the poller and close the connections. Safe to call twice."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for conn, pool in ((self._wconn, self._wpool), (self._rconn, self._rpool)):
            if conn is not None and pool is not None:
                await asyncio.get_running_loop().run_in_executor(pool, conn.close)
        for pool in (self._wpool, self._rpool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._wconn = self._rconn = None
        self._wpool = self._rpool = None

    async def __aenter__(self) -> SQLiteMessageLog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- thread plumbing -------------------------------------------------------------------
    def _writer_conn(self) -> sqlite3.Connection:
        if self._wconn is None:
            raise BackendError(f"sqlite log {self.path!r} is not open")
        return self._wconn

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._wpool is None:
            raise BackendError(f"sqlite log {self.path!r} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._wpool, fn, *args)
        except sqlite3.Error as exc:
            raise BackendError(f"sqlite log {self.path!r}: {exc}") from exc

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._rpool is None:
            raise BackendError(f"sqlite log {self.path!r} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._rpool, fn, *args)
        except sqlite3.Error as exc:
            raise BackendError(f"sqlite log {self.path!r}: {exc}") from exc

    def _own_tx(self) -> SQLiteTransaction | None:
        tx = current_transaction.get()
        return tx if isinstance(tx, SQLiteTransaction) and tx.log is self else None

    # -- append ----------------------------------------------------------------------------
    def _insert(self, conn: sqlite3.Connection, entries: Sequence[Entry]) -> list[int]:
        now = time.time()
        ids = []
        for name, payload, meta in entries:
            cur = conn.execute(self._insert_sql, (name, payload, now, encode_metadata(meta)))
            ids.append(int(cur.lastrowid or 0))
        return ids

    def _insert_commit(self, entries: Sequence[Entry]) -> list[int]:
        conn = self._writer_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._insert(conn, entries)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    async def append(
        self, name: str, payload: bytes, metadata: dict[str, str] | None = None
    ) -> int:
        return (await self.append_many([(name, payload, metadata)]))[0]

    async def append_many(self, entries: Sequence[Entry]) -> list[int]:
        """Append all entries in one transaction (or in the caller's open transaction)."""
        if not entries:
            return []
        tx = self._own_tx()
        if tx is not None:
            ids = await self._write(self._insert, tx.connection, entries)
            tx.appended = max(tx.appended, ids[-1])
            return ids
        async with self._lock:
            ids = await self._write(self._insert_commit, entries)
        self._watcher.advance(ids[-1])
        return ids

    # -- read ------------------------------------------------------------------------------
    def _select(self, last_id: int, limit: int) -> list[Message]:
        assert self._rconn is not None
        rows = self._rconn.execute(self._read_sql, (last_id, limit)).fetchall()
        return [
            Message(i, n, p, t) if m is None else Message(i, n, p, t, decode_metadata(m))
            for i, n, p, t, m in rows
        ]

    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]:
        """Messages with ``id > last_id`` in id order, at most ``limit``."""
        return await self._read(self._select, last_id, limit)

    def _max_id(self) -> int:
        assert self._rconn is not None
        row = self._rconn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self._messages}").fetchone()
        return int(row[0])

    async def head(self) -> int:
        """The highest committed id (0 for an empty log)."""
        return await self._read(self._max_id)

    # -- waiting ---------------------------------------------------------------------------
    async def wait_for(self, after_id: int, timeout: float) -> bool:
        """Wait until a message with ``id > after_id`` exists; ``False`` on timeout."""
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name=f"sqlite-log-poll:{self.path}")
        return await self._watcher.wait(after_id, timeout)

    def _data_version(self) -> int:
        assert self._rconn is not None
        return int(self._rconn.execute("PRAGMA data_version").fetchone()[0])

    async def _poll(self) -> None:
        version = await self._read(self._data_version)
        delay = 0.002
        idle_since = time.monotonic()
        while True:
            await asyncio.sleep(delay)
            if self._watcher.waiters == 0:
                if time.monotonic() - idle_since > 5.0:
                    return  # nobody waits; the next wait_for restarts the poller
                delay = 0.05
                continue
            idle_since = time.monotonic()
            now = await self._read(self._data_version)
            if now != version:
                version = now
                self._watcher.advance(await self.head())
                delay = 0.002
            else:
                delay = min(delay * 2, 0.05)

    # -- checkpoints and transactions ------------------------------------------------------
    def _upsert_checkpoint(self, conn: sqlite3.Connection, worker: str, last_id: int) -> None:
        conn.execute(
            f"INSERT INTO {self._checkpoints} (worker, last_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(worker) DO UPDATE SET last_id = excluded.last_id, "
            "updated_at = excluded.updated_at",
            (worker, last_id, time.time()),
        )

    async def get_checkpoint(self, worker: str) -> int:
        def go() -> int:
            assert self._rconn is not None
            sql = f"SELECT last_id FROM {self._checkpoints} WHERE worker = ?"
            row = self._rconn.execute(sql, (worker,)).fetchone()
            return int(row[0]) if row else 0

        return await self._read(go)

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        tx = self._own_tx()
        if tx is not None:
            await tx.save_checkpoint(worker, last_id)
            return
        async with self._lock:
            await self._write(self._upsert_checkpoint, self._writer_conn(), worker, last_id)

    async def checkpoints(self) -> dict[str, tuple[int, float]]:
        def go() -> dict[str, tuple[int, float]]:
            assert self._rconn is not None
            sql = f"SELECT worker, last_id, updated_at FROM {self._checkpoints} ORDER BY worker"
            return {w: (int(i), float(t)) for w, i, t in self._rconn.execute(sql)}

        return await self._read(go)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; appends and checkpoints made inside it join it.

        Nested use in the same task joins the outer transaction.
        """
        outer = self._own_tx()
        if outer is not None:
            yield outer
            return
        async with self._lock:
            conn = self._writer_conn()
            await self._write(conn.execute, "BEGIN IMMEDIATE")
            tx = SQLiteTransaction(self)
            token = current_transaction.set(tx)
            try:
                yield tx
            except BaseException:
                await asyncio.shield(self._write(conn.execute, "ROLLBACK"))
                raise
            else:
                await self._write(conn.execute, "COMMIT")
            finally:
                current_transaction.reset(token)
        if tx.appended:
            self._watcher.advance(tx.appended)
