"""Chatear's state behind one small interface: users, deletions, the audit trail, sent mail.

Two implementations with the same tables and the same behaviour:

* :class:`~.sqlite.SqliteStore` — stdlib ``sqlite3`` on one file (``CHATEAR_DB``), the
  embedded default;
* :class:`~.postgres.PostgresStore` — asyncpg on ``DATABASE_URL``, in ``CHATEAR_DB_SCHEMA``.

:func:`open_store` picks one from the settings. Tables (created by the store on first use)::

    users           id, email, name, created_at, is_deleted, deleted_at   (soft delete)
    user_deletions  id, user_id, requested_at, purge_at, status, resolved_at
                    status: scheduled -> recovered | purged; at most one scheduled per user
    action_logs     id, user_id, action, detail, created_at                (the audit trail)
    sent_emails     message_key, recipient, template, status, owner, claimed_at, sent_at
                    status: sending -> committing -> sent                  (see notifications)

Every state change and its audit row commit in one transaction, so the audit trail never
disagrees with the tables. Methods return what happened (an outcome) instead of raising, and
are idempotent: a message delivered twice (at-least-once) finds the change already made and
says so. Times are Unix seconds chosen by the caller (tests pass their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from examples.chatear.settings import Settings

DeletionStatus = Literal["scheduled", "recovered", "purged"]
RecoverStatus = Literal["recovered", "not_deleted", "window_closed", "unknown"]
PurgeStatus = Literal["purged", "already_purged", "recovered", "not_due", "unknown"]
MailStatus = Literal["sending", "committing", "sent"]
ClaimStatus = Literal["claimed", "sent", "busy", "unknown"]

#: columns each table must have; a table that exists without them (an older schema, or an
#: application's own ``users`` table of another shape) is refused with their names
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "name", "created_at", "is_deleted", "deleted_at"),
    "user_deletions": ("id", "user_id", "requested_at", "purge_at", "status", "resolved_at"),
    "action_logs": ("id", "user_id", "action", "detail", "created_at"),
    "sent_emails": ("message_key", "recipient", "template", "status", "owner", "claimed_at",
                    "sent_at"),
}


class StoreError(RuntimeError):
    """The database cannot be used as Chatear's store (wrong schema, bad URL)."""


def missing_columns(found: dict[str, set[str]]) -> str | None:
    """A message naming what ``found`` (table -> its columns) lacks, or None if complete."""
    problems = []
    for table, columns in REQUIRED_COLUMNS.items():
        lacking = [c for c in columns if c not in found.get(table, set())]
        if lacking:
            problems.append(f"{table} lacks {', '.join(lacking)}")
    if not problems:
        return None
    return ("existing tables do not have Chatear's columns (" + "; ".join(problems) + "); "
            "use an empty database or schema, or migrate these tables")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str = ""
    is_deleted: bool = False
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    """One deletion request: open while ``scheduled``, until recovered or purged."""

    id: int
    user_id: str
    requested_at: float
    purge_at: float
    status: DeletionStatus
    resolved_at: float | None = None


@dataclass(frozen=True, slots=True)
class Scheduled:
    """The open deletion after :meth:`Store.schedule_deletion`; ``changed`` is False when it
    was already open (a redelivered request: same deletion, same window)."""

    deletion: Deletion
    user: User
    changed: bool


@dataclass(frozen=True, slots=True)
class Purge:
    """What a purge found; ``remaining`` is how long until it is due (``not_due`` only)."""

    status: PurgeStatus
    remaining: float = 0.0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    user_id: str
    action: str
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class MailClaim:
    """Answer to :meth:`Store.claim_mail`. ``claimed``: this delivery may send; ``sent``:
    already sent; ``busy``: another delivery is sending it, look again in ``wait`` seconds;
    ``unknown``: a sender stopped after handing the message to the SMTP server and before
    recording the reply, so nobody knows whether it went out."""

    status: ClaimStatus
    wait: float = 0.0


class Store(Protocol):
    """What the handlers need from the database. ``start``/``stop`` let a worker run the
    store as a service: the schema is checked before the first message, the pool closed at
    shutdown."""

    async def start(self) -> None:
        """Create the tables if missing and check them (idempotent, cheap after the first)."""

    async def stop(self, timeout: float) -> None:
        """Close connections; the next call opens them again."""

    async def close(self) -> None: ...

    # -- users and deletions ------------------------------------------------------------

    async def add_user(self, user_id: str, email: str, name: str = "") -> None:
        """Create a user (the API's sign-up; tests and the README use it to seed data)."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def schedule_deletion(self, user_id: str, now: float,
                                purge_at: float) -> Scheduled | None:
        """Soft-delete the user and open a deletion due at ``purge_at``, with an audit row;
        None if there is no such user. An open deletion is returned as it is."""

    async def open_deletion(self, user_id: str) -> Deletion | None: ...

    async def deletions(self, user_id: str) -> list[Deletion]:
        """Every deletion of the user, oldest first."""

    async def recover(self, user_id: str, now: float) -> RecoverStatus:
        """Undo the soft delete while the open deletion's window lasts."""

    async def purge(self, deletion_id: int, now: float) -> Purge:
        """Remove the user of a due, still scheduled deletion (audit and deletion rows stay)."""

    async def audit_log(self, user_id: str | None = None) -> list[AuditEntry]:
        """Audit rows in the order written (one user's, or everyone's)."""

    # -- the sent-mail ledger -----------------------------------------------------------

    async def claim_mail(self, key: str, owner: str, recipient: str, template: str,
                         now: float, stale_after: float) -> MailClaim:
        """Take ``key`` for ``owner`` (one delivery attempt) before talking to SMTP.

        A row another owner is ``sending`` is taken over once it is ``stale_after`` seconds
        old (its owner cannot pass :meth:`mark_committing` any more); a ``committing`` one
        that old is ``unknown``."""

    async def mark_committing(self, key: str, owner: str, now: float) -> bool:
        """``sending`` -> ``committing`` if ``owner`` still holds the key: the last write
        before the message is handed over. False: someone took the key over; do not send."""

    async def mark_sent(self, key: str, owner: str, now: float) -> bool: ...

    async def release_mail(self, key: str, owner: str) -> None:
        """Drop ``owner``'s unfinished claim: the server certainly did not take the message."""

    async def mail_status(self, key: str) -> MailStatus | None: ...

    async def forget_mail(self, key: str) -> bool:
        """Drop an unfinished row (an ``unknown`` outcome an operator checked was not
        delivered), so a replay sends it. A sent mail is never forgotten (False)."""


def decide_claim(status: MailStatus, holder: str, claimed_at: float, owner: str, now: float,
                 stale_after: float) -> tuple[MailClaim, bool]:
    """Both stores' rule for a key that already has a row: the answer, and whether ``owner``
    takes the row over (a stale ``sending`` row of a delivery that is gone)."""
    if status == "sent":
        return MailClaim("sent"), False
    if holder == owner:
        return MailClaim("claimed"), False
    age = now - claimed_at
    if age < stale_after:
        return MailClaim("busy", stale_after - age), False
    if status == "sending":
        return MailClaim("claimed"), True
    return MailClaim("unknown"), False


def open_store(settings: Settings) -> Store:
    """PostgreSQL when ``DATABASE_URL`` is set, else the SQLite file. Nothing is opened yet."""
    if settings.database_url:
        from examples.chatear.store.postgres import PostgresStore

        return PostgresStore(settings.database_url, schema=settings.db_schema)
    from examples.chatear.store.sqlite import SqliteStore

    return SqliteStore(settings.db_path)


__all__ = ["AuditEntry", "Deletion", "MailClaim", "Purge", "Scheduled", "Store", "StoreError",
           "User", "open_store"]
