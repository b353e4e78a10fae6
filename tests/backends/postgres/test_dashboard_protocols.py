"""The dashboard's protocols on the postgres backend: task history (adds, ``since``, pruning),
paused queues, and the task browser (listing by state with totals, find, run now), on the real
server, through PgBouncer, and on a schema that predates their tables.

The browser must list exactly what the SQLite backend lists, so one test runs the same moves on
both and compares. The dashboard scenarios of tests/dashboard (browser, charts, pause) are
imported under names pytest does not collect, so postgres passes the same checks as memory,
sqlite and redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests._services import require_service
from tests.backends.postgres._clock import db_now, until_db_clock_passes
from tests.backends.postgres._pgbouncer import PgBouncer
from tests.dashboard.conftest import build_hive, client_for, populate
from tests.dashboard.test_features import (
    test_history_feeds_the_charts_and_the_task_table as charts_scenario,
)
from tests.dashboard.test_features import (
    test_pause_and_resume_through_the_api as pause_api_scenario,
)
from tests.dashboard.test_features import (
    test_task_browser_lists_searches_and_pages as browser_scenario,
)
from tests.dashboard.test_history import test_history_adds_what_workers_flush as history_scenario
from tests.dashboard.test_history import test_pauses_are_shared_state as pause_scenario
from workhive import Hive
from workhive._envelope import Envelope, decode, make_envelope
from workhive.backends._sql import browse
from workhive.backends._sql.dialect import POSTGRES_NOW as NOW
from workhive.backends._sql.engine import run_async
from workhive.backends.postgres import PostgresBackend
from workhive.backends.sqlite import SQLiteBackend
from workhive.browse import STATES, SupportsBrowse, browser_of
from workhive.errors import ValidationError
from workhive.history import MINUTE, RETENTION, Bucket, SupportsHistory, history_of
from workhive.pauses import SupportsPause, pauses_of

pytestmark = pytest.mark.postgres
Make = Callable[..., PostgresBackend]


def test_declares_the_dashboard_protocols() -> None:
    backend = PostgresBackend.from_url("postgresql://app@db.invalid/app")  # never connects
    assert isinstance(backend, SupportsHistory) and history_of(backend) is backend
    assert isinstance(backend, SupportsPause) and pauses_of(backend) is backend
    assert isinstance(backend, SupportsBrowse) and browser_of(backend) is backend


# -- history ------------------------------------------------------------------------------


async def test_history_adds_what_workers_flush(backend: PostgresBackend) -> None:
    await history_scenario(Hive(backend))


async def test_history_since_is_exact_and_counters_are_64_bit(backend: PostgresBackend) -> None:
    minute = int(time.time() // MINUTE * MINUTE)
    huge = Bucket(minute, "q", "slow", succeeded=1, run_ms=2**40, wait_ms=2**41)
    huge.hist[-1] = 3
    await backend.record_history([huge, Bucket(minute - MINUTE, "q", "slow", dead=1)])
    await backend.record_history([])  # nothing to write, no statement
    (got,) = await backend.history(minute - MINUTE + 0.5)  # the earlier minute starts before
    assert (got.minute, got.run_ms, got.wait_ms, got.hist[-1]) == (minute, 2**40, 2**41, 3)
    assert [b.minute for b in await backend.history(minute - MINUTE)] == [minute - MINUTE,
                                                                           minute]
    assert await backend.history(minute + 1) == []


async def test_concurrent_flushes_of_the_same_minutes_add_up(make: Make) -> None:
    """Workers flushing the same keys in opposite orders neither deadlock nor lose counts."""
    workers = [make() for _ in range(3)]
    minute = int(time.time() // MINUTE * MINUTE)
    keys = [(minute - m * MINUTE, f"task{t}") for m in range(5) for t in range(4)]

    async def flush(worker: PostgresBackend, order: int) -> None:
        for _ in range(15):
            await worker.record_history([Bucket(m, "q", t, succeeded=1, run_ms=2)
                                         for m, t in keys[::order]])

    await asyncio.gather(*(flush(w, 1 if i % 2 else -1) for i, w in enumerate(workers)))
    got = await workers[0].history(0)
    assert len(got) == len(keys)
    assert {(b.succeeded, b.run_ms) for b in got} == {(45, 90)}


async def test_housekeeping_drops_history_older_than_retention(
    backend: PostgresBackend, pg_url: str
) -> None:
    now = int(await db_now(pg_url) // MINUTE * MINUTE)
    old = now - RETENTION - 2 * MINUTE
    await backend.record_history([Bucket(old, "q", "t", succeeded=1),
                                  Bucket(now, "q", "t", succeeded=1)])
    backend._next_housekeeping = 0.0
    await backend._housekeep()
    assert [b.minute for b in await backend.history(0)] == [now]


# -- pauses -------------------------------------------------------------------------------


async def test_pauses_are_shared_by_every_client(make: Make) -> None:
    dashboard, worker = make(), make()
    await pause_scenario(Hive(dashboard))
    assert await worker.paused_queues() == {"a"}
    await worker.set_paused("a", False)
    assert await dashboard.paused_queues() == set()
    for bad in ("", None, 3):
        with pytest.raises(ValidationError, match="queue to pause or resume"):
            await dashboard.set_paused(bad, True)  # type: ignore[arg-type]


# -- browse -------------------------------------------------------------------------------


async def _listing(backend: Any) -> dict[str, Any]:
    """What the browser shows of queue "q": every state in full and one middle page, and
    each task's state by id (times left out: the two backends keep different clocks)."""
    out: dict[str, Any] = {}
    for state in STATES:
        rows, total = await backend.browse("q", state, 100, 0)
        page, page_total = await backend.browse("q", state, 2, 1)
        out[state] = ([r.id for r in rows], total, [r.id for r in page], page_total)
        for r in rows:
            found = await backend.find_task("q", r.id)
            assert found is not None and (found.state, found.body) == (state, r.body)
            assert (r.at == 0) == (state == "ready") and found.at == r.at
    return out


async def test_lists_exactly_what_sqlite_lists(backend: PostgresBackend, pg_url: str,
                                              tmp_path: Path) -> None:
    sqlite = SQLiteBackend.from_url(f"sqlite:///{tmp_path / 'same.db'}")
    now = time.time()
    ready = [make_envelope("t", i, queue="q", priority=i % 3 - 1) for i in range(7)]
    later = [make_envelope("t", "later", queue="q", eta=now + 7200),
             make_envelope("t", "sooner", queue="q", eta=now + 3600, priority=2)]
    elsewhere = make_envelope("t", "other queue", queue="other")
    try:
        leases_end = 0.0
        for b in (backend, sqlite):
            await b.enqueue([*ready, *later, elsewhere])
            assert len(await b.fetch(["q"], 2, lease=600, wait=0)) == 2  # in flight
            assert len(await b.fetch(["q"], 1, lease=0.3, wait=0)) == 1  # ready again soon
            leases_end = max(leases_end, time.time() + 0.3)
        await until_db_clock_passes(pg_url, leases_end)
        while time.time() <= leases_end:  # noqa: ASYNC110 - the sqlite lease is on this clock
            await asyncio.sleep(0.05)
        shown = await _listing(backend)
        assert shown == await _listing(sqlite)
        assert [len(shown[s][0]) for s in STATES] == [5, 2, 2]  # ready, delayed, in flight
        for b in (backend, sqlite):
            assert await b.run_now("q", later[0].id)
        assert await _listing(backend) == await _listing(sqlite)
    finally:
        await sqlite.close()


async def test_find_and_run_now_follow_the_database_clock(backend: PostgresBackend,
                                                          pg_url: str) -> None:
    leased, ready = make_envelope("t", "leased"), make_envelope("t", "ready")
    later = make_envelope("t", "later", eta=time.time() + 3600, priority=2)
    await backend.enqueue([leased])
    (held,) = await backend.fetch(["default"], 1, lease=600, wait=0)
    await backend.enqueue([ready, later])

    running = await backend.find_task("default", leased.id)
    clock = await db_now(pg_url)
    assert running is not None and running.state == "in_flight"
    assert clock + 500 < running.at <= clock + 600
    found = await backend.find_task("default", later.id)
    assert found is not None and found.state == "delayed" and found.at > clock + 3000
    assert decode(found.body).payload == "later"
    assert await backend.find_task("default", "no-such-id") is None
    assert await backend.find_task("other", later.id) is None

    assert not await backend.run_now("default", ready.id)  # already ready
    assert not await backend.run_now("default", leased.id)  # running: its lease stands
    assert not await backend.run_now("other", later.id)  # another queue's task
    assert not await backend.run_now("default", "no-such-id")
    assert await backend.run_now("default", later.id)
    assert not await backend.run_now("default", later.id)  # ready now: nothing to hurry
    hurried = await backend.find_task("default", later.id)
    assert hurried is not None and hurried.state == "ready" and hurried.at == 0
    still = await backend.find_task("default", leased.id)
    assert still is not None and still.state == "in_flight" and still.at == running.at
    got = await backend.fetch(["default"], 10, lease=30, wait=0)
    assert [decode(d.body).payload for d in got] == ["later", "ready"]  # priority 2 first
    assert held.receipt != got[0].receipt


async def test_pages_and_bad_input(backend: PostgresBackend) -> None:
    envelopes = [make_envelope("t", i) for i in range(25)]
    await backend.enqueue(envelopes)
    rows, total = await backend.browse("default", "ready", 10, 20)
    assert total == 25 and [r.id for r in rows] == [e.id for e in envelopes[20:]]
    assert await backend.browse("default", "ready", 0, 0) == ([], 25)
    assert await backend.browse("default", "ready", 10, 10**30) == ([], 25)
    assert await backend.browse("default", "delayed", 10, 0) == ([], 0)
    assert await backend.browse("empty", "ready", 10, 0) == ([], 0)
    with pytest.raises(ValueError, match="state must be one of"):
        await backend.browse("default", "dead", 10, 0)  # type: ignore[arg-type]
    for limit, offset in ((-1, 0), (10, -1), (True, 0), (1.5, 0)):
        with pytest.raises(ValueError, match="must be an integer >= 0"):
            await backend.browse("default", "ready", limit, offset)  # type: ignore[arg-type]


async def test_run_now_wakes_idle_workers(backend: PostgresBackend, pg_url: str) -> None:
    later = make_envelope("t", "later", queue="mail", eta=time.time() + 3600)
    await backend.enqueue([later])
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    try:
        await listener.add_listener(backend.settings.channel,
                                    lambda *args: heard.put_nowait(args[-1]))
        assert await backend.run_now("mail", later.id)
        assert await asyncio.wait_for(heard.get(), 30) == "mail"
    finally:
        await listener.close()


async def _waiting_on_a_row_lock(watch: Any, schema: str) -> None:
    """Until a statement of ours on ``schema``'s jobs waits for a row lock."""
    while not await watch.fetchval(  # noqa: ASYNC110 - polls the server's lock table
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database() AND query LIKE $1", f"%{schema}.jobs SET%"
    ):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("first", ["run_now", "claim"])
async def test_run_now_meeting_a_writer_on_its_row_waits_and_rechecks(
    backend: PostgresBackend, pg_url: str, schema: str, first: str
) -> None:
    """Another run now (or a worker leasing the row once it came due) holds the row: this run
    now waits for it to commit, re-checks the committed row and reports False, so one click
    wins and a lease taken meanwhile is not cut short."""
    later = make_envelope("t", "later", eta=time.time() + 3600)
    await backend.enqueue([later])
    holder, watch = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        tx = holder.transaction()
        await tx.start()
        if first == "run_now":
            assert await run_async(holder, browse.run_now(backend._d, "default", later.id)) == 1
        else:
            await holder.execute(f"UPDATE {schema}.jobs SET token = 7,"
                                 f" available_at = {NOW} + 600 WHERE id = $1", later.id)
        second = asyncio.create_task(backend.run_now("default", later.id))
        await _waiting_on_a_row_lock(watch, schema)
        await tx.commit()
        assert await second is False
    finally:
        await holder.close()
        await watch.close()
    found = await backend.find_task("default", later.id)
    assert found is not None
    assert found.state == ("ready" if first == "run_now" else "in_flight")


async def test_run_now_racing_claims_never_cuts_a_lease_short(make: Make, pg_url: str) -> None:
    """Tasks come due while a producer hurries them and two workers claim: each task is
    fetched once, and every lease keeps its full length."""
    producer, workers = make(), [make(), make()]
    start = time.time()
    envelopes = [make_envelope("t", i, queue="q", eta=start + 0.05 + i * 0.01)
                 for i in range(40)]
    await producer.enqueue(envelopes)
    fetched: list[str] = []

    async def drain(worker: PostgresBackend) -> None:
        while len(fetched) < len(envelopes):
            got = await worker.fetch(["q"], 3, lease=600, wait=0.05)
            fetched.extend(decode(d.body).id for d in got)

    async def hurry() -> None:  # the last due first: early ones come due and are claimed
        for e in envelopes[::-1]:
            await producer.run_now("q", e.id)

    await asyncio.gather(hurry(), drain(workers[0]), drain(workers[1]))
    assert sorted(fetched) == sorted(e.id for e in envelopes)
    running, total = await producer.browse("q", "in_flight", 100, 0)
    clock = await db_now(pg_url)
    assert total == len(envelopes) and all(t.at > clock + 500 for t in running)


# -- the dashboard on postgres ------------------------------------------------------------


@pytest.fixture
async def pg_hive(pg_url: str, schema: str) -> AsyncIterator[Hive]:
    hive = build_hive(f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}")
    await populate(hive)
    yield hive
    await hive.close()
    await PostgresBackend.from_url(pg_url, schema=schema).wipe()


@pytest.fixture
async def pg_client(pg_hive: Hive) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(pg_hive) as client:
        yield client


async def test_the_dashboard_browses_deletes_and_runs_postgres_tasks(
    pg_hive: Hive, pg_client: httpx.AsyncClient
) -> None:
    await browser_scenario(pg_hive, pg_client)


async def test_the_dashboard_charts_postgres_history(pg_client: httpx.AsyncClient) -> None:
    await charts_scenario(pg_client)


async def test_the_dashboard_pauses_postgres_queues(pg_hive: Hive,
                                                    pg_client: httpx.AsyncClient) -> None:
    await pause_api_scenario(pg_hive, pg_client)


# -- layouts and poolers ------------------------------------------------------------------


async def test_a_schema_without_the_dashboard_tables_gains_them(
    make: Make, pg_url: str, schema: str
) -> None:
    first = make()
    await first.enqueue([make_envelope("t", "kept")])
    await first.close()
    con = await asyncpg.connect(pg_url)
    try:
        await con.execute(f"DROP TABLE {schema}.history, {schema}.paused")
        later = make()
        await later.set_paused("q", True)
        assert await later.paused_queues() == {"q"}
        minute = int(time.time() // MINUTE * MINUTE)
        await later.record_history([Bucket(minute, "q", "t", succeeded=1)])
        assert [b.minute for b in await later.history(0)] == [minute]
        version = await con.fetchval(
            f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
    finally:
        await con.close()
    assert version == "2"  # unchanged: an older workhive still opens this schema


async def test_every_call_works_through_pgbouncer(pgbouncer: PgBouncer, schema: str) -> None:
    backend = PostgresBackend.from_url(pgbouncer.url, schema=schema, pooler="transaction")
    try:
        await history_scenario(Hive(backend))
        await pause_scenario(Hive(backend))
        later: Envelope = make_envelope("t", "later", eta=time.time() + 3600)
        await backend.enqueue([later, make_envelope("t", "now")])
        assert (await backend.browse("default", "delayed", 10, 0))[1] == 1
        assert await backend.run_now("default", later.id)
        found = await backend.find_task("default", later.id)
        assert found is not None and found.state == "ready"
        assert (await backend.browse("default", "ready", 10, 0))[1] == 2
    finally:
        await backend.close()
        await PostgresBackend.from_url(require_service("postgres"), schema=schema).wipe()
