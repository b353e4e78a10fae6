"""The blocking half of the SQLite backend: every SQL statement, run on one dedicated thread.

:class:`SQLiteStore` owns one connection and is only ever called from the backend's single
executor thread, so it needs no locks of its own. Every write is one ``BEGIN IMMEDIATE``
transaction: SQLite lets one writer in at a time across all processes on the file, which is what
makes a claim (select ready rows, stamp them with a lease) atomic, so two workers never hold the
same message. Batches (fetch up to ``limit``, settle many, enqueue many) are one transaction each
because the commit, not the row, is the expensive part.

Leases: a claim stamps rows with a random non-zero ``token`` and ``available_at = deadline``.
Receipts are ``(seq, token)``; every settle/extend matches both, so a worker whose lease ran
out and whose message was re-claimed settles nothing (the row carries the new token).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from workhive._envelope import Envelope, decode, encode, replay_copy
from workhive.backend import (
    DeadLetter,
    Delivery,
    EnqueueResult,
    Settlement,
    fan_out,
    topic_matches,
)
from workhive.backends.sqlite import schema
from workhive.backends.sqlite.extras import StoreExtras
from workhive.errors import SerializationError

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

Row = tuple[str, str, int, float, str | None, bytes]


class Handoff:
    """Hands a claimed batch from the store thread to a fetch that may have been cancelled.

    Whichever side comes second under the lock gives the rows back, so a worker cancelled
    mid-fetch (shutdown) never strands messages until their lease runs out.
    """

    __slots__ = ("cancelled", "delivered", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = False
        self.delivered = False


class SQLiteStore(StoreExtras):
    """Blocking queue operations on one connection; call from one thread only."""

    # -- core ---------------------------------------------------------------------------

    def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        rows = [_row(env) for env in envelopes]
        with self._tx():
            return self._insert(envelopes, rows, self.clock())

    def _insert(
        self, envelopes: Sequence[Envelope], rows: list[Row], now: float
    ) -> list[EnqueueResult]:
        """Insert in order; keyed envelopes one by one (dedupe), runs of plain ones batched."""
        con = self.con
        self._housekeep(now)
        results: list[EnqueueResult] = []
        plain: list[Row] = []
        for env, row in zip(envelopes, rows, strict=True):
            if env.idempotency_key is None and env.unique_key is None:
                plain.append(row)
                results.append(EnqueueResult(env.id))
                continue
            if plain:
                con.executemany(_INSERT, plain)
                plain = []
            results.append(self._insert_keyed(env, row, now))
        if plain:
            con.executemany(_INSERT, plain)
        return results

    def _insert_keyed(self, env: Envelope, row: Row, now: float) -> EnqueueResult:
        con = self.con
        key = env.idempotency_key
        if key is not None:
            seen = con.execute(
                "SELECT id, expires_at FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
            if seen is not None and seen[1] > now:
                return EnqueueResult(seen[0], duplicate=True)
            con.execute(
                "INSERT OR REPLACE INTO idempotency (key, id, expires_at) VALUES (?, ?, ?)",
                (key, env.id, now + self.idem_ttl),
            )
        if env.unique_key is None:
            con.execute(_INSERT, row)
            return EnqueueResult(env.id)
        if con.execute(_INSERT.replace("INSERT", "INSERT OR IGNORE", 1), row).rowcount:
            return EnqueueResult(env.id)
        holder = con.execute(
            "SELECT id FROM jobs WHERE unique_key = ?", (env.unique_key,)
        ).fetchone()
        return EnqueueResult(holder[0], duplicate=True)

    def claim(
        self, queues: Sequence[str], limit: int, lease: float, handoff: Handoff | None = None
    ) -> tuple[list[Delivery], float | None, int]:
        """Lease up to ``limit`` ready rows, queues in the given order.

        Returns ``(deliveries, next_due, data_version)``; when nothing was ready, ``next_due``
        is the earliest future ``available_at`` (an eta or a lease running out) and
        ``data_version`` the value to poll for other connections' commits.
        """
        now = self.clock()
        token = secrets.randbits(62) | 1
        deadline = now + lease
        out: list[Delivery] = []
        with self._tx() as con:
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
                self._bury_corrupt(con, queues, now)
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
                self.release(out)
                return [], None, 0
        return out, next_due, version

    @staticmethod
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

    def data_version(self) -> int:
        """Changes whenever another connection (any process) commits to the file."""
        return int(self.con.execute("PRAGMA data_version").fetchone()[0])

    def settle(self, settlements: Sequence[Settlement]) -> bool:
        """Apply a batch in one transaction; True if something became fetchable again."""
        now = self.clock()
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
        with self._tx() as con:
            for queue, params in queues.items():
                done = con.executemany(_ACK, params).rowcount
                if done:
                    totals.append((queue, done, 0))
            for queue, failed in self._fail(con, by_action.get("retry"), by_action.get("dead")):
                totals.append((queue, 0, failed))
                requeued = True
            if "release" in by_action:
                requeued = con.executemany(_RELEASE, by_action["release"]).rowcount > 0 or requeued
            if totals:
                con.executemany(_TOTALS, totals)
        return requeued

    @staticmethod
    def _fail(
        con: sqlite3.Connection,
        retries: list[tuple[Any, ...]] | None,
        deaths: list[tuple[Any, ...]] | None,
    ) -> Iterator[tuple[str, int]]:
        """Retry and bury rows one by one: failures are rare, and totals need each row's queue."""
        for body, eta, seq, token in retries or ():
            row = con.execute(
                _RETRY + " RETURNING queue", (body, eta, seq, token)
            ).fetchone()
            if row is not None:
                yield row[0], 1
        for body, reason, now, seq, token in deaths or ():
            if con.execute(_BURY, (body, reason, now, seq, token)).rowcount:
                queue = con.execute(
                    "DELETE FROM jobs WHERE seq = ? RETURNING queue", (seq,)
                ).fetchone()[0]
                yield queue, 1

    def release(self, deliveries: Sequence[Delivery]) -> None:
        with self._tx() as con:
            con.executemany(_RELEASE, [d.receipt for d in deliveries])

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        deadline = self.clock() + lease
        with self._tx() as con:
            con.executemany(
                "UPDATE jobs SET available_at = ? WHERE seq = ? AND token = ?",
                [(deadline, *d.receipt) for d in deliveries],
            )

    # -- events, cron, counters ------------------------------------------------------------

    def bind(self, pattern: str, group: str) -> None:
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO bindings (pattern, grp) VALUES (?, ?)",
                        (pattern, group))

    def publish(self, envelope: Envelope) -> int:
        with self._tx() as con:
            groups = [
                g for p, g in con.execute("SELECT pattern, grp FROM bindings")
                if _binding_ok(p, g) and topic_matches(p, envelope.name)
            ]
            copies = fan_out(envelope, groups)
            self._insert(copies, [_row(c) for c in copies], self.clock())
        return len(copies)

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self, queue: str | None, limit: int, offset: int) -> list[DeadLetter]:
        where, params = _dead_filter(None, queue)
        rows = self.con.execute(
            f"SELECT id, queue, body, reason, failed_at FROM dead {where}"
            " ORDER BY seq LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store letters a composite's transport dead-lettered; an id already kept stays as it
        is (a crash between keep and ack keeps the same letter twice)."""
        with self._tx() as con:
            con.executemany(
                "INSERT OR IGNORE INTO dead (id, queue, body, reason, failed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(d.id, d.queue, d.body, d.reason, d.failed_at) for d in letters],
            )

    def replay_dead(self, ids: Sequence[str] | None, queue: str | None) -> int:
        """Re-enqueue dead letters as fresh envelopes (new id, attempt 0), like memory.py.

        A dead letter whose bytes are not an envelope cannot be rebuilt: it stays in the
        dead-letter queue and is logged, rather than being lost or failing the whole replay.
        """
        where, params = _dead_filter(ids, queue)
        with self._tx() as con:
            replayed: list[Envelope] = []
            gone: list[tuple[int]] = []
            for seq, dead_id, body in con.execute(
                f"SELECT seq, id, body FROM dead {where} ORDER BY seq", params
            ).fetchall():
                try:
                    env = decode(body)
                except SerializationError as exc:
                    logger.warning("cannot replay dead letter %s: %s", dead_id, exc)
                    continue
                replayed.append(replay_copy(env))
                gone.append((seq,))
            con.executemany("DELETE FROM dead WHERE seq = ?", gone)
            self._insert(replayed, [_row(e) for e in replayed], self.clock())
        return len(replayed)

    def purge_dead(self, ids: Sequence[str] | None, queue: str | None) -> int:
        where, params = _dead_filter(ids, queue)
        with self._tx() as con:
            return con.execute(f"DELETE FROM dead {where}", params).rowcount

    def wipe(self) -> None:
        with self._tx() as con:
            for table in schema.DATA_TABLES:
                con.execute(f"DELETE FROM {table}")


def _row(env: Envelope) -> Row:
    return (env.id, env.queue, env.priority, env.eta or 0.0, env.unique_key, encode(env))


def _dead_filter(ids: Sequence[str] | None, queue: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if ids is not None:
        clauses.append("id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(ids)))
    if queue is not None:
        clauses.append("queue = ?")
        params.append(queue)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _binding_ok(pattern: object, group: object) -> bool:
    """False (and an error log) for a bindings row that is not two non-empty strings."""
    if isinstance(pattern, str) and isinstance(group, str) and pattern and group:
        return True
    logger.error("sqlite: ignoring a corrupt event binding %r -> %r", pattern, group)
    return False
