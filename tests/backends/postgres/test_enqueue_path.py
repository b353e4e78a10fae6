"""The producer's one-task path and the connections it reuses: a single envelope is one
statement that still wakes a waiting fetch and keeps its eta and priority; connections kept
checked out between calls never starve other callers, and one left in a broken state (an
error inside a transaction) goes back through the pool instead of being reused as it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from workhive._envelope import decode, make_envelope
from workhive.backends.postgres import PostgresBackend
from workhive.errors import BackendError

pytestmark = pytest.mark.postgres
Make = Callable[..., PostgresBackend]


async def test_one_envelope_keeps_eta_priority_and_wakes_a_waiting_fetch(make: Make) -> None:
    worker, producer = make(poll_interval=60), make()  # only the NOTIFY can wake the worker
    await worker.open()
    await producer.enqueue([make_envelope("t:x", "later", queue="q", eta=time.time() + 60)])
    waiting = asyncio.create_task(worker.fetch(["q"], 10, lease=30, wait=30))
    await asyncio.sleep(0.2)  # the fetch is parked on LISTEN
    await producer.enqueue([make_envelope("t:x", "low", queue="q")])
    (got,) = await waiting
    assert decode(got.body).payload == "low"
    await producer.enqueue([make_envelope("t:x", "high", queue="q", priority=5)])
    await producer.enqueue([make_envelope("t:x", "low2", queue="q")])
    got2 = await worker.fetch(["q"], 10, lease=30, wait=0)
    assert [decode(d.body).payload for d in got2] == ["high", "low2"]  # "later" is not due


async def test_more_callers_than_connections_all_get_one(make: Make) -> None:
    backend = make(pool_size=2)
    results = await asyncio.gather(*(
        backend.enqueue([make_envelope("t:x", i, queue="q")]) for i in range(40)))
    assert len({r.id for (r,) in results}) == 40
    got = await backend.fetch(["q"], 100, lease=30, wait=0)
    assert sorted(decode(d.body).payload for d in got) == list(range(40))


async def test_a_connection_that_failed_mid_transaction_is_not_reused_as_it_is(
    make: Make,
) -> None:
    backend = make(pool_size=1)
    await backend.open()
    with pytest.raises(BackendError, match="division by zero"):
        async with backend._conn("test") as con:
            await con.execute("BEGIN")
            await con.execute("SELECT 1/0")
    (result,) = await backend.enqueue([make_envelope("t:x", "after", queue="q")])
    (got,) = await backend.fetch(["q"], 10, lease=30, wait=0)
    assert decode(got.body).id == result.id
