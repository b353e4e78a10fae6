"""PostgreSQL message log via asyncpg (``postgresql://user@host/db``).

Connecting is the postgres backend's: the same URL forms and options
(:class:`~workhive.backends.postgres.settings.PostgresSettings`), the same pool and connections
(:mod:`workhive.backends.postgres.pooling`) and the same errors, with the password redacted. The
log adds ``prefix`` (several logs in one schema) and changes two defaults: ``schema`` is
``public``, where logs have always lived, and ``pool_size`` is 10.

Gap-safe tailing: ids come from a ``BIGSERIAL`` sequence, and two transactions can draw ids 7
and 8 and commit 8 first. A reader that saw 8 and then asks for ``id > 8`` skips 7 forever.
Every append therefore takes ``pg_advisory_xact_lock(<log key>)`` before drawing ids; the lock
is held until commit, so ids are drawn *and* made visible in order. PostgreSQL makes a commit
visible before it releases the transaction's locks, so the next writer's ids can never be
visible before ours. ``tests/commandlog/test_postgres.py`` proves it with concurrent writers.

Waiting: each append transaction sends ``NOTIFY <channel>, '<last id>'`` (delivered at commit);
one LISTEN connection per log wakes every waiting reader through a shared :class:`HeadWatcher`.
The channel is the schema-qualified table name, so logs in other schemas never wake this one.

Behind a transaction-mode pooler (PgBouncer), ``?pooler=transaction``: statements are not
cached, the LISTEN connection goes to ``?listen_url=`` (direct to the server) and, without one,
one poller per log reads the head every ``poll_interval`` (0.25 s) while readers wait. Nothing
else needs a session: the append lock is transaction-scoped and every table name is
schema-qualified. See :mod:`workhive.backends.postgres.pooling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg

from workhive.backends.postgres.connection import connect, create_pool
from workhive.backends.postgres.settings import DRIVER_ERRORS, PostgresSettings
from workhive.commandlog._log import (
    Entry,
    HeadWatcher,
    MessageLog,
    Transaction,
    current_transaction,
)
from workhive.commandlog._message import Message, decode_metadata, encode_metadata
from workhive.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

#: the log's defaults where they differ from the backend's
_DEFAULTS = {"schema": "public", "pool_size": 10}
#: the longest LISTEN channel name PostgreSQL keeps (NAMEDATALEN - 1 bytes)
_MAX_CHANNEL = 63


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


class PostgresMessageLog(MessageLog):
    """Message log in PostgreSQL: tables ``{schema}.{prefix}_messages`` and
    ``{schema}.{prefix}_checkpoints``.

    ``dsn`` takes every option of the postgres backend's URL (``schema``, ``pool_size``,
    ``pooler``, ``listen_url``, ``poll_interval``, timeouts, ``sslmode``...) plus ``prefix``;
    the keywords win over the DSN's query.
    """

    def __init__(self, dsn: str, *, prefix: str | None = None, schema: str | None = None,
                 pool_size: int | None = None, pooler: str | None = None,
                 listen_url: str | None = None, poll_interval: float | None = None) -> None:
        base, _, query = dsn.partition("?")
        given = dict(parse_qsl(query, keep_blank_values=True))
        prefix = prefix if prefix is not None else given.pop("prefix", "workhive")
        if not prefix.isidentifier():
            raise ConfigError(f"postgres log prefix must be an identifier, got {prefix!r}")
        keywords = {"schema": schema, "pool_size": pool_size, "pooler": pooler,
                    "listen_url": listen_url, "poll_interval": poll_interval}
        options = {k: v for k, v in _DEFAULTS.items() if k not in given}
        options.update((k, v) for k, v in keywords.items() if v is not None)
        url = f"{base}?{urlencode(given)}" if given else base
        self.settings = PostgresSettings.from_url(url, what="postgres log", **options)
        self.url = self.settings.redacted_url  # what messages, the CLI and repr show
        self.prefix = prefix
        self.schema = self.settings.schema
        self.pooler = self.settings.pooler
        #: where the LISTEN session connects, or ``None`` when readers poll instead
        self._listen = self.settings.listener_target if self.settings.listens else None
        #: how often the head is read while readers wait, when there is no LISTEN session
        self.poll_interval = self.settings.poll_every
        self._poller: asyncio.Task[None] | None = None
        self.messages_table = f"{self.schema}.{prefix}_messages"
        self.checkpoints_table = f"{self.schema}.{prefix}_checkpoints"
        self.channel = self.messages_table
        if len(self.channel.encode()) > _MAX_CHANNEL:  # PostgreSQL would cut it, pg_notify refuse
            self.channel = f"workhive_log_{zlib.crc32(self.channel.encode()):08x}"
        # A stable 63-bit key per table, shared by every process appending to this log. In
        # ``public`` it hashes the bare table name, as releases before schemas did, so old and
        # new processes appending to one log still take the same lock.
        table = f"{prefix}_messages" if self.schema == "public" else self.messages_table
        self._lock_key = zlib.crc32(f"workhive:{table}".encode()) << 16
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

    def __repr__(self) -> str:
        return f"PostgresMessageLog({self.url!r}, prefix={self.prefix!r})"

    async def open(self) -> None:
        """Connect, create the schema and tables and start listening. Idempotent."""
        if self._pool is not None:
            return
        try:
            self._pool = await create_pool(self.settings)
            async with self._pool.acquire() as conn:
                await self._create_tables(conn)
            if self._listen is not None:
                self._listener = await connect(self.settings, self._listen)
                await self._listener.add_listener(self.channel, self._on_notify)
        except DRIVER_ERRORS as exc:
            await self.close()
            raise self.settings.translate(exc, f"opening log {self.messages_table}") from exc
        self._watcher.advance(await self.head())

    async def _create_tables(self, conn: Any) -> None:
        """Schema and tables, once, under the backend's per-schema advisory lock.

        ``CREATE SCHEMA`` runs only when the schema is missing: it checks the privilege to
        create schemas before ``IF NOT EXISTS``, which would fail logs in ``public`` for users
        who may only create tables. A session whose catalog cache predates another client's
        ``CREATE`` can still collide (a unique violation) after the lock; a fresh transaction
        refreshes the cache, so the creation is simply tried again.
        """
        for attempt in range(3):
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                       f"workhive:schema:{self.schema}")
                    if await conn.fetchval("SELECT to_regnamespace($1) IS NULL", self.schema):
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {self.messages_table} (id BIGSERIAL"
                        " PRIMARY KEY, name TEXT NOT NULL, payload BYTEA NOT NULL,"
                        " ts DOUBLE PRECISION NOT NULL, metadata BYTEA);"
                        f"CREATE TABLE IF NOT EXISTS {self.checkpoints_table} (worker TEXT"
                        " PRIMARY KEY, last_id BIGINT NOT NULL,"
                        " updated_at DOUBLE PRECISION NOT NULL)"
                    )
                return
            except asyncpg.exceptions.UniqueViolationError:
                if attempt == 2:
                    raise

    async def close(self) -> None:
        """Close the listener (or stop the poller) and the pool. Safe to call twice."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def drop(self) -> None:
        """Drop both tables (tests, teardown); the schema stays."""
        async with self._acquire("dropping the log") as conn:
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
    async def _acquire(self, doing: str) -> AsyncIterator[Any]:
        """A pooled connection; driver errors raised while it is held are translated."""
        if self._pool is None:
            raise BackendError(f"postgres log {self.messages_table} is not open")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except DRIVER_ERRORS as exc:
            raise self.settings.translate(exc, f"{doing} on {self.messages_table}") from exc

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

    async def append_many(self, entries: Sequence[Entry]) -> list[int]:
        """Append in one transaction (or the caller's), serialised by the advisory lock."""
        if not entries:
            return []
        tx = self._own_tx()
        if tx is not None:
            return await self._insert(tx, entries)
        async with self._acquire("appending") as conn, conn.transaction():
            ids = await self._insert(PostgresTransaction(self, conn), entries)
        self._watcher.advance(ids[-1])
        return ids

    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]:
        """Messages with ``id > last_id`` in id order, at most ``limit``."""
        async with self._acquire("reading") as conn:
            rows = await conn.fetch(self._read_sql, last_id, limit)
        return [
            Message(i, n, p, t) if m is None else Message(i, n, p, t, decode_metadata(m))
            for i, n, p, t, m in rows
        ]

    async def head(self) -> int:
        """The highest committed id (0 for an empty log)."""
        async with self._acquire("reading the head") as conn:
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
        async with self._acquire("reading a checkpoint") as conn:
            value = await conn.fetchval(
                f"SELECT last_id FROM {self.checkpoints_table} WHERE worker = $1", worker
            )
        return int(value or 0)

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        tx = self._own_tx()
        if tx is not None:
            await tx.save_checkpoint(worker, last_id)
            return
        async with self._acquire("saving a checkpoint") as conn:
            await conn.execute(self._upsert_sql, worker, last_id, time.time())

    async def checkpoints(self) -> dict[str, tuple[int, float]]:
        async with self._acquire("reading checkpoints") as conn:
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
        async with self._acquire("in a transaction") as conn:
            tx = PostgresTransaction(self, conn)
            token = current_transaction.set(tx)
            try:
                async with conn.transaction():
                    yield tx
            finally:
                current_transaction.reset(token)
        if tx.appended:
            self._watcher.advance(tx.appended)

