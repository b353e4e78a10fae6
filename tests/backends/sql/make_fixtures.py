"""Write the SQLite file and the PostgreSQL dump of one workhive release, as test fixtures.

A store written by an older release must open with the current code and lose nothing, so the
tests in ``test_previous_release.py`` open stores that a release really wrote. This script
writes them through that release's public backend API. Run it with the release to capture on
the path (its source checkout, never this working tree's ``src``), from any directory::

    PYTHONPATH=/path/to/release/src .venv/bin/python tests/backends/sql/make_fixtures.py

It writes ``data/sqlite-v<N>.db`` and ``data/postgres-v<N>.sql`` next to itself, ``N`` being
the layout version the release stamps in ``meta``. The PostgreSQL store is written into a fresh
schema of ``$WORKHIVE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
dumped with ``pg_dump`` (which must be on the PATH) and dropped; in the dump the schema name is
replaced by ``__SCHEMA__`` so a test can load it under a name of its own.

What the stores hold is defined here once (the constants below) and the tests compare with it.
Nothing in a fixture may expire while it sits in the repository: every time-to-live is about a
century, the history bucket and the cron tick lie in 2100, and the claim time of the tick (which
the backend takes from its own clock and sweeps after a week) is moved to 2100 after writing.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import asyncpg

from workhive import Envelope
from workhive.backend import Settlement, WorkerInfo
from workhive.backends.postgres import PostgresBackend
from workhive.backends.sqlite import SQLiteBackend
from workhive.history import BINS, Bucket
from workhive.results import TaskStatus, encode_status

DATA = Path(__file__).parent / "data"
PLACEHOLDER = "__SCHEMA__"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

#: 2100-01-01T00:00:00Z: every time that must stay in the future
FAR = 4_102_444_800.0
#: time-to-live (s) of keys, results and heartbeats: about a century
KEEP = 3_000_000_000.0
#: ``enqueued_at`` of every envelope, fixed so that tests compare whole envelopes
ENQUEUED_AT = 1_750_000_000.0


def _task(task_id: str, queue: str, payload: object, **fields: object) -> Envelope:
    return Envelope(id=task_id, name=f"app:{queue}", payload=payload, queue=queue,
                    enqueued_at=ENQUEUED_AT, **fields)


#: ready on queue "default", in the order a fetch returns them (highest priority first)
READY = (
    _task("ready-high", "default", {"n": 1, "text": "first"}, priority=9),
    _task("ready-mid", "default", {"n": 2, "tags": ["a", "b"]}, priority=5),
    _task("ready-low", "default", {"n": 3}, priority=1),
)
DELAYED = _task("delayed", "default", {"n": 4}, eta=FAR)
UNIQUE = _task("unique-holder", "keyed", "report", unique_key="report:2024-06")
IDEMPOTENT = _task("idempotent-holder", "keyed", "charge", idempotency_key="order-42")
#: run and acknowledged on queue "mail" (a processed total), then its result stored
ACKED = _task("mail-sent", "mail", {"to": "a@example.com"})
#: run on queue "mail" and settled dead (a failed total and a dead letter)
BOUNCED = _task("mail-bounced", "mail", {"to": "b@example.com"}, max_retries=0)
DEAD_REASON = "SMTP 550: mailbox unavailable"

BINDING = ("order.*", "billing")
RESULT = encode_status(TaskStatus(id=ACKED.id, state="succeeded", value={"delivered": True},
                                  attempt=1, updated_at=ENQUEUED_AT))
TICK = ("nightly-report", FAR)
WORKER = WorkerInfo(id="worker-1", host="fixture-host", pid=4242, queues=["default", "mail"],
                    concurrency=4, started_at=ENQUEUED_AT, seen_at=ENQUEUED_AT,
                    extra={"version": "fixture"})
HISTORY = Bucket(minute=int(FAR), queue="mail", task=ACKED.name, succeeded=1, dead=1,
                 run_ms=180, wait_ms=40, hist=[0, 0, 0, 0, 1, 1] + [0] * (BINS - 6))
PAUSED = "reports"

Store = SQLiteBackend | PostgresBackend


async def fill(backend: Store) -> None:
    """Write the fixture's content through the public backend API."""
    await backend.enqueue([*READY, DELAYED, UNIQUE, IDEMPOTENT])
    await backend.enqueue([ACKED])
    (delivery,) = await backend.fetch(["mail"], 1, lease=60, wait=0)
    await backend.settle([Settlement(delivery, "ack", envelope=ACKED)])
    await backend.enqueue([BOUNCED])
    (delivery,) = await backend.fetch(["mail"], 1, lease=60, wait=0)
    await backend.settle([Settlement(delivery, "dead", reason=DEAD_REASON, envelope=BOUNCED)])
    await backend.bind(*BINDING)
    await backend.store_result(ACKED.id, RESULT, KEEP)
    if not await backend.claim_tick(*TICK):
        raise RuntimeError(f"the cron tick {TICK} was already claimed in a fresh store")
    await backend.heartbeat(WORKER, KEEP)
    await backend.record_history([HISTORY])
    await backend.set_paused(PAUSED, True)


def write_sqlite() -> Path:
    """Write the SQLite store and leave it as one file (no ``-wal``/``-shm`` beside it)."""
    path = DATA / "sqlite-new.db"
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    asyncio.run(_fill_sqlite(path))
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("UPDATE ticks SET claimed_at = ?", (FAR,))
        (version,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode = DELETE")
        con.execute("VACUUM")
    finally:
        con.close()
    return path.replace(DATA / f"sqlite-v{version}.db")


async def _fill_sqlite(path: Path) -> None:
    async with SQLiteBackend.from_url(f"sqlite:///{path}", idempotency_ttl=KEEP) as backend:
        await fill(backend)


def write_postgres() -> Path:
    """Write the PostgreSQL store in a fresh schema, dump it with a placeholder, drop it."""
    url = os.environ.get("WORKHIVE_TEST_POSTGRES_URL", DEFAULT_PG_URL)
    schema = f"whfixture_{uuid.uuid4().hex[:12]}"
    try:
        version = asyncio.run(_fill_postgres(url, schema))
        # --inserts: asyncpg runs a script of statements, not psql's COPY ... FROM stdin
        dump = subprocess.run(
            ["pg_dump", f"--dbname={url}", f"--schema={schema}", "--no-owner",
             "--no-privileges", "--inserts"],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        asyncio.run(_execute(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    # \restrict / \unrestrict are psql meta-commands that newer pg_dump versions emit
    lines = [line for line in dump.splitlines()
             if not line.startswith(("\\restrict", "\\unrestrict"))]
    out = DATA / f"postgres-v{version}.sql"
    out.write_text("\n".join(lines).replace(schema, PLACEHOLDER) + "\n")
    return out


async def _fill_postgres(url: str, schema: str) -> str:
    """Fill the schema and return the layout version the release stamped in it."""
    async with PostgresBackend.from_url(url, schema=schema, idempotency_ttl=KEEP) as backend:
        await fill(backend)
    await _execute(url, f"UPDATE {schema}.ticks SET claimed_at = {FAR}")
    con = await asyncpg.connect(url)
    try:
        return str(await con.fetchval(
            f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'"))
    finally:
        await con.close()


async def _execute(url: str, sql: str) -> None:
    con = await asyncpg.connect(url)
    try:
        await con.execute(sql)
    finally:
        await con.close()


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for path in (write_sqlite(), write_postgres()):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
