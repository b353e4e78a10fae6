"""SQLite message log: the embedded default (``sqlite:///path/to/app.db``).

Opening is the SQLite backend's: the same URL forms (:func:`~workhive.backends.sqlite.settings.
split_url`), the same connection set-up (WAL, busy timeout) and the same errors naming the file
(:mod:`workhive.backends.sqlite.connection`). The log's own options are ``prefix`` (several logs
in one file), ``synchronous`` and ``busy_timeout``.

Threading: sqlite3 calls block, so the log owns two connections, each on its own thread
(:class:`SQLiteThread`). The *writer* runs appends, checkpoints and handler transactions;
an :class:`asyncio.Lock` gives one task at a time the writer, so a handler's transaction spans
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
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from workhive._redact import redact_url
from workhive.backends.sqlite.connection import SYNCHRONOUS, SQLiteThread
from workhive.backends.sqlite.settings import check_file, split_url
from workhive.commandlog._log import (
    Entry,
    HeadWatcher,
    MessageLog,
    Transaction,
    current_transaction,
)
from workhive.commandlog._message import Message, decode_metadata, encode_metadata
from workhive.errors import BackendError, ConfigError

T = TypeVar("T")
#: the options a ``sqlite:///`` log URL takes
_OPTIONS = ("busy_timeout", "prefix", "synchronous")


class SQLiteTransaction:
    """A transaction on the log's writer connection (see :class:`Transaction`).

    ``connection`` belongs to the writer thread: use :meth:`run` to call it.
    """

    def __init__(self, log: SQLiteMessageLog, writer: SQLiteThread) -> None:
        self.log = log
        self.writer = writer
        assert writer.con is not None, "a transaction begins on an open writer"
        self.connection: sqlite3.Connection = writer.con
        self.appended = 0

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Call ``fn(connection)`` on the writer thread, inside this transaction."""
        return await self.writer.call(fn)

    async def execute(self, sql: str, *args: Any) -> None:
        await self.writer.call(_execute, sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self.writer.call(_fetch, sql, args)

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        await self.writer.call(self.log._upsert_checkpoint, worker, last_id)


class SQLiteMessageLog(MessageLog):
    """Message log in one SQLite file. Tables: ``{prefix}_messages``, ``{prefix}_checkpoints``."""

    def __init__(self, path: str, *, prefix: str = "workhive", synchronous: str = "NORMAL",
                 busy_timeout: float = 10.0) -> None:
        check_file(path)
        if not prefix.isidentifier():
            raise ConfigError(f"sqlite log prefix must be an identifier, got {prefix!r}")
        if synchronous.upper() not in SYNCHRONOUS:
            raise ConfigError(f"sqlite synchronous must be one of {sorted(SYNCHRONOUS)}")
        if isinstance(busy_timeout, bool) or not 0 < busy_timeout < math.inf:
            raise ConfigError(f"sqlite option busy_timeout must be positive, got {busy_timeout}")
        self.path = path
        self.url = f"sqlite:///{path}"
        self.prefix = prefix
        self.synchronous = synchronous.upper()
        self.busy_timeout = float(busy_timeout)
        self._messages = f"{prefix}_messages"
        self._checkpoints = f"{prefix}_checkpoints"
        self._writer: SQLiteThread | None = None
        self._reader: SQLiteThread | None = None
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

    @classmethod
    def from_url(cls, url: str, *, prefix: str | None = None) -> SQLiteMessageLog:
        """A log from ``sqlite:///rel.db`` / ``sqlite:////abs.db`` with ``?prefix=``,
        ``?synchronous=`` and ``?busy_timeout=`` (seconds); the ``prefix`` keyword wins.

        The URL itself is read as the SQLite backend reads it, with the same errors.
        """
        path, query = split_url(url)
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown sqlite log option(s) {', '.join(unknown)} in "
                              f"{redact_url(url)!r}; known: {', '.join(_OPTIONS)}")
        try:
            busy_timeout = float(options.get("busy_timeout", 10.0))
        except ValueError:
            raise ConfigError("sqlite option busy_timeout must be a number, got "
                              f"{options['busy_timeout']!r}") from None
        return cls(path, prefix=prefix or options.get("prefix", "workhive"),
                   synchronous=options.get("synchronous", "NORMAL"), busy_timeout=busy_timeout)

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open both connections and create the tables. Idempotent."""
        if self._writer is not None:
            return
        self._writer = await SQLiteThread.open(self.path, self.busy_timeout, self.synchronous,
                                               setup=self._create_tables, name="log-writer")
        try:
            self._reader = await SQLiteThread.open(self.path, self.busy_timeout,
                                                   self.synchronous, name="log-reader")
            self._watcher.head = await self.head()
        except BaseException:
            await self.close()
            raise

    def _create_tables(self, con: sqlite3.Connection) -> None:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._messages} (id INTEGER PRIMARY KEY "
            "AUTOINCREMENT, name TEXT NOT NULL, payload BLOB NOT NULL, ts REAL NOT NULL, "
            "metadata BLOB)"
        )
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._checkpoints} (worker TEXT PRIMARY KEY, "
            "last_id INTEGER NOT NULL, updated_at REAL NOT NULL)"
        )

    async def close(self) -> None:
        """Stop the poller and close the connections. Safe to call twice."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for thread in (self._writer, self._reader):
            if thread is not None:
                await thread.close()
        self._writer = self._reader = None

    async def __aenter__(self) -> SQLiteMessageLog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- threads ---------------------------------------------------------------------------
    def _open_writer(self) -> SQLiteThread:
        if self._writer is None:
            raise BackendError(f"sqlite log {self.path!r} is not open")
        return self._writer

    def _open_reader(self) -> SQLiteThread:
        if self._reader is None:
            raise BackendError(f"sqlite log {self.path!r} is not open")
        return self._reader

    def _own_tx(self) -> SQLiteTransaction | None:
        tx = current_transaction.get()
        return tx if isinstance(tx, SQLiteTransaction) and tx.log is self else None

    # -- append ----------------------------------------------------------------------------
    def _insert(self, con: sqlite3.Connection, entries: Sequence[Entry]) -> list[int]:
        now = time.time()
        ids = []
        for name, payload, meta in entries:
            cur = con.execute(self._insert_sql, (name, payload, now, encode_metadata(meta)))
            ids.append(int(cur.lastrowid or 0))
        return ids

    def _insert_commit(self, con: sqlite3.Connection, entries: Sequence[Entry]) -> list[int]:
        con.execute("BEGIN IMMEDIATE")
        try:
            ids = self._insert(con, entries)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return ids

    async def append_many(self, entries: Sequence[Entry]) -> list[int]:
        """Append all entries in one transaction (or in the caller's open transaction)."""
        if not entries:
            return []
        tx = self._own_tx()
        if tx is not None:
            ids = await tx.writer.call(self._insert, entries)
            tx.appended = max(tx.appended, ids[-1])
            return ids
        async with self._lock:
            ids = await self._open_writer().call(self._insert_commit, entries)
        self._watcher.advance(ids[-1])
        return ids

    # -- read ------------------------------------------------------------------------------
    def _select(self, con: sqlite3.Connection, last_id: int, limit: int) -> list[Message]:
        rows = con.execute(self._read_sql, (last_id, limit)).fetchall()
        return [
            Message(i, n, p, t) if m is None else Message(i, n, p, t, decode_metadata(m))
            for i, n, p, t, m in rows
        ]

    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]:
        """Messages with ``id > last_id`` in id order, at most ``limit``."""
        return await self._open_reader().call(self._select, last_id, limit)

    def _max_id(self, con: sqlite3.Connection) -> int:
        return int(con.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self._messages}").fetchone()[0])

    async def head(self) -> int:
        """The highest committed id (0 for an empty log)."""
        return await self._open_reader().call(self._max_id)

    # -- waiting ---------------------------------------------------------------------------
    async def wait_for(self, after_id: int, timeout: float) -> bool:
        """Wait until a message with ``id > after_id`` exists; ``False`` on timeout."""
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name=f"sqlite-log-poll:{self.path}")
        return await self._watcher.wait(after_id, timeout)

    async def _poll(self) -> None:
        reader = self._open_reader()
        version = await reader.call(_data_version)
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
            now = await reader.call(_data_version)
            if now != version:
                version = now
                self._watcher.advance(await self.head())
                delay = 0.002
            else:
                delay = min(delay * 2, 0.05)

    # -- checkpoints and transactions ------------------------------------------------------
    def _upsert_checkpoint(self, con: sqlite3.Connection, worker: str, last_id: int) -> None:
        con.execute(
            f"INSERT INTO {self._checkpoints} (worker, last_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(worker) DO UPDATE SET last_id = excluded.last_id, "
            "updated_at = excluded.updated_at",
            (worker, last_id, time.time()),
        )

    async def get_checkpoint(self, worker: str) -> int:
        sql = f"SELECT last_id FROM {self._checkpoints} WHERE worker = ?"
        rows = await self._open_reader().call(_fetch, sql, (worker,))
        return int(rows[0][0]) if rows else 0

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        tx = self._own_tx()
        if tx is not None:
            await tx.save_checkpoint(worker, last_id)
            return
        async with self._lock:
            await self._open_writer().call(self._upsert_checkpoint, worker, last_id)

    async def checkpoints(self) -> dict[str, tuple[int, float]]:
        sql = f"SELECT worker, last_id, updated_at FROM {self._checkpoints} ORDER BY worker"
        rows = await self._open_reader().call(_fetch, sql, ())
        return {w: (int(i), float(t)) for w, i, t in rows}

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
            writer = self._open_writer()
            await writer.call(_execute, "BEGIN IMMEDIATE", ())
            tx = SQLiteTransaction(self, writer)
            token = current_transaction.set(tx)
            try:
                yield tx
            except BaseException:
                await asyncio.shield(writer.call(_execute, "ROLLBACK", ()))
                raise
            else:
                await writer.call(_execute, "COMMIT", ())
            finally:
                current_transaction.reset(token)
        if tx.appended:
            self._watcher.advance(tx.appended)


def _execute(con: sqlite3.Connection, sql: str, args: Sequence[Any]) -> None:
    con.execute(sql, args)


def _fetch(con: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    return list(con.execute(sql, args).fetchall())


def _data_version(con: sqlite3.Connection) -> int:
    return int(con.execute("PRAGMA data_version").fetchone()[0])
