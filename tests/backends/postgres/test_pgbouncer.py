"""The postgres backend through PgBouncer in transaction pooling mode, as managed PostgreSQL is
usually reached: the whole conformance suite, wake-ups with and without a direct LISTEN
connection, and a worker process killed with SIGKILL mid-batch.

The pooler (``conftest.pgbouncer``) has 3 server sessions for every client, so statements of one
client really do land on sessions other clients used before them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests._services import require_service, unique_name
from tests.backends.postgres._pgbouncer import PgBouncer
from tests.faults.rig import Rig, finish
from workhive._envelope import make_envelope
from workhive.backends.postgres import PostgresBackend
from workhive.testing.conformance import Harness, Scenario

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


async def test_the_rig_shares_few_server_sessions_among_many_clients(
    pgbouncer: PgBouncer,
) -> None:
    """Control: ten clients, at most three server sessions, so a session-bound feature (a
    cached prepared statement, a LISTEN) would be lost or collide."""
    clients = [await asyncpg.connect(pgbouncer.url, statement_cache_size=0) for _ in range(10)]
    try:
        pids = set()
        for _ in range(3):
            pids |= set(await asyncio.gather(
                *(c.fetchval("SELECT pg_backend_pid()") for c in clients)
            ))
    finally:
        for c in clients:
            await c.close()
    assert 1 <= len(pids) <= 3, pids


@pytest.fixture
async def pooled_harness(pgbouncer: PgBouncer) -> AsyncIterator[Harness]:
    """Clients through the pooler without ``listen_url``: idle fetches poll."""
    schema = unique_name("bouncer")
    harness = Harness(lambda: PostgresBackend.from_url(
        pgbouncer.url, schema=schema, pooler="transaction", poll_interval=0.05))
    try:
        yield harness
    finally:
        await harness.close_all()
        await PostgresBackend.from_url(require_service("postgres"), schema=schema).wipe()


async def test_conformance_through_pgbouncer(conformance_scenario: Scenario,
                                             pooled_harness: Harness) -> None:
    await conformance_scenario(pooled_harness)


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = unique_name("bouncer")
    yield name
    await PostgresBackend.from_url(require_service("postgres"), schema=name).wipe()


async def _idle_fetch_sees_another_clients_enqueue(waiter: PostgresBackend,
                                                   producer: PostgresBackend) -> None:
    """``waiter`` fetches with a long wait; ``producer`` (another process, say) enqueues."""
    await waiter.open()
    fetch = asyncio.create_task(waiter.fetch(["q"], 1, lease=30, wait=30))
    await asyncio.sleep(0.2)
    assert not fetch.done()
    envelope = make_envelope("t", b"{}", queue="q")
    await producer.enqueue([envelope])
    (delivery,) = await asyncio.wait_for(fetch, 25)
    assert delivery.queue == "q"


async def test_listen_url_wakes_idle_fetches_through_a_direct_session(
    pgbouncer: PgBouncer, schema: str
) -> None:
    """With ``listen_url``, the NOTIFY sent through the pooler reaches the direct LISTEN
    session; the poll (60 s here) never has to fire."""
    direct = require_service("postgres")
    waiter = PostgresBackend.from_url(pgbouncer.url, schema=schema, pooler="transaction",
                                      listen_url=direct, poll_interval=60)
    producer = PostgresBackend.from_url(pgbouncer.url, schema=schema, pooler="transaction")
    try:
        await _idle_fetch_sees_another_clients_enqueue(waiter, producer)
        assert waiter._pg.listener is not None and not waiter._pg.listener.is_closed()
    finally:
        await waiter.close()
        await producer.close()


async def test_without_listen_url_idle_fetches_poll(pgbouncer: PgBouncer, schema: str) -> None:
    """No session to LISTEN on: no listener is opened, the fetch finds the row by polling."""
    waiter = PostgresBackend.from_url(pgbouncer.url, schema=schema, pooler="transaction",
                                      poll_interval=0.1)
    producer = PostgresBackend.from_url(pgbouncer.url, schema=schema, pooler="transaction")
    try:
        await _idle_fetch_sees_another_clients_enqueue(waiter, producer)
        assert waiter._pg.listener is None
    finally:
        await waiter.close()
        await producer.close()


@pytest.fixture
def rig(pgbouncer: PgBouncer, tmp_path: Path) -> Iterator[Rig]:
    schema = unique_name("bouncerfaults")
    rig = Rig(tmp_path, {
        "WORKHIVE_BACKEND": f"{pgbouncer.url}?schema={schema}&pooler=transaction",
    })
    yield rig
    rig.stop_all()
    asyncio.run(PostgresBackend.from_url(require_service("postgres"), schema=schema).wipe())


@pytest.mark.slow
def test_kill_9_mid_batch_through_pgbouncer_loses_nothing(rig: Rig) -> None:
    """A worker process killed mid-batch: a second one finishes everything; only what the
    killed one held leased (running, or finished and awaiting settlement) runs twice."""
    n, concurrency = 2000, 20
    rig.fill(n, sleep=0.001)
    victim = rig.worker("--concurrency", str(concurrency), "--lease", "2")
    rig.wait_for(lambda: sum(rig.count("end").values()) >= 400)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before_kill = sum(rig.count("start").values())
    assert before_kill < n, "the kill must land mid-batch to mean much"
    rescuer = rig.worker("--concurrency", str(concurrency), "--lease", "2", "--burst")
    output = finish(rescuer)
    assert rescuer.returncode == 0, output
    ends, starts = rig.count("end"), rig.count("start")
    assert set(ends) == set(range(n)), f"lost: {sorted(set(range(n)) - set(ends))[:20]}"
    duplicates = sum(c - 1 for c in starts.values() if c > 1)
    assert duplicates <= 2 * concurrency, (duplicates, concurrency)
    print(f"killed after {before_kill} starts; duplicates={duplicates}")
