"""The floor to compare the SQLite backend against: a hand-written queue with no framework.

``raw_drain_per_s`` inserts ``n`` rows of envelope-sized bodies in one transaction, then times
only the drain: claim a batch (``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE``) and delete
it, batch after batch, with the same pragmas and batch size the backend uses. Anything the
backend does on top of this loop (lease tokens, priorities, stats) shows up as the ratio.
With ``work="redis-incr"`` each claimed batch is handled by one Redis ``INCR`` per row,
pipelined in one round trip, before it is deleted.

Run directly: ``python -m benchmarks.raw_sqlite [n]``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time

from benchmarks._work import SyncWork, counted

BATCH = 100  # the batch size the backend benchmark fetches
BODY = b"x" * 100  # about the size of an encoded no-op envelope


def raw_drain_per_s(path: str, n: int, batch: int = BATCH, work: str = "noop") -> float:
    """Messages per second moved by claim+delete over a pre-filled table at ``path``."""
    con = sqlite3.connect(path, isolation_level=None)
    handler = SyncWork(work)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA busy_timeout=5000")
        con.execute("DROP TABLE IF EXISTS raw_jobs")
        con.execute(
            "CREATE TABLE raw_jobs (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL,"
            " available_at REAL NOT NULL, body BLOB NOT NULL)"
        )
        con.execute("CREATE INDEX raw_jobs_ready ON raw_jobs (queue, available_at)")
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT INTO raw_jobs (queue, available_at, body) VALUES ('default', 0, ?)",
            ((BODY,) for _ in range(n)),
        )
        con.execute("COMMIT")
        claim = (
            "UPDATE raw_jobs SET available_at = ? WHERE seq IN (SELECT seq FROM raw_jobs"
            " WHERE queue = 'default' AND available_at <= ? ORDER BY available_at LIMIT ?)"
            " RETURNING seq, body"
        )
        done = 0
        start = time.perf_counter()
        while True:
            now = time.time()
            con.execute("BEGIN IMMEDIATE")
            rows = con.execute(claim, (now + 60, now, batch)).fetchall()
            con.execute("COMMIT")
            if not rows:
                break
            handler.run(len(rows))
            con.execute("BEGIN IMMEDIATE")
            con.executemany("DELETE FROM raw_jobs WHERE seq = ?", ((r[0],) for r in rows))
            con.execute("COMMIT")
            done += len(rows)
        elapsed = time.perf_counter() - start
        con.execute("DROP TABLE raw_jobs")
        counted(work, handler.count(), n)
    finally:
        handler.close()
        con.close()
    assert done == n, (done, n)
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        rate = raw_drain_per_s(os.path.join(tmp, "raw.db"), n)
    print(f"raw sqlite drain: {rate:,.0f} msg/s (n={n}, batch={BATCH})")


if __name__ == "__main__":
    main()
