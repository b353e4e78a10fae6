"""Schema, connection set-up and error translation for the SQLite backend.

Kept apart from the queue logic so the table layout can be read in one place. The layout's key
idea is one ``available_at`` column per message: the eta of a new or retried row, the lease
deadline of a leased one. "Ready" is then just ``available_at <= now``, so an expired lease is
fetchable again with no reaper, and one index ``(queue, priority DESC, available_at)`` serves
every fetch in order without a sort.

Migrations: ``meta.schema_version`` records the layout; :func:`ensure_schema` creates missing
tables idempotently, stamps an older file with the current version (every change so far only
added tables, so old files open unchanged otherwise) and refuses a file written by a newer layout.
Version 2 added ``claims``. ``results`` and ``cancels`` (task results, cancel requests) came
without a new version: an older workhive ignores tables it does not know, so it can still open
the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time

from workhive.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # token: 0 when not leased; the current lease's random token otherwise.
    """CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        available_at REAL NOT NULL DEFAULT 0,
        token INTEGER NOT NULL DEFAULT 0,
        unique_key TEXT,
        body BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority DESC, available_at)",
    # A unique key is held exactly as long as a row carrying it exists (ack/dead delete it).
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON jobs (unique_key)"
    " WHERE unique_key IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS dead (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL,
        body BLOB NOT NULL,
        reason TEXT NOT NULL,
        failed_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS dead_queue ON dead (queue, seq)",
    """CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY, id TEXT NOT NULL, expires_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bindings (
        pattern TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (pattern, grp))""",
    """CREATE TABLE IF NOT EXISTS ticks (
        job TEXT NOT NULL, tick REAL NOT NULL, claimed_at REAL NOT NULL,
        PRIMARY KEY (job, tick))""",
    """CREATE TABLE IF NOT EXISTS windows (
        key TEXT NOT NULL, win INTEGER NOT NULL, hits INTEGER NOT NULL,
        expires_at REAL NOT NULL, PRIMARY KEY (key, win))""",
    """CREATE TABLE IF NOT EXISTS buckets (
        key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS totals (
        queue TEXT PRIMARY KEY, processed INTEGER NOT NULL, failed INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS workers (
        id TEXT PRIMARY KEY, expires_at REAL NOT NULL, info BLOB NOT NULL)""",
    # Keys a composite's transport cannot hold (unique/idempotency keys of RabbitMQ messages).
    # Apart from ``idempotency`` and ``jobs.unique_key`` so they never collide with this
    # backend's own keys. expires_at NULL: held until released.
    """CREATE TABLE IF NOT EXISTS claims (
        key TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL)""",
    # Task results / status records, and cancel requests for running tasks (see results.py).
    """CREATE TABLE IF NOT EXISTS results (
        id TEXT PRIMARY KEY, expires_at REAL NOT NULL, record BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cancels (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)""",
)

#: Every table holding data; ``wipe`` empties them all (meta keeps the schema version).
DATA_TABLES = (
    "jobs", "dead", "idempotency", "bindings", "ticks", "windows", "buckets", "totals", "workers",
    "claims", "results", "cancels",
)


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


def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (we issue BEGIN IMMEDIATE ourselves) with WAL on.

    Must be called on the thread that will own the connection.
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
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute("PRAGMA temp_store = MEMORY")
        ensure_schema(con, path)
    except sqlite3.Error as exc:
        con.close()
        raise translate(exc, path, opening=True) from exc
    except BaseException:
        con.close()
        raise
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


def ensure_schema(con: sqlite3.Connection, path: str) -> None:
    """Create every table if missing and check the stored schema version."""
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            for statement in _DDL:
                con.execute(statement)
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise ConfigError(
                    f"sqlite database {path!r} has schema version {row[0]}, newer than this "
                    f"workhive understands ({SCHEMA_VERSION}); upgrade workhive"
                )
            elif int(row[0]) < SCHEMA_VERSION:  # the DDL above just added what it lacked
                con.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise translate(exc, path, opening=True) from exc


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
