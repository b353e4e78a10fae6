"""The smaller capabilities of the SQLite store: cron ticks, rate-limit counters, inspection,
and the key claims a composite's transport (RabbitMQ) keeps here.

Split from ``store`` to keep modules short; same rules apply: called only from the
backend's single store thread, every write one ``BEGIN IMMEDIATE`` transaction, times from the
injected wall clock (shared across processes, unlike ``time.monotonic``).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec

from workhive.backend import QueueStats, WorkerInfo

logger = logging.getLogger(__name__)

_HOUSEKEEP_EVERY = 600.0  # seconds between sweeps of expired keys, claims, windows, ticks
_TICK_RETENTION = 7 * 86_400.0


class StoreExtras:
    """Connection ownership, the transaction helper, and cron / counters / inspection."""

    def __init__(self, con: sqlite3.Connection, clock: Callable[[], float], idem_ttl: float):
        self.con = con
        self.clock = clock
        self.idem_ttl = idem_ttl
        self._next_housekeeping = 0.0

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _housekeep(self, now: float) -> None:
        """Every few minutes, inside a write: drop expired idempotency keys, claims, rate
        windows, old cron ticks and long-dead workers. Run from enqueues and from the
        coordination writes, so a store used only for coordination (a composite's) is swept
        too."""
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + _HOUSEKEEP_EVERY
        con = self.con
        con.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
        con.execute("DELETE FROM claims WHERE expires_at <= ?", (now,))
        con.execute("DELETE FROM windows WHERE expires_at <= ?", (now,))
        con.execute("DELETE FROM ticks WHERE claimed_at <= ?", (now - _TICK_RETENTION,))
        con.execute("DELETE FROM workers WHERE expires_at <= ?", (now,))
        con.execute("DELETE FROM results WHERE expires_at <= ?", (now,))
        con.execute("DELETE FROM cancels WHERE expires_at <= ?", (now,))

    def claim_tick(self, job: str, tick: float) -> bool:
        with self._tx() as con:
            self._housekeep(self.clock())
            return con.execute(
                "INSERT OR IGNORE INTO ticks (job, tick, claimed_at) VALUES (?, ?, ?)",
                (job, tick, self.clock()),
            ).rowcount == 1

    def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """One upsert: insert, or take the row over only when its ttl ran out; the owner.

        The write transaction makes "is it free, then take it" atomic across processes; a
        holder re-claiming its own live key keeps it as it was (same as the memory backend).
        """
        now = self.clock()
        with self._tx() as con:
            self._housekeep(now)
            row = con.execute(
                "INSERT INTO claims (key, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at WHERE claims.expires_at <= ?"
                " RETURNING holder",
                (key, holder, None if ttl is None else now + ttl, now),
            ).fetchone()
            if row is not None:
                return holder
            owner = con.execute("SELECT holder FROM claims WHERE key = ?", (key,)).fetchone()
        return str(owner[0])

    def release_key(self, key: str, holder: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM claims WHERE key = ? AND holder = ?", (key, holder))

    def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        now = self.clock()
        window = int(now // period)
        retry_after = (window + 1) * period - now
        if limit <= 0:
            return False, retry_after
        with self._tx() as con:
            self._housekeep(now)
            row = con.execute(
                "INSERT INTO windows (key, win, hits, expires_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (key, win) DO UPDATE SET"
                " hits = CASE WHEN hits < '' THEN hits + 1 ELSE 1 END"  # text: corrupt, restart
                " WHERE hits < ? OR hits >= ''"
                " RETURNING hits",
                (key, window, (window + 1) * period, limit),
            ).fetchone()
        return (True, 0.0) if row is not None else (False, retry_after)

    def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        now = self.clock()
        with self._tx() as con:
            row = con.execute(
                "SELECT tokens, updated_at FROM buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens, last = (float(burst), now) if row is None else row
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in (tokens, last)):
                tokens, last = float(burst), now  # a corrupt bucket starts full again
            tokens = min(float(burst), tokens + max(now - last, 0.0) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            con.execute(
                "INSERT OR REPLACE INTO buckets (key, tokens, updated_at) VALUES (?, ?, ?)",
                (key, tokens, now),
            )
        return (True, 0.0) if allowed else (False, (1.0 - tokens) / rate)

    def stats(self) -> list[QueueStats]:
        now = self.clock()
        con = self.con
        by_queue: dict[str, QueueStats] = {}

        def get(q: object) -> QueueStats:  # a corrupt row must not break the whole listing
            name = q.decode(errors="replace") if isinstance(q, bytes) else str(q)
            return by_queue.setdefault(name, QueueStats(name))

        for q, ready, delayed, in_flight in con.execute(
            "SELECT queue, sum(available_at <= ?1), sum(token = 0 AND available_at > ?1),"
            " sum(token != 0 AND available_at > ?1) FROM jobs GROUP BY queue",
            (now,),
        ):
            stat = get(q)
            stat.ready, stat.delayed, stat.in_flight = ready or 0, delayed or 0, in_flight or 0
        for q, dead in con.execute("SELECT queue, count(*) FROM dead GROUP BY queue"):
            get(q).dead = dead
        for q, processed, failed in con.execute("SELECT queue, processed, failed FROM totals"):
            get(q).processed, get(q).failed = _count(processed), _count(failed)
        return sorted(by_queue.values(), key=lambda s: s.queue)

    def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        """Store ``info`` until ``ttl`` from now; drop records whose ttl ran out.

        A killed worker never calls :meth:`forget_worker`; its record goes when the ttl it
        advertised runs out (filtered by :meth:`workers` at once, deleted by the next
        heartbeat of any worker).
        """
        with self._tx() as con:
            con.execute("DELETE FROM workers WHERE expires_at <= ? AND id <> ?",
                        (self.clock(), info.id))
            con.execute(
                "INSERT OR REPLACE INTO workers (id, expires_at, info) VALUES (?, ?, ?)",
                (info.id, self.clock() + ttl, msgspec.json.encode(info)),
            )

    def workers(self) -> list[WorkerInfo]:
        rows = self.con.execute(
            "SELECT info FROM workers WHERE expires_at > ? ORDER BY id", (self.clock(),)
        ).fetchall()
        out = []
        for (info,) in rows:
            try:
                out.append(msgspec.json.decode(info, type=WorkerInfo))
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
                logger.error("sqlite: skipping a worker with a corrupt heartbeat %r", info)
        return out

    def forget_worker(self, worker_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM workers WHERE id = ?", (worker_id,))


def _count(value: object) -> int:
    """A stored total, or 0 when the row holds something that is not a number."""
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return int(value)
    return 0
