"""Chatear's SQL state: users (soft delete), the audit log, and the sent-mail ledger.

Stdlib ``sqlite3`` on one file (``CHATEAR_DB``), standing in for seed 003's PostgreSQL. Every
method opens its own short connection, so the store is safe to call from ``asyncio.to_thread``
in any number of workers and processes; each state change and its audit row commit in one
``BEGIN IMMEDIATE`` transaction, so the audit log never disagrees with the users table.

Methods return what happened (an outcome) instead of raising, and are idempotent: a message
delivered twice (at-least-once) finds the change already made and says so.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Literal

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    deleted_at REAL,            -- soft delete: set while the account waits for its purge
    purge_at   REAL             -- end of the recovery window
);
CREATE TABLE IF NOT EXISTS action_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '',
    at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS action_logs_user ON action_logs (user_id, id);
CREATE TABLE IF NOT EXISTS sent_messages (
    message_key TEXT PRIMARY KEY,   -- idempotency key (or message id) of notify:send_email
    recipient   TEXT NOT NULL,
    template    TEXT NOT NULL,
    sent_at     REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    deleted_at: float | None = None
    purge_at: float | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    user_id: str
    action: str
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class SoftDelete:
    """``user`` as stored after the call; ``changed`` is False when it was already deleted."""

    user: User
    changed: bool


RestoreStatus = Literal["restored", "not_deleted", "window_closed", "unknown"]
PurgeStatus = Literal["purged", "not_deleted", "not_due", "unknown"]


@dataclass(frozen=True, slots=True)
class Purge:
    """What a purge found; ``remaining`` is how long until it is due (``not_due`` only)."""

    status: PurgeStatus
    remaining: float = 0.0


class Store:
    """The SQL store at ``path`` (created with its schema on first use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
            self._ensure_schema(conn)
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so read-then-write cannot race."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                self._schema_ready = True

    @staticmethod
    def _audit(conn: sqlite3.Connection, user_id: str, action: str, detail: str,
               now: float) -> None:
        conn.execute("INSERT INTO action_logs (user_id, action, detail, at) VALUES (?, ?, ?, ?)",
                     (user_id, action, detail, now))

    @staticmethod
    def _user(conn: sqlite3.Connection, user_id: str) -> User | None:
        row = conn.execute("SELECT id, email, name, deleted_at, purge_at FROM users WHERE id = ?",
                           (user_id,)).fetchone()
        return User(*row) if row else None

    # -- users ----------------------------------------------------------------------------

    def add_user(self, user_id: str, email: str, name: str = "") -> None:
        """Create a user (the API's sign-up; tests and the README use it to seed data)."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO users (id, email, name, created_at) VALUES (?, ?, ?, ?)",
                         (user_id, email, name, time.time()))
            self._audit(conn, user_id, "created", email, time.time())

    def get_user(self, user_id: str) -> User | None:
        with self._connect() as conn:
            return self._user(conn, user_id)

    def soft_delete(self, user_id: str, now: float, purge_at: float) -> SoftDelete | None:
        """Mark the user deleted until ``purge_at``; None if there is no such user.

        A user who is already soft-deleted keeps their original window (``changed=False``), so
        a redelivered deletion schedules the same purge and the same email as the first one.
        """
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE users SET deleted_at = ?, purge_at = ? "
                "WHERE id = ? AND deleted_at IS NULL", (now, purge_at, user_id))
            changed = cur.rowcount == 1
            if changed:
                self._audit(conn, user_id, "deletion_scheduled", f"purge_at={purge_at:.3f}", now)
            user = self._user(conn, user_id)
        return SoftDelete(user, changed) if user is not None else None

    def restore(self, user_id: str, now: float) -> RestoreStatus:
        """Undo a soft delete while its recovery window is open."""
        with self._transaction() as conn:
            user = self._user(conn, user_id)
            if user is None:
                return "unknown"
            if user.deleted_at is None:
                return "not_deleted"
            if user.purge_at is not None and user.purge_at <= now:
                self._audit(conn, user_id, "recovery_refused", "recovery window closed", now)
                return "window_closed"
            conn.execute("UPDATE users SET deleted_at = NULL, purge_at = NULL WHERE id = ?",
                         (user_id,))
            self._audit(conn, user_id, "restored", "", now)
            return "restored"

    def purge(self, user_id: str, now: float) -> Purge:
        """Hard-delete a soft-deleted user whose recovery window has closed."""
        with self._transaction() as conn:
            user = self._user(conn, user_id)
            if user is None:
                return Purge("unknown")
            if user.deleted_at is None:
                return Purge("not_deleted")
            if user.purge_at is not None and user.purge_at > now:
                return Purge("not_due", user.purge_at - now)
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
            self._audit(conn, user_id, "purged", "", now)
            return Purge("purged")

    def audit_log(self, user_id: str | None = None) -> list[AuditEntry]:
        """Audit rows in the order written (one user's, or everyone's)."""
        query = "SELECT user_id, action, detail, at FROM action_logs"
        params: tuple[str, ...] = ()
        if user_id is not None:
            query += " WHERE user_id = ?"
            params = (user_id,)
        with self._connect() as conn:
            return [AuditEntry(*row) for row in conn.execute(query + " ORDER BY id", params)]

    # -- the notification worker's ledger ------------------------------------------------

    def was_sent(self, message_key: str) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM sent_messages WHERE message_key = ?",
                               (message_key,)).fetchone()
        return row is not None

    def mark_sent(self, message_key: str, recipient: str, template: str, now: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sent_messages (message_key, recipient, template, sent_at) "
                "VALUES (?, ?, ?, ?)", (message_key, recipient, template, now))
