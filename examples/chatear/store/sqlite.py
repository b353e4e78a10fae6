"""The embedded store: stdlib ``sqlite3`` on one file, no server.

Every call opens a short connection in a worker thread (``asyncio.to_thread``), so the store is
safe from any number of tasks and processes; writes take the lock up front (``BEGIN
IMMEDIATE``) so read-then-write cannot race. Times are stored as Unix seconds (REAL).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any, TypeVar, cast

from examples.chatear.store import (
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

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    is_deleted INTEGER NOT NULL DEFAULT 0,   -- soft delete
    deleted_at REAL
);
CREATE TABLE IF NOT EXISTS user_deletions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      TEXT NOT NULL,
    requested_at REAL NOT NULL,
    purge_at     REAL NOT NULL,
    status       TEXT NOT NULL DEFAULT 'scheduled'
                 CHECK (status IN ('scheduled', 'recovered', 'purged')),
    resolved_at  REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS user_deletions_open
    ON user_deletions (user_id) WHERE status = 'scheduled';
CREATE TABLE IF NOT EXISTS action_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS action_logs_user ON action_logs (user_id, id);
CREATE TABLE IF NOT EXISTS sent_emails (
    message_key TEXT PRIMARY KEY,
    recipient   TEXT NOT NULL,
    template    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('sending', 'committing', 'sent')),
    owner       TEXT NOT NULL,
    claimed_at  REAL NOT NULL,
    sent_at     REAL
);
"""

_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = ?"
_DELETION = SELECT_DELETIONS


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), row[4])


def _deletion(row: Any) -> Deletion:
    return Deletion(*row)


class SqliteStore:
    """The store in the SQLite file at ``path`` (created with its tables on first use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
            self._ensure_schema(conn)
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, locked up front so read-then-write cannot race."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            found = {table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                     for table in ("users", "user_deletions", "action_logs", "sent_emails")}
            problem = missing_columns(found)
            if problem:
                raise StoreError(f"{self.path}: {problem}")
            self._ready = True

    @staticmethod
    def _audit(conn: sqlite3.Connection, user_id: str, action: str, detail: str,
               now: float) -> None:
        conn.execute("INSERT INTO action_logs (user_id, action, detail, created_at) "
                     "VALUES (?, ?, ?, ?)", (user_id, action, detail, now))

    @staticmethod
    def _get_user(conn: sqlite3.Connection, user_id: str) -> User | None:
        row = conn.execute(_USER, (user_id,)).fetchone()
        return _user(row) if row else None

    @staticmethod
    def _open(conn: sqlite3.Connection, user_id: str) -> Deletion | None:
        row = conn.execute(_DELETION + " WHERE user_id = ? AND status = 'scheduled'",
                           (user_id,)).fetchone()
        return _deletion(row) if row else None

    # -- service --------------------------------------------------------------------------

    async def start(self) -> None:
        await self._run(self._start)

    def _start(self) -> None:
        with self._connect():
            pass

    async def stop(self, timeout: float) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing stays open between calls."""

    # -- users and deletions --------------------------------------------------------------

    async def add_user(self, user_id: str, email: str, name: str = "") -> None:
        await self._run(self._add_user, user_id, email, name)

    def _add_user(self, user_id: str, email: str, name: str) -> None:
        now = time.time()
        with self._transaction() as conn:
            conn.execute("INSERT INTO users (id, email, name, created_at) VALUES (?, ?, ?, ?)",
                         (user_id, email, name, now))
            self._audit(conn, user_id, "created", email, now)

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(self._read_user, user_id)

    def _read_user(self, user_id: str) -> User | None:
        with self._connect() as conn:
            return self._get_user(conn, user_id)

    async def schedule_deletion(self, user_id: str, now: float,
                                purge_at: float) -> Scheduled | None:
        return await self._run(self._schedule, user_id, now, purge_at)

    def _schedule(self, user_id: str, now: float, purge_at: float) -> Scheduled | None:
        with self._transaction() as conn:
            user = self._get_user(conn, user_id)
            if user is None:
                return None
            existing = self._open(conn, user_id)
            if existing is not None:
                return Scheduled(existing, user, changed=False)
            conn.execute("UPDATE users SET is_deleted = 1, deleted_at = ? WHERE id = ?",
                         (now, user_id))
            cur = conn.execute("INSERT INTO user_deletions (user_id, requested_at, purge_at) "
                               "VALUES (?, ?, ?)", (user_id, now, purge_at))
            self._audit(conn, user_id, "deletion_scheduled",
                        f"deletion={cur.lastrowid} purge_at={purge_at:.3f}", now)
            deletion = self._open(conn, user_id)
            user = self._get_user(conn, user_id)
            assert deletion is not None and user is not None
            return Scheduled(deletion, user, changed=True)

    async def open_deletion(self, user_id: str) -> Deletion | None:
        return await self._run(self._read_open, user_id)

    def _read_open(self, user_id: str) -> Deletion | None:
        with self._connect() as conn:
            return self._open(conn, user_id)

    async def deletions(self, user_id: str) -> list[Deletion]:
        return await self._run(self._read_deletions, user_id)

    def _read_deletions(self, user_id: str) -> list[Deletion]:
        with self._connect() as conn:
            rows = conn.execute(_DELETION + " WHERE user_id = ? ORDER BY id", (user_id,))
            return [_deletion(r) for r in rows]

    async def recover(self, user_id: str, now: float) -> RecoverStatus:
        return await self._run(self._recover, user_id, now)

    def _recover(self, user_id: str, now: float) -> RecoverStatus:
        with self._transaction() as conn:
            if self._get_user(conn, user_id) is None:
                return "unknown"
            deletion = self._open(conn, user_id)
            if deletion is None:
                return "not_deleted"
            if deletion.purge_at <= now:
                self._audit(conn, user_id, "recovery_refused",
                            f"deletion={deletion.id} window closed", now)
                return "window_closed"
            conn.execute("UPDATE users SET is_deleted = 0, deleted_at = NULL WHERE id = ?",
                         (user_id,))
            conn.execute("UPDATE user_deletions SET status = 'recovered', resolved_at = ? "
                         "WHERE id = ?", (now, deletion.id))
            self._audit(conn, user_id, "recovered", f"deletion={deletion.id}", now)
            return "recovered"

    async def purge(self, deletion_id: int, now: float) -> Purge:
        return await self._run(self._purge, deletion_id, now)

    def _purge(self, deletion_id: int, now: float) -> Purge:
        with self._transaction() as conn:
            row = conn.execute(_DELETION + " WHERE id = ?", (deletion_id,)).fetchone()
            if row is None:
                return Purge("unknown")
            deletion = _deletion(row)
            refusal = purge_refusal(deletion, now)
            if refusal is not None:
                return refusal
            conn.execute("DELETE FROM users WHERE id = ?", (deletion.user_id,))
            conn.execute("UPDATE user_deletions SET status = 'purged', resolved_at = ? "
                         "WHERE id = ?", (now, deletion_id))
            self._audit(conn, deletion.user_id, "purged", f"deletion={deletion_id}", now)
            return Purge("purged")

    async def audit_log(self, user_id: str | None = None) -> list[AuditEntry]:
        return await self._run(self._audit_log, user_id)

    def _audit_log(self, user_id: str | None) -> list[AuditEntry]:
        query = "SELECT user_id, action, detail, created_at FROM action_logs"
        params: tuple[str, ...] = ()
        if user_id is not None:
            query += " WHERE user_id = ?"
            params = (user_id,)
        with self._connect() as conn:
            return [AuditEntry(*row) for row in conn.execute(query + " ORDER BY id", params)]

    # -- the sent-mail ledger -------------------------------------------------------------

    async def claim_mail(self, key: str, owner: str, recipient: str, template: str,
                         now: float, stale_after: float) -> MailClaim:
        return await self._run(self._claim, key, owner, recipient, template, now, stale_after)

    def _claim(self, key: str, owner: str, recipient: str, template: str, now: float,
               stale_after: float) -> MailClaim:
        with self._transaction() as conn:
            row = conn.execute("SELECT status, owner, claimed_at FROM sent_emails "
                               "WHERE message_key = ?", (key,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO sent_emails (message_key, recipient, template, status, "
                             "owner, claimed_at) VALUES (?, ?, ?, 'sending', ?, ?)",
                             (key, recipient, template, owner, now))
                return MailClaim("claimed")
            claim, take_over = decide_claim(row[0], row[1], row[2], owner, now, stale_after)
            if take_over:
                conn.execute("UPDATE sent_emails SET owner = ?, claimed_at = ? "
                             "WHERE message_key = ?", (owner, now, key))
            return claim

    async def mark_committing(self, key: str, owner: str, now: float) -> bool:
        return await self._run(self._move, key, owner, "sending", "committing",
                               "claimed_at", now)

    async def mark_sent(self, key: str, owner: str, now: float) -> bool:
        return await self._run(self._move, key, owner, "committing", "sent", "sent_at", now)

    def _move(self, key: str, owner: str, old: str, new: str, column: str, now: float) -> bool:
        with self._transaction() as conn:
            cur = conn.execute(f"UPDATE sent_emails SET status = ?, {column} = ? "
                               "WHERE message_key = ? AND owner = ? AND status = ?",
                               (new, now, key, owner, old))
            return cur.rowcount == 1

    async def release_mail(self, key: str, owner: str) -> None:
        await self._run(self._delete_mail, key, owner)

    async def forget_mail(self, key: str) -> bool:
        return await self._run(self._delete_mail, key, None)

    def _delete_mail(self, key: str, owner: str | None) -> bool:
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM sent_emails WHERE message_key = ? "
                               "AND status != 'sent' AND (? IS NULL OR owner = ?)",
                               (key, owner, owner))
            return cur.rowcount == 1

    async def mail_status(self, key: str) -> MailStatus | None:
        return await self._run(self._mail_status, key)

    def _mail_status(self, key: str) -> MailStatus | None:
        with self._connect() as conn:
            row = conn.execute("SELECT status FROM sent_emails WHERE message_key = ?",
                               (key,)).fetchone()
        return cast(MailStatus, row[0]) if row else None
