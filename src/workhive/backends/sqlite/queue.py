"""The SQLite backend's hot path: enqueue, claim, settle, release and extend.

Everything else (events, dead letters, stats, results...) is the shared SQL engine's
(:mod:`workhive.backends._sql`). These stay here because SQLite does them its own way: one
writer at a time across all processes, so each batch is one ``BEGIN IMMEDIATE`` transaction
(the commit, not the row, is the expensive part) and ``executemany`` beats clever SQL. The
functions run on the backend's connection thread.

Leases: a claim stamps rows with a random non-zero ``token`` and ``available_at = deadline``.
Receipts are ``(seq, token)``; every settle/extend matches both, so a worker whose lease ran
out and whose message was re-claimed settles nothing (the row carries the new token).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from workhive._envelope import Envelope, encode
from workhive.backend import Delivery, EnqueueResult, Settlement
from workhive.backends._sql.engine import Op, count, many, row

logger = logging.getLogger(__name__)

_READY = (
    "SELECT seq, CAST(body AS BLOB) FROM jobs WHERE queue = ? AND available_at <= ?"
    " ORDER BY priority DESC, available_at, seq LIMIT ?"
)
# Stamps exactly the rows _READY returned: same parameters, same total order (seq breaks
# ties), inside the same write transaction. One statement beats an executemany per row.
_LEASE = (
    "UPDATE jobs SET available_at = ?, token = ? WHERE seq IN (SELECT seq FROM jobs"
    " WHERE queue = ? AND available_at <= ? ORDER BY priority DESC, available_at, seq LIMIT ?)"
)
_INSERT = (
    "INSERT INTO jobs (id, queue, priority, available_at, unique_key, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_ACK = "DELETE FROM jobs WHERE seq = ? AND token = ?"
_RETRY = (
    "UPDATE jobs SET body = coalesce(?, body), available_at = ?, token = 0"
    " WHERE seq = ? AND token = ?"
)
_RELEASE = "UPDATE jobs SET available_at = 0, token = 0 WHERE seq = ? AND token = ?"
_BURY = (
    "INSERT OR REPLACE INTO dead (id, queue, body, reason, failed_at)"
    " SELECT id, queue, coalesce(?, body), ?, ? FROM jobs WHERE seq = ? AND token = ?"
)
# SQLite keeps any value in any column. Text and blobs sort after every number, so a row whose
# priority, available_at or token is not a number is never ready and would sit forever; these
# ranges find such rows through the jobs_ready index (see _bury_corrupt).
_CORRUPT = (
    "SELECT seq FROM jobs WHERE queue = ?1 AND (priority >= '' OR available_at >= ''"
    " OR token >= '') LIMIT 100"
)
_BURY_CORRUPT = (
    "INSERT OR REPLACE INTO dead (id, queue, body, reason, failed_at)"
    " SELECT id, queue, CAST(body AS BLOB), ?, ? FROM jobs WHERE seq = ?"
)
_TOTALS = (
    "INSERT INTO totals (queue, processed, failed) VALUES (?, ?, ?) ON CONFLICT (queue)"
    " DO UPDATE SET processed = processed + excluded.processed, failed = failed + excluded.failed"
)

#: the engine's own tables: totals are one row per queue, updated in place (one writer at a time
#: makes the hot row harmless here)
TABLES = (
    # every claim reads this index in order, no sort (rowid, which is ``seq``, breaks ties)
    "CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority DESC, available_at)",
    """CREATE TABLE IF NOT EXISTS totals (
        queue text PRIMARY KEY, processed bigint NOT NULL, failed bigint NOT NULL)""",
)

Row = tuple[str, str, int, float, str | None, bytes]


@contextmanager
def write(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: SQLite lets one writer in at a time across all processes."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class Handoff:
    """Hands a claimed batch from the connection thread to a fetch that may have been cancelled.

    Whichever side comes second under the lock gives the rows back, so a worker cancelled
    mid-fetch (shutdown) never strands messages until their lease runs out.
    """

    __slots__ = ("cancelled", "delivered", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = False
        self.delivered = False


def insert(envelopes: Sequence[Envelope], now: float, idem_ttl: float) -> Op[list[EnqueueResult]]:
    """Insert in order; keyed envelopes one by one (dedupe), runs of plain ones batched."""
    results: list[EnqueueResult] = []
    plain: list[Row] = []
    for env in envelopes:
        if env.idempotency_key is None and env.unique_key is None:
            plain.append(_row(env))
            results.append(EnqueueResult(env.id))
            continue
        if plain:
            yield many(_INSERT, plain)
            plain = []
        results.append((yield from _insert_keyed(env, now, idem_ttl)))
    if plain:
        yield many(_INSERT, plain)
    return results


def _insert_keyed(env: Envelope, now: float, idem_ttl: float) -> Op[EnqueueResult]:
    key = env.idempotency_key
    if key is not None:
        seen = yield row("SELECT id, expires_at FROM idempotency WHERE key = ?", key)
        if seen is not None and seen[1] > now:
            return EnqueueResult(seen[0], duplicate=True)
        yield count("INSERT OR REPLACE INTO idempotency (key, id, expires_at) VALUES (?, ?, ?)",
                    key, env.id, now + idem_ttl)
    if env.unique_key is None:
        yield count(_INSERT, *_row(env))
        return EnqueueResult(env.id)
    if (yield count(_INSERT.replace("INSERT", "INSERT OR IGNORE", 1), *_row(env))):
        return EnqueueResult(env.id)
    holder = yield row("SELECT id FROM jobs WHERE unique_key = ?", env.unique_key)
    return EnqueueResult(holder[0], duplicate=True)


def claim(
    con: sqlite3.Connection, now: float, queues: Sequence[str], limit: int, lease: float,
    handoff: Handoff | None = None,
) -> tuple[list[Delivery], float | None, int]:
    """Lease up to ``limit`` ready rows, queues in the given order.

    Returns ``(deliveries, next_due, data_version)``; when nothing was ready, ``next_due``
    is the earliest future ``available_at`` (an eta or a lease running out) and
    ``data_version`` the value to poll for other connections' commits.
    """
    token = secrets.randbits(62) | 1
    deadline = now + lease
    out: list[Delivery] = []
    with write(con):
        for queue in queues:
            want = limit - len(out)
            rows = con.execute(_READY, (queue, now, want)).fetchall()
            if rows:
                con.execute(_LEASE, (deadline, token, queue, now, want))
                out.extend([Delivery(queue, body, (seq, token)) for seq, body in rows])
                if len(out) >= limit:
                    break
        if out:
            next_due, version = None, 0
        else:
            _bury_corrupt(con, queues, now)
            marks = ",".join("?" * len(queues))
            next_due = con.execute(
                f"SELECT min(available_at) FROM jobs WHERE queue IN ({marks})"
                " AND available_at < ''", tuple(queues)
            ).fetchone()[0]
            version = con.execute("PRAGMA data_version").fetchone()[0]
    if handoff is not None and out:
        with handoff.lock:
            cancelled = handoff.cancelled
            handoff.delivered = not cancelled
        if cancelled:
            release(con, out)
            return [], None, 0
    return out, next_due, version


def _bury_corrupt(con: sqlite3.Connection, queues: Sequence[str], now: float) -> None:
    """Move rows that can never become ready (see ``_CORRUPT``) to the dead-letter table.

    Run only when a claim found nothing, so the busy path pays nothing for it.
    """
    reason = "corrupt stored row: priority, available_at or token is not a number"
    for queue in queues:
        for (seq,) in con.execute(_CORRUPT, (queue,)).fetchall():
            con.execute(_BURY_CORRUPT, (reason, now, seq))
            con.execute("DELETE FROM jobs WHERE seq = ?", (seq,))
            con.execute(_TOTALS, (queue, 0, 1))
            logger.error("sqlite: a job row (seq %d) of queue %r was corrupt and went to "
                         "the dead-letter queue: %s", seq, queue, reason)


def data_version(con: sqlite3.Connection) -> int:
    """Changes whenever another connection (any process) commits to the file."""
    return int(con.execute("PRAGMA data_version").fetchone()[0])


def settle(con: sqlite3.Connection, now: float, settlements: Sequence[Settlement]) -> bool:
    """Apply a batch in one transaction; True if something became fetchable again."""
    by_action: dict[str, list[tuple[Any, ...]]] = {}
    queues: dict[str, list[tuple[Any, ...]]] = {}
    for s in settlements:
        seq, token = s.delivery.receipt
        act = s.action
        if act == "ack":
            queues.setdefault(s.delivery.queue, []).append((seq, token))
        elif act == "retry":
            by_action.setdefault(act, []).append((s.body, s.eta, seq, token))
        elif act == "dead":
            by_action.setdefault(act, []).append((s.body, s.reason, now, seq, token))
        else:
            by_action.setdefault(act, []).append((seq, token))
    totals: list[tuple[str, int, int]] = []
    requeued = False
    with write(con):
        for queue, params in queues.items():
            done = con.executemany(_ACK, params).rowcount
            if done:
                totals.append((queue, done, 0))
        for queue, failed in _fail(con, by_action.get("retry"), by_action.get("dead")):
            totals.append((queue, 0, failed))
            requeued = True
        if "release" in by_action:
            requeued = con.executemany(_RELEASE, by_action["release"]).rowcount > 0 or requeued
        if totals:
            con.executemany(_TOTALS, totals)
    return requeued


def _fail(
    con: sqlite3.Connection,
    retries: list[tuple[Any, ...]] | None,
    deaths: list[tuple[Any, ...]] | None,
) -> Iterator[tuple[str, int]]:
    """Retry and bury rows one by one: failures are rare, and totals need each row's queue."""
    for body, eta, seq, token in retries or ():
        moved = con.execute(_RETRY + " RETURNING queue", (body, eta, seq, token)).fetchone()
        if moved is not None:
            yield moved[0], 1
    for body, reason, now, seq, token in deaths or ():
        if con.execute(_BURY, (body, reason, now, seq, token)).rowcount:
            queue = con.execute(
                "DELETE FROM jobs WHERE seq = ? RETURNING queue", (seq,)
            ).fetchone()[0]
            yield queue, 1


def release(con: sqlite3.Connection, deliveries: Sequence[Delivery]) -> None:
    with write(con):
        con.executemany(_RELEASE, [d.receipt for d in deliveries])


def extend(con: sqlite3.Connection, deadline: float, deliveries: Sequence[Delivery]) -> None:
    with write(con):
        con.executemany("UPDATE jobs SET available_at = ? WHERE seq = ? AND token = ?",
                        [(deadline, *d.receipt) for d in deliveries])


def wipe(con: sqlite3.Connection, tables: Sequence[str]) -> None:
    with write(con):
        for table in tables:
            con.execute(f"DELETE FROM {table}")


def _row(env: Envelope) -> Row:
    return (env.id, env.queue, env.priority, env.eta or 0.0, env.unique_key, encode(env))

