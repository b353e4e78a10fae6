"""The production store: PostgreSQL through asyncpg, no ORM.

One pool per process, opened on first use (building a hive touches no database) and closed
when the worker stops. Connections use ``search_path = <schema>`` (``CHATEAR_DB_SCHEMA``,
default ``public``), so the same SQL runs in a schema of its own (tests, several apps on one
database). Tables are created on first use under an advisory lock, so workers starting
together do not race on ``CREATE TABLE``.

Each change locks the row it reads first (``FOR UPDATE``), the same guarantee the SQLite
store gets from ``BEGIN IMMEDIATE``: two workers handling the same user serialize. Times are
``timestamptz`` in the tables and Unix seconds in the interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
from examples.chatear.store import (
    REQUIRED_COLUMNS,
    AuditEntry,
    Deletion,
    MailClaim,
    MailStatus,
    Purge,
    RecoverStatus,
    Scheduled,
    StoreError,
    User,
    decide_claim,
    missing_columns,
)
from examples.chatear.store._rules import SELECT_DELETIONS, USER_COLUMNS, purge_refusal

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_deleted BOOLEAN NOT NULL DEFAULT FALSE,     -- soft delete
    deleted_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS user_deletions (
    id           BIGSERIAL PRIMARY KEY,
    user_id      TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    purge_at     TIMESTAMPTZ NOT NULL,
    status       TEXT NOT NULL DEFAULT 'scheduled'
                 CHECK (status IN ('scheduled', 'recovered', 'purged')),
    resolved_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS user_deletions_open
    ON user_deletions (user_id) WHERE status = 'scheduled';
CREATE TABLE IF NOT EXISTS action_logs (
    id         BIGSERIAL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS action_logs_user ON action_logs (user_id, id);
CREATE TABLE IF NOT EXISTS sent_emails (
    message_key TEXT PRIMARY KEY,
    recipient   TEXT NOT NULL,
    template    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('sending', 'committing', 'sent')),
    owner       TEXT NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ
);
"""

_LOCK_ID = 0x43686174  # "Chat": the advisory lock taken while creating the tables
_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
_DELETION = SELECT_DELETIONS


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["email"], row["name"], row["is_deleted"],
                _epoch(row["deleted_at"]))


def _deletion(row: asyncpg.Record) -> Deletion:
    return Deletion(row["id"], row["user_id"], row["requested_at"].timestamp(),
                    row["purge_at"].timestamp(), row["status"], _epoch(row["resolved_at"]))


def _where(dsn: str) -> str:
    """The DSN for messages: host and database, never the password."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


class PostgresStore:
    """The store in PostgreSQL at ``dsn``, tables in ``schema``."""

    def __init__(self, dsn: str, *, schema: str = "public", max_connections: int = 10) -> None:
        if not dsn.startswith(("postgres://", "postgresql://")):
            raise StoreError("DATABASE_URL must be a postgresql:// URL, got "
                             f"{dsn.split('://', 1)[0]!r}://...")
        self._dsn = dsn
        self.schema = schema
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({_where(self._dsn)!r}, schema={self.schema!r})"

    # -- plumbing -------------------------------------------------------------------------

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self._dsn, min_size=1, max_size=self.max_connections,
                    server_settings={"search_path": self.schema})
                try:
                    async with pool.acquire() as conn:
                        await self._ensure_schema(conn)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def _ensure_schema(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1",
                                         self.schema)
            if not exists:
                await conn.execute(f'CREATE SCHEMA "{self.schema}"')
            await conn.execute(SCHEMA)
            rows = await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = ANY($2::text[])",
                self.schema, list(REQUIRED_COLUMNS))
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row["table_name"], set()).add(row["column_name"])
        problem = missing_columns(found)
        if problem:
            raise StoreError(f"postgresql {_where(self._dsn)} schema {self.schema}: {problem}")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            yield conn

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._get_pool()
        return cast(list[asyncpg.Record], await pool.fetch(query, *args))

    @staticmethod
    async def _audit(conn: asyncpg.Connection, user_id: str, action: str, detail: str,
                     now: float) -> None:
        await conn.execute("INSERT INTO action_logs (user_id, action, detail, created_at) "
                           "VALUES ($1, $2, $3, $4)", user_id, action, detail, _ts(now))

    @staticmethod
    async def _open(conn: asyncpg.Connection, user_id: str) -> Deletion | None:
        row = await conn.fetchrow(_DELETION + " WHERE user_id = $1 AND status = 'scheduled'",
                                  user_id)
        return _deletion(row) if row else None

    # -- service --------------------------------------------------------------------------

    async def start(self) -> None:
        await self._get_pool()

    async def stop(self, timeout: float) -> None:
        await self.close()

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- users and deletions --------------------------------------------------------------

    async def add_user(self, user_id: str, email: str, name: str = "") -> None:
        async with self._transaction() as conn:
            now = datetime.now(UTC)
            await conn.execute("INSERT INTO users (id, email, name, created_at) "
                               "VALUES ($1, $2, $3, $4)", user_id, email, name, now)
            await self._audit(conn, user_id, "created", email, now.timestamp())

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._fetch(_USER, user_id)
        return _user(rows[0]) if rows else None

    async def schedule_deletion(self, user_id: str, now: float,
                                purge_at: float) -> Scheduled | None:
        async with self._transaction() as conn:
            row = await conn.fetchrow(_USER + " FOR UPDATE", user_id)
            if row is None:
                return None
            existing = await self._open(conn, user_id)
            if existing is not None:
                return Scheduled(existing, _user(row), changed=False)
            user_row = await conn.fetchrow(
                "UPDATE users SET is_deleted = TRUE, deleted_at = $2 WHERE id = $1 "
                f"RETURNING {USER_COLUMNS}", user_id, _ts(now))
            deletion_row = await conn.fetchrow(
                "INSERT INTO user_deletions (user_id, requested_at, purge_at) "
                "VALUES ($1, $2, $3) RETURNING id, user_id, requested_at, purge_at, status, "
                "resolved_at", user_id, _ts(now), _ts(purge_at))
            deletion = _deletion(deletion_row)
            await self._audit(conn, user_id, "deletion_scheduled",
                              f"deletion={deletion.id} purge_at={purge_at:.3f}", now)
            return Scheduled(deletion, _user(user_row), changed=True)

    async def open_deletion(self, user_id: str) -> Deletion | None:
        rows = await self._fetch(_DELETION + " WHERE user_id = $1 AND status = 'scheduled'",
                                 user_id)
        return _deletion(rows[0]) if rows else None

    async def deletions(self, user_id: str) -> list[Deletion]:
        rows = await self._fetch(_DELETION + " WHERE user_id = $1 ORDER BY id", user_id)
        return [_deletion(r) for r in rows]

    async def recover(self, user_id: str, now: float) -> RecoverStatus:
        async with self._transaction() as conn:
            if await conn.fetchrow(_USER + " FOR UPDATE", user_id) is None:
                return "unknown"
            deletion = await self._open(conn, user_id)
            if deletion is None:
                return "not_deleted"
            if deletion.purge_at <= now:
                await self._audit(conn, user_id, "recovery_refused",
                                  f"deletion={deletion.id} window closed", now)
                return "window_closed"
            await conn.execute("UPDATE users SET is_deleted = FALSE, deleted_at = NULL "
                               "WHERE id = $1", user_id)
            await conn.execute("UPDATE user_deletions SET status = 'recovered', "
                               "resolved_at = $2 WHERE id = $1", deletion.id, _ts(now))
            await self._audit(conn, user_id, "recovered", f"deletion={deletion.id}", now)
            return "recovered"

    async def purge(self, deletion_id: int, now: float) -> Purge:
        async with self._transaction() as conn:
            row = await conn.fetchrow(_DELETION + " WHERE id = $1 FOR UPDATE", deletion_id)
            if row is None:
                return Purge("unknown")
            deletion = _deletion(row)
            refusal = purge_refusal(deletion, now)
            if refusal is not None:
                return refusal
            await conn.execute("DELETE FROM users WHERE id = $1", deletion.user_id)
            await conn.execute("UPDATE user_deletions SET status = 'purged', resolved_at = $2 "
                               "WHERE id = $1", deletion_id, _ts(now))
            await self._audit(conn, deletion.user_id, "purged", f"deletion={deletion_id}", now)
            return Purge("purged")

    async def audit_log(self, user_id: str | None = None) -> list[AuditEntry]:
        query = "SELECT user_id, action, detail, created_at FROM action_logs"
        if user_id is None:
            rows = await self._fetch(query + " ORDER BY id")
        else:
            rows = await self._fetch(query + " WHERE user_id = $1 ORDER BY id", user_id)
        return [AuditEntry(r["user_id"], r["action"], r["detail"], r["created_at"].timestamp())
                for r in rows]

    # -- the sent-mail ledger -------------------------------------------------------------

    async def claim_mail(self, key: str, owner: str, recipient: str, template: str,
                         now: float, stale_after: float) -> MailClaim:
        async with self._transaction() as conn:
            inserted = await conn.fetchval(
                "INSERT INTO sent_emails (message_key, recipient, template, status, owner, "
                "claimed_at) VALUES ($1, $2, $3, 'sending', $4, $5) "
                "ON CONFLICT (message_key) DO NOTHING RETURNING 1",
                key, recipient, template, owner, _ts(now))
            if inserted:
                return MailClaim("claimed")
            row = await conn.fetchrow("SELECT status, owner, claimed_at FROM sent_emails "
                                      "WHERE message_key = $1 FOR UPDATE", key)
            if row is None:  # released between the two statements: ask again
                return MailClaim("busy", 0.0)
            claim, take_over = decide_claim(row["status"], row["owner"],
                                            row["claimed_at"].timestamp(), owner, now,
                                            stale_after)
            if take_over:
                await conn.execute("UPDATE sent_emails SET owner = $2, claimed_at = $3 "
                                   "WHERE message_key = $1", key, owner, _ts(now))
            return claim

    async def mark_committing(self, key: str, owner: str, now: float) -> bool:
        return await self._move(key, owner, "sending", "committing", "claimed_at", now)

    async def mark_sent(self, key: str, owner: str, now: float) -> bool:
        return await self._move(key, owner, "committing", "sent", "sent_at", now)

    async def _move(self, key: str, owner: str, old: str, new: str, column: str,
                    now: float) -> bool:
        pool = await self._get_pool()
        done = await pool.fetchval(
            f"UPDATE sent_emails SET status = $4, {column} = $5 "
            "WHERE message_key = $1 AND owner = $2 AND status = $3 RETURNING 1",
            key, owner, old, new, _ts(now))
        return bool(done)

    async def release_mail(self, key: str, owner: str) -> None:
        await self._delete_mail(key, owner)

    async def forget_mail(self, key: str) -> bool:
        return await self._delete_mail(key, None)

    async def _delete_mail(self, key: str, owner: str | None) -> bool:
        pool = await self._get_pool()
        done = await pool.fetchval(
            "DELETE FROM sent_emails WHERE message_key = $1 AND status <> 'sent' "
            "AND ($2::text IS NULL OR owner = $2) RETURNING 1", key, owner)
        return bool(done)

    async def mail_status(self, key: str) -> MailStatus | None:
        rows = await self._fetch("SELECT status FROM sent_emails WHERE message_key = $1", key)
        return cast(MailStatus, rows[0]["status"]) if rows else None
