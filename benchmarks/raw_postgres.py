"""The baseline the ``postgres`` backend is measured against: asyncpg with no framework.

``raw_drain_per_s`` fills a scratch table with ``n`` ~100-byte messages, then times only the
drain: claim 100 rows (``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``),
then delete them by id, one statement each — the minimum a safe competing-consumer loop does.
No leases tokens, retries or priorities: it is the ceiling, not a competitor. With
``work="redis-incr"`` each claimed row is handled by one Redis ``INCR`` (a batch's rows
concurrently) before the batch is deleted.

``raw_enqueue_per_s`` is the producer's ceiling: one autocommit ``INSERT`` of one row per call,
sequentially, on one connection, into a scratch table shaped like the backend's ``jobs`` (same
columns and indexes, logged, so every call waits for its commit to reach the disk as an enqueue
does). :class:`RawEnqueue` runs it in rounds, so a benchmark can alternate it with the backend's
own per-call enqueue and both see the same load on a busy host.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from benchmarks._work import Work, counted

BATCH = 100
BODY = b"m" * 100
#: the backend's ``jobs`` table and indexes (``workhive.backends.postgres.sql``), by hand
JOBS = ("(seq bigserial PRIMARY KEY, id text NOT NULL, queue text NOT NULL, "
        "priority integer NOT NULL DEFAULT 0, available_at float8 NOT NULL DEFAULT 0, "
        "token bigint NOT NULL DEFAULT 0, unique_key text, body bytea NOT NULL)")


async def _drain(url: str, n: int, work: str) -> float:
    con = await asyncpg.connect(url)
    handler = Work(work)
    table = f"raw_jobs_{uuid.uuid4().hex[:10]}"
    try:
        await con.execute(f"CREATE UNLOGGED TABLE {table} (id bigserial PRIMARY KEY, "
                          "available_at double precision NOT NULL, body bytea NOT NULL)")
        await con.copy_records_to_table(table, records=[(0.0, BODY)] * n,
                                        columns=["available_at", "body"])
        claim = (f"UPDATE {table} SET available_at = $1 WHERE id IN (SELECT id FROM {table} "
                 "WHERE available_at <= $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) "
                 "RETURNING id, body")
        delete = f"DELETE FROM {table} WHERE id = ANY($1::bigint[])"
        done = 0
        start = time.perf_counter()
        while True:
            now = time.time()
            rows = await con.fetch(claim, now + 60, now, BATCH)
            if not rows:
                break
            if work != "noop":
                await asyncio.gather(*(handler() for _ in rows))
            await con.execute(delete, [r[0] for r in rows])
            done += len(rows)
        elapsed = time.perf_counter() - start
        await con.execute(f"DROP TABLE {table}")
        counted(work, await handler.count(), n)
    finally:
        await handler.aclose()
        await con.close()
    return done / elapsed


def raw_drain_per_s(url: str, n: int, work: str = "noop") -> float:
    """Messages per second moved by claim(SKIP LOCKED)+delete over a pre-filled table."""
    return asyncio.run(_drain(url, n, work))


class RawEnqueue:
    """A bare producer: one autocommit ``INSERT`` per call into a table shaped like ``jobs``."""

    def __init__(self, con: asyncpg.Connection, table: str) -> None:
        self._con = con
        self._table = table
        self._insert = (f"INSERT INTO {table} (id, queue, priority, available_at, body)"
                        " VALUES ($1, $2, $3, $4, $5)")

    @classmethod
    async def open(cls, url: str) -> RawEnqueue:
        con = await asyncpg.connect(url)
        table = f"raw_enqueue_{uuid.uuid4().hex[:10]}"
        try:
            await con.execute(f"CREATE TABLE {table} {JOBS}")
            await con.execute(f"CREATE INDEX ON {table} (queue, priority DESC, available_at, seq)")
            await con.execute(f"CREATE UNIQUE INDEX ON {table} (unique_key)"
                              " WHERE unique_key IS NOT NULL")
        except BaseException:
            await con.close()
            raise
        return cls(con, table)

    async def run(self, calls: int) -> float:
        """Insert ``calls`` rows, one statement each; the seconds it took."""
        start = time.perf_counter()
        for _ in range(calls):
            await self._con.execute(self._insert, uuid.uuid4().hex, "default", 0, 0.0, BODY)
        return time.perf_counter() - start

    async def close(self) -> None:
        try:
            await self._con.execute(f"DROP TABLE {self._table}")
        finally:
            await self._con.close()


async def _enqueue(url: str, n: int) -> float:
    raw = await RawEnqueue.open(url)
    try:
        await raw.run(min(n, 100))  # warm up: the prepared statement, the first pages
        return n / await raw.run(n)
    finally:
        await raw.close()


def raw_enqueue_per_s(url: str, n: int) -> float:
    """Rows per second stored by one autocommit ``INSERT`` per call, one call at a time."""
    return asyncio.run(_enqueue(url, n))
