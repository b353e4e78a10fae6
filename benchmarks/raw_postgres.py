"""The baseline the ``postgres`` backend is measured against: asyncpg with no framework.

``raw_drain_per_s`` fills a scratch table with ``n`` ~100-byte messages, then times only the
drain: claim 100 rows (``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``),
then delete them by id, one statement each — the minimum a safe competing-consumer loop does.
No leases tokens, retries or priorities: it is the ceiling, not a competitor. With
``work="redis-incr"`` each claimed row is handled by one Redis ``INCR`` (a batch's rows
concurrently) before the batch is deleted.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from benchmarks._work import Work, counted

BATCH = 100
BODY = b"m" * 100


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
