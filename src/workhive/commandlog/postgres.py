"""PostgreSQL message log via asyncpg (``postgresql://user@host/db``).

Gap-safe tailing: ids come from a ``BIGSERIAL`` sequence, and two transactions can draw ids 7
and 8 and commit 8 first. A reader that saw 8 and then asks for ``id > 8`` skips 7 forever.
Every append therefore takes ``pg_advisory_xact_lock(<log key>)`` before drawing ids; the lock
is held until commit, so ids are drawn *and* made visible in order. PostgreSQL makes a commit
visible before it releases the transaction's locks, so the next writer's ids can never be
visible before ours. ``tests/commandlog/test_postgres.py`` proves it with concurrent writers.

Waiting: each append transaction sends ``NOTIFY <channel>, '<last id>'`` (delivered at commit);
one LISTEN connection per log wakes every waiting reader through a shared :class:`HeadWatcher`.

Behind a transaction-mode pooler (PgBouncer), ``?pooler=transaction``: statements are not
cached, the LISTEN connection goes to ``?listen_url=`` (direct to the server) and, without one,
one poller per log reads the head every ``poll_interval`` (0.25 s) while readers wait. Nothing
else needs a session: the append lock is transaction-scoped and every table name is explicit.
See :mod:`workhive.backends.postgres.pooling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import asyncpg

from workhive._redact import netloc_password, redact, redact_url
from workhive.backends.postgres.pooling import (
    POLLING_INTERVAL,
    check_pooler,
    pool_options,
    split_listen_url,
)
from workhive.commandlog._log import Entry, HeadWatcher, Transaction, current_transaction
from workhive.commandlog._message import Message, decode_metadata, encode_metadata
from workhive.errors import BackendError, BackendUnavailable, ConfigError

logger = logging.getLogger(__name__)


class PostgresTransaction:
    """A transaction on one pooled connection (see :class:`Transaction`)."""

    def __init__(self, log: PostgresMessageLog, connection: Any) -> None:
        self.log = log
        self.connection = connection
        self.locked = False
        self.appended = 0

    async def execute(self, sql: str, *args: Any) -> None:
        await self.connection.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.connection.fetch(sql, *args)]

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        await self.connection.execute(self.log._upsert_sql, worker, last_id, time.time())


#: DSN query parameters the log reads itself (the rest go to asyncpg)
_LOG_OPTIONS = ("pooler", "listen_url", "poll_interval")


class PostgresMessageLog:
    """Message log in PostgreSQL. Tables ``{prefix}_messages`` / ``{prefix}_checkpoints``.

    ``pooler`` / ``listen_url`` / ``poll_interval`` (keywords, or the DSN's query, keywords
    winning) describe a pooler in front of the server, as for the postgres backend.
    """

    def __init__(self, dsn: str, *, prefix: str = "workhive", pool_size: int = 10,
                 pooler: str | None = None, listen_url: str | None = None,
                 poll_interval: float | None = None) -> None:
        if not prefix.isidentifier():
            raise ConfigError(f"postgres log prefix must be an identifier, got {prefix!r}")
        try:
            parts = urlsplit(dsn)
            parts.port  # noqa: B018 - a bad port is a config error, not a socket crash
        except ValueError as exc:
            raise ConfigError(f"invalid postgres log url {redact_url(dsn)!r}: "
                              f"{redact(str(exc), netloc_password(dsn))}") from None
        query = parse_qsl(parts.query, keep_blank_values=True)
        given = {k: v for k, v in query if k in _LOG_OPTIONS}
        dsn = parts._replace(query=urlencode([(k, v) for k, v in query
                                               if k not in _LOG_OPTIONS])).geturl()
        self._dsn = dsn  # what asyncpg connects with; may hold the password
        self.url = redact_url(dsn)  # what messages, the CLI and repr show
        self.prefix = prefix
        self.pool_size = pool_size
        self.pooler = check_pooler(pooler if pooler is not None else given.get("pooler", "none"))
        listen = listen_url if listen_url is not None else given.get("listen_url")
        self._listen: tuple[str, str | None] | None = None
        if listen is not None:
            bare, password = split_listen_url(listen)
            self._listen = bare, password or (unquote(parts.password) if parts.password else None)
        elif self.pooler != "transaction":
            self._listen = dsn, None
        #: how often the head is read while readers wait, when there is no LISTEN session
        self.poll_interval = _interval(
            poll_interval if poll_interval is not None else given.get("poll_interval"))
        self._poller: asyncio.Task[None] | None = None
        self.messages_table = f"{prefix}_messages"
        self.checkpoints_table = f"{prefix}_checkpoints"
        self.channel = f"{prefix}_messages"
        # A stable 63-bit key per table, shared by every process appending to this log.
        self._lock_key = zlib.crc32(f"workhive:{self.messages_table}".encode()) << 16
        self._pool: Any = None
        self._listener: Any = None
        self._watcher = HeadWatcher()
        t = self.messages_table
        self._read_sql = (
            f"SELECT id, name, payload, ts, metadata FROM {t} WHERE id > $1 ORDER BY id LIMIT $2"
        )
        self._insert_sql = (
            f"INSERT INTO {t} (name, payload, ts, metadata) "
            "SELECT * FROM unnest($1::text[], $2::bytea[], $3::float8[], $4::bytea[]) "
            "RETURNING id"
        )
        self._upsert_sql = (
            f"INSERT INTO {self.checkpoints_table} (worker, last_id, updated_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (worker) DO UPDATE SET last_id = EXCLUDED.last_id,"
            " updated_at = EXCLUDED.updated_at"
        )

    async def open(self) -> None:
        """Connect, create the tables and start listening. Idempotent."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self.pool_size,
                                                   **pool_options(self.pooler))
            async with self._pool.acquire() as conn:
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.messages_table} (id BIGSERIAL PRIMARY KEY,"
                    " name TEXT NOT NULL, payload BYTEA NOT NULL, ts DOUBLE PRECISION NOT NULL,"
                    " metadata BYTEA);"
                    f"CREATE TABLE IF NOT EXISTS {self.checkpoints_table} (worker TEXT PRIMARY KEY,"
                    " last_id BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
                )
            if self._listen is not None:
                url, password = self._listen
                self._listener = await asyncpg.connect(url, password=password)
                await self._listener.add_listener(self.channel, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            await self.close()
            detail = redact(str(exc), netloc_password(self._dsn),
                            None if self._listen is None else self._listen[1])
            raise BackendUnavailable(f"cannot open postgres log at {self.url}: {detail}") from exc
        self._watcher.advance(await self.head())

    async def close(self) -> None:
        """Close the listener (or stop the poller) and the pool. Safe to call twice."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def drop(self) -> None:
        """Drop both tables (tests, teardown)."""
        async with self._acquire() as conn:
            await conn.execute(
                f"DROP TABLE IF EXISTS {self.messages_table}, {self.checkpoints_table}"
            )

    async def __aenter__(self) -> PostgresMessageLog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._watcher.advance(int(payload))
        except ValueError:
            logger.warning("ignoring malformed notification %r on %s", payload, self.channel)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise BackendError(f"postgres log {self.messages_table} is not open")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
            raise BackendUnavailable(f"postgres log connection lost: {exc}") from exc

    def _own_tx(self) -> PostgresTransaction | None:
        tx = current_transaction.get()
        return tx if isinstance(tx, PostgresTransaction) and tx.log is self else None

    async def _insert(self, tx: PostgresTransaction, entries: Sequence[Entry]) -> list[int]:
        conn = tx.connection
        if not tx.locked:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
            tx.locked = True
        now = time.time()
        rows = await conn.fetch(
            self._insert_sql,
            [e[0] for e in entries],
            [e[1] for e in entries],
            [now] * len(entries),
            [encode_metadata(e[2]) for e in entries],
        )
        ids = sorted(int(r[0]) for r in rows)
        tx.appended = max(tx.appended, ids[-1])
        await conn.execute("SELECT pg_notify($1, $2)", self.channel, str(ids[-1]))
        return ids

    async def append(
        self, name: str, payload: bytes, metadata: dict[str, str] | None = None
    ) -> int:
        return (await self.append_many([(name, payload, metadata)]))[0]

    async def append_many(self, entries: Sequence[Entry]) -> list[int]:
        """Append in one transaction (or the caller's), serialised by the advisory lock."""
        if not entries:
            return []
        tx = self._own_tx()
        if tx is not None:
            return await self._insert(tx, entries)
        async with self._acquire() as conn, conn.transaction():
            ids = await self._insert(PostgresTransaction(self, conn), entries)
        self._watcher.advance(ids[-1])
        return ids

    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]:
        """Messages with ``id > last_id`` in id order, at most ``limit``."""
        async with self._acquire() as conn:
            rows = await conn.fetch(self._read_sql, last_id, limit)
        return [
            Message(i, n, p, t) if m is None else Message(i, n, p, t, decode_metadata(m))
            for i, n, p, t, m in rows
        ]

    async def head(self) -> int:
        """The highest committed id (0 for an empty log)."""
        async with self._acquire() as conn:
            value = await conn.fetchval(f"SELECT COALESCE(MAX(id), 0) FROM {self.messages_table}")
        return int(value)

    async def wait_for(self, after_id: int, timeout: float) -> bool:
        """Wait for a NOTIFY (or, without LISTEN, a polled head) past ``after_id``; ``False``
        on timeout."""
        if self._listener is None and self._pool is not None and (
            self._poller is None or self._poller.done()
        ):
            self._poller = asyncio.create_task(self._poll(), name=f"pg-log-poll:{self.channel}")
        return await self._watcher.wait(after_id, timeout)

    async def _poll(self) -> None:
        """Read the head every ``poll_interval`` while someone waits (no LISTEN session);
        exits after a few idle seconds, the next ``wait_for`` starts it again."""
        idle_since = time.monotonic()
        failing = False
        while True:
            await asyncio.sleep(self.poll_interval)
            if self._watcher.waiters == 0:
                if time.monotonic() - idle_since > 5.0:
                    return
                continue
            idle_since = time.monotonic()
            try:
                self._watcher.advance(await self.head())
                failing = False
            except Exception as exc:  # background: waiters time out and retry; log once per outage
                if not failing:
                    logger.warning("postgres log %s: polling the head failed: %s",
                                   self.messages_table, exc)
                failing = True

    async def get_checkpoint(self, worker: str) -> int:
        async with self._acquire() as conn:
            value = await conn.fetchval(
                f"SELECT last_id FROM {self.checkpoints_table} WHERE worker = $1", worker
            )
        return int(value or 0)

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        tx = self._own_tx()
        if tx is not None:
            await tx.save_checkpoint(worker, last_id)
            return
        async with self._acquire() as conn:
            await conn.execute(self._upsert_sql, worker, last_id, time.time())

    async def checkpoints(self) -> dict[str, tuple[int, float]]:
        async with self._acquire() as conn:
            rows = await conn.fetch(
                f"SELECT worker, last_id, updated_at FROM {self.checkpoints_table} ORDER BY worker"
            )
        return {r[0]: (int(r[1]), float(r[2])) for r in rows}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction on one connection; appends and checkpoints inside it join it."""
        outer = self._own_tx()
        if outer is not None:
            yield outer
            return
        async with self._acquire() as conn:
            tx = PostgresTransaction(self, conn)
            token = current_transaction.set(tx)
            try:
                async with conn.transaction():
                    yield tx
            finally:
                current_transaction.reset(token)
        if tx.appended:
            self._watcher.advance(tx.appended)


def _interval(value: object) -> float:
    """A positive ``poll_interval`` (seconds; :data:`POLLING_INTERVAL` when ``None``), or
    :class:`ConfigError`."""
    if value is None:
        return POLLING_INTERVAL
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not 0 < seconds < math.inf:
        raise ConfigError(f"postgres log option 'poll_interval' must be a positive number of "
                          f"seconds, got {value!r}")
    return seconds
