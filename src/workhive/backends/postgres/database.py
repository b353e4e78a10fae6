"""The PostgreSQL database as the shared SQL engine's
:class:`~workhive.backends._sql.backend.Database`: the pool, the layout, LISTEN wake-ups.

Opening is lazy (the first call opens) and idempotent, and creates or upgrades the layout
(:func:`workhive.backends._sql.layout.migrate`) in the backend's schema; ``close`` waits for
background give-backs, then closes the LISTEN connection and the pool. A later call reopens,
as with the redis backend.

Wake-ups: the LISTEN connection's callback sets the current :class:`asyncio.Event` and starts
a fresh one, so a fetch that took the event *before* its claim cannot miss a notification that
arrives between its claim and its wait. Behind a transaction pooler the LISTEN connection goes
to ``listen_url`` (direct to the server), or there is none and idle fetches poll (see
:mod:`workhive.backends.postgres.pooling`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import asyncpg

from workhive._envelope import Envelope
from workhive._redact import redact_url
from workhive.backend import EnqueueResult
from workhive.backends._sql import layout
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, run_async
from workhive.backends.postgres import queue
from workhive.backends.postgres.connection import connect, create_pool
from workhive.backends.postgres.settings import DRIVER_ERRORS, PostgresSettings

logger = logging.getLogger(__name__)

_CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *DRIVER_ERRORS)


T = TypeVar("T")

_TABLES = ("meta", *layout.DATA_TABLES)
# whether every table and every added column of the layout is there (then opening only checks
# the version, without taking the lock)
_COMPLETE = """
SELECT (SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest($1::text[]) AS t)
    AND (SELECT count(*) FROM information_schema.columns WHERE table_schema = $2
         AND table_name || '.' || column_name = ANY($3::text[])) = cardinality($3::text[])
"""


class PostgresDatabase:
    """Pool, layout and listener of one PostgreSQL backend; runs the shared operations."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.dialect = Dialect.postgres(settings.schema)
        self.sql = queue.Statements(self.dialect)
        self.housekeeping = self.sql.compact_totals
        self._pool: Any = None
        self._idle: list[Any] = []  # pooled connections kept checked out between calls
        self._waiting = 0  # callers waiting for the pool to lend a connection
        self._schema_ok = False
        self._open_lock: asyncio.Lock | None = None
        self.listener: Any = None
        self._listen_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.generation = 0  # bumped by close(): fetches waiting across a close give up

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pool, and the schema and tables if missing. Idempotent."""
        if self._pool is not None and self._schema_ok:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._pool is None:
                try:
                    self._pool = await create_pool(self.settings)
                except DRIVER_ERRORS as exc:
                    raise self.settings.translate(exc, "connecting") from exc
            if not self._schema_ok:
                try:
                    await self._ensure_schema()
                except BaseException:
                    await self._close_pool()
                    raise
                self._schema_ok = True
                logger.debug("postgres backend ready at %s (schema %s)",
                             self.settings.redacted_url, self.settings.schema)

    async def _ensure_schema(self) -> None:
        """Create or upgrade the layout once per database; concurrent openers queue on an
        advisory lock (``CREATE SCHEMA IF NOT EXISTS`` alone races).

        The lock is not quite enough: a server session that looked the schema up before
        another client created it keeps "no such schema" in its catalog cache until its next
        transaction starts, so its ``IF NOT EXISTS`` can still collide (a unique violation).
        Behind a pooler every client shares those sessions, which makes it likely. A fresh
        transaction refreshes the cache, so the creation is simply tried again.
        """
        schema = self.settings.schema
        async with self._acquire("creating schema") as con:
            if await con.fetchval(_COMPLETE, [f"{schema}.{t}" for t in _TABLES], schema,
                                  [f"{t}.{c}" for t, c, _ in layout.ADDED_COLUMNS]):
                version = await con.fetchval(
                    f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
                if version is not None and int(version) == layout.SCHEMA_VERSION:
                    return
            for attempt in range(3):
                try:
                    await self._migrate(con)
                    return
                except asyncpg.exceptions.UniqueViolationError:
                    if attempt == 2:
                        raise

    async def _migrate(self, con: Any) -> None:
        """One transaction: lock, create what is missing, stamp the layout version."""
        schema = self.settings.schema
        async with con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                              f"workhive:schema:{schema}")
            await con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await run_async(con, layout.migrate(self.dialect, f"postgres schema {schema!r}",
                                                self.sql.tables))

    async def close(self) -> None:
        """Close the listener and the pool; leased messages stay leased until they expire."""
        self.generation += 1
        self.woke()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await listener.close(timeout=2)
        await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool, self._schema_ok = self._pool, None, False
        idle, self._idle = self._idle, []
        if pool is not None:
            for con in idle:
                with contextlib.suppress(*_CLOSE_ERRORS):
                    await pool.release(con)
            try:
                await asyncio.wait_for(pool.close(), 10)
            except _CLOSE_ERRORS:
                pool.terminate()

    async def wipe(self) -> None:
        """Drop the whole schema (tests, benchmarks); works on a closed backend too.

        A later call through this backend recreates the tables.
        """
        try:
            con = await connect(self.settings)
        except DRIVER_ERRORS as exc:
            raise self.settings.translate(exc, "wipe") from exc
        try:
            await con.execute(f"DROP SCHEMA IF EXISTS {self.settings.schema} CASCADE")
        except DRIVER_ERRORS as exc:
            raise self.settings.translate(exc, "wipe") from exc
        finally:
            await con.close()
        self._schema_ok = False

    @contextlib.asynccontextmanager
    async def conn(self, doing: str) -> AsyncIterator[Any]:
        """A pooled connection (opening the backend on first use), driver errors translated."""
        if self._pool is None or not self._schema_ok:
            await self.open()
        async with self._acquire(doing) as con:
            yield con

    @contextlib.asynccontextmanager
    async def _acquire(self, doing: str) -> AsyncIterator[Any]:
        """A connection from the current pool, driver errors translated (no lazy open).

        A connection that comes back cleanly stays checked out, on a stack of idle ones, and
        the next call takes it from there: the pool's own checkout and release (a task, a
        timeout and a queue each time) cost about a third of a one-row statement's CPU, which
        a producer enqueueing one task per call pays on every task. Only the pool lends them,
        so ``pool_size`` still bounds them; anything unusual goes back through the pool, which
        knows how to clean it up: an error or a cancel, an open transaction, a closed
        connection, or another caller waiting for the pool.
        """
        pool = self._pool
        try:
            con = None
            while con is None and self._idle:
                con = self._idle.pop()
                if con.is_closed():
                    await pool.release(con)
                    con = None
            if con is None:
                self._waiting += 1
                try:
                    con = await pool.acquire()
                finally:
                    self._waiting -= 1
            clean = False
            try:
                yield con
                clean = True
            except asyncpg.exceptions.InternalClientError:
                # a connection a server restart left mid-operation ("another operation
                # is in progress"): drop it so the pool never hands it out again
                con.terminate()
                raise
            finally:
                if (clean and pool is self._pool and not self._waiting and not con.is_closed()
                        and not con.is_in_transaction()):
                    self._idle.append(con)
                else:
                    await pool.release(con)
        except DRIVER_ERRORS as exc:
            raise self.settings.translate(exc, doing) from exc

    # -- the shared engine's operations -----------------------------------------------------

    async def run(self, op: Op[T], doing: str, *, tx: bool) -> T:
        async with self.conn(doing) as con:
            if not tx:
                return await run_async(con, op)
            async with con.transaction():
                return await run_async(con, op)

    def insert(self, envelopes: Sequence[Envelope]) -> Op[list[EnqueueResult]]:
        return queue.insert(self.sql, envelopes, self.settings.idempotency_ttl,
                            self.dialect.channel)

    # -- wake-ups -------------------------------------------------------------------------

    def wake_event(self) -> asyncio.Event:
        """The event the next notification (or local change) sets; fresh after each set."""
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def woke(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def _on_notify(self, *_: object) -> None:
        self.woke()

    def _on_listener_lost(self, con: object) -> None:
        if self.listener is con:
            self.listener = None
            logger.warning("postgres LISTEN connection to %s lost; will reconnect",
                           self.settings.redacted_url)
        self.woke()

    async def ensure_listener(self) -> bool:
        """LISTEN on the wake channel; False (logged) when that fails, or when there is no
        session to LISTEN on (transaction pooler, no ``listen_url``): fetch then polls."""
        if not self.settings.listens:
            return False
        if self.listener is not None and not self.listener.is_closed():
            return True
        if self._listen_lock is None:
            self._listen_lock = asyncio.Lock()
        async with self._listen_lock:
            if self.listener is not None and not self.listener.is_closed():
                return True
            try:
                con = await connect(self.settings, self.settings.listener_target)
            except DRIVER_ERRORS as exc:
                self._listen_failed(exc)
                return False
            try:
                await con.add_listener(self.settings.channel, self._on_notify)
            except DRIVER_ERRORS as exc:
                await con.close()
                self._listen_failed(exc)
                return False
            con.add_termination_listener(self._on_listener_lost)
            self.listener = con
            return True

    def _listen_failed(self, exc: BaseException) -> None:
        url, password = self.settings.listener_target
        logger.warning("cannot LISTEN for wake-ups on %s (idle fetches poll every %.2g s): %s",
                       redact_url(url, password=password), self.settings.poll_every,
                       self.settings.scrub(f"{type(exc).__name__}: {exc}"))

    def track(self, future: asyncio.Future[Any]) -> None:
        self._background.add(future)
        future.add_done_callback(self._background.discard)
