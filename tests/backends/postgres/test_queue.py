"""The postgres backend's queue contract against the real server: order, etas, leases,
competing instances, settlements, keys, LISTEN wake-ups, cancellation and schema set-up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement
from workhive.backends.postgres import PostgresBackend

pytestmark = pytest.mark.postgres
Make = Callable[..., PostgresBackend]


def env(i: object = None, queue: str = "q", **fields: object) -> object:
    return make_envelope("t:x", i, queue=queue, **fields)


async def test_priority_then_fifo_and_queue_order(backend: PostgresBackend) -> None:
    await backend.enqueue([env(i, priority=p) for i, p in enumerate([1, 5, 1, 9, 0, 5])])
    await backend.enqueue([env("other", queue="first")])
    got = await backend.fetch(["first", "q"], 10, lease=30, wait=0)
    assert [decode(d.body).payload for d in got] == ["other", 3, 1, 5, 0, 2, 4]
    assert [d.queue for d in got] == ["first"] + ["q"] * 6
    # limit spans queues in order: the first queue is drained before the next is touched
    await backend.enqueue([env("a", queue="first"), env("b")])
    got = await backend.fetch(["first", "q"], 1, lease=30, wait=0)
    assert [decode(d.body).payload for d in got] == ["a"]


async def test_eta_is_respected_and_wakes_a_waiting_fetch(make: Make) -> None:
    backend = make(poll_interval=60)  # only the due time can wake it
    eta = time.time() + 0.4
    await backend.enqueue([env("later", eta=eta), env("past", eta=time.time() - 100)])
    (now,) = await backend.fetch(["q"], 10, lease=30, wait=0)
    assert decode(now.body).payload == "past"
    assert await backend.fetch(["q"], 10, lease=30, wait=0) == []
    (later,) = await backend.fetch(["q"], 10, lease=30, wait=5)
    assert decode(later.body).payload == "later" and time.time() >= eta - 0.005


async def test_lease_expiry_redelivers_and_stale_settles_are_noops(
    backend: PostgresBackend,
) -> None:
    await backend.enqueue([env("x")])
    (first,) = await backend.fetch(["q"], 10, lease=0.2, wait=0)
    await asyncio.sleep(0.3)
    (second,) = await backend.fetch(["q"], 10, lease=30, wait=0)
    assert second.receipt != first.receipt
    await backend.extend([first], 0.01)  # stale: must not shorten the new lease
    await backend.settle([Settlement(first, "ack")])
    await backend.settle([Settlement(first, "dead", reason="stale")])
    await asyncio.sleep(0.05)
    assert await backend.fetch(["q"], 10, lease=30, wait=0) == []
    (stat,) = await backend.stats()
    assert (stat.in_flight, stat.processed, stat.dead) == (1, 0, 0)
    await backend.settle([Settlement(second, "ack")])
    (stat,) = await backend.stats()
    assert (stat.in_flight, stat.ready, stat.processed) == (0, 0, 1)


async def test_extend_keeps_a_lease_alive(backend: PostgresBackend) -> None:
    await backend.enqueue([env("x")])
    (d,) = await backend.fetch(["q"], 1, lease=0.3, wait=0)
    await backend.extend([d], 30)
    await asyncio.sleep(0.4)
    assert await backend.fetch(["q"], 1, lease=30, wait=0) == []


async def test_competing_instances_never_share_a_message(make: Make) -> None:
    n = 600
    producer = make()
    await producer.enqueue([env(i) for i in range(n)])
    workers = [make() for _ in range(4)]
    seen: list[int] = []

    async def drain(backend: PostgresBackend) -> None:
        while True:
            got = await backend.fetch(["q"], 7, lease=30, wait=0)
            if not got:
                return
            seen.extend(decode(d.body).payload for d in got)
            await backend.settle([Settlement(d, "ack") for d in got])

    await asyncio.gather(*(drain(w) for w in workers for _ in range(3)))
    counts = Counter(seen)
    assert set(counts) == set(range(n)) and set(counts.values()) == {1}


async def test_retry_replaces_body_and_release_returns_untouched(backend: PostgresBackend) -> None:
    original = env("v1")
    await backend.enqueue([original])
    (d,) = await backend.fetch(["q"], 1, lease=30, wait=0)
    retried = make_envelope("t:x", "v2", queue="q", attempt=1)
    from workhive._envelope import encode

    await backend.settle([Settlement(d, "retry", body=encode(retried), eta=time.time() + 0.2)])
    assert await backend.fetch(["q"], 1, lease=30, wait=0) == []
    (again,) = await backend.fetch(["q"], 1, lease=30, wait=3)
    assert decode(again.body).payload == "v2" and decode(again.body).attempt == 1
    await backend.settle([Settlement(again, "release")])
    (third,) = await backend.fetch(["q"], 1, lease=30, wait=0)
    assert decode(third.body).payload == "v2"
    (stat,) = await backend.stats()
    assert (stat.failed, stat.processed) == (1, 0)


async def test_unique_and_idempotency_keys(make: Make) -> None:
    a, b = make(), make()
    r1, r2, r3 = await a.enqueue([
        env(1, idempotency_key="k", unique_key="u"),
        env(2, idempotency_key="k"),  # same batch: still a duplicate
        env(3, unique_key="u"),
    ])
    assert not r1.duplicate and (r2.id, r2.duplicate) == (r1.id, True) and r3.id == r1.id
    (held,) = await b.enqueue([env(4, unique_key="u")])
    assert held.duplicate and held.id == r1.id
    (d,) = await b.fetch(["q"], 10, lease=30, wait=0)
    await b.settle([Settlement(d, "dead", reason="gone")])  # dead releases the unique key
    (fresh,) = await a.enqueue([env(5, unique_key="u")])
    assert not fresh.duplicate
    (again,) = await a.enqueue([env(6, idempotency_key="k")])  # outlives the message
    assert again.duplicate and again.id == r1.id


async def test_idempotency_key_expires(make: Make) -> None:
    backend = make(idempotency_ttl=0.2)
    (first,) = await backend.enqueue([env(1, idempotency_key="k")])
    (dup,) = await backend.enqueue([env(2, idempotency_key="k")])
    assert dup.duplicate
    await asyncio.sleep(0.3)
    (later,) = await backend.enqueue([env(3, idempotency_key="k")])
    assert not later.duplicate and later.id != first.id


async def test_listen_wakes_a_waiting_fetch_from_another_instance(make: Make) -> None:
    waiter, producer = make(poll_interval=60), make()
    await waiter.open()
    fetch = asyncio.create_task(waiter.fetch(["q"], 1, lease=30, wait=10))
    await asyncio.sleep(0.2)  # the fetch is idle, listening
    assert not fetch.done()
    await producer.enqueue([env("ping")])
    got = await asyncio.wait_for(fetch, 9)  # the poll safety net (60 s) cannot be what woke it
    assert [decode(d.body).payload for d in got] == ["ping"]


async def test_release_by_another_instance_wakes_a_waiting_fetch(make: Make) -> None:
    waiter, other = make(poll_interval=60), make()
    await other.enqueue([env("x")])
    (held,) = await other.fetch(["q"], 1, lease=300, wait=0)
    fetch = asyncio.create_task(waiter.fetch(["q"], 1, lease=30, wait=10))
    await asyncio.sleep(0.2)
    await other.settle([Settlement(held, "release")])
    got = await asyncio.wait_for(fetch, 9)
    assert [decode(d.body).payload for d in got] == ["x"]


async def test_cancelled_waiting_fetch_leaves_nothing_leased(backend: PostgresBackend) -> None:
    fetch = asyncio.create_task(backend.fetch(["q"], 5, lease=300, wait=10))
    await asyncio.sleep(0.1)
    await backend.enqueue([env(i) for i in range(3)])
    fetch.cancel()
    try:
        got = await fetch  # it may have won the race and returned normally
    except asyncio.CancelledError:
        got = []
    await asyncio.sleep(0.2)  # a give-back runs in the background
    left = await backend.fetch(["q"], 10, lease=30, wait=0)
    assert len(left) + len(got) == 3


async def test_concurrent_open_creates_schema_once_and_wipe_recreates(make: Make) -> None:
    backends = [make() for _ in range(5)]
    await asyncio.gather(*(b.open() for b in backends))
    await backends[0].enqueue([env("x")])
    await backends[1].wipe()
    assert await backends[1].stats() == []  # the next call recreated the tables
