"""The SQLite backend against the contract of workhive.backend (memory.py is the reference)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest

from workhive._envelope import AttemptRecord, decode, encode, make_envelope
from workhive.backend import (
    Backend,
    Capability,
    Delivery,
    Settlement,
    SupportsCounters,
    SupportsCron,
    SupportsDeadLetters,
    SupportsEvents,
    SupportsInspect,
    WorkerInfo,
)
from workhive.backends.sqlite import SQLiteBackend
from workhive.errors import BackendError

from .conftest import FakeClock

pytestmark = pytest.mark.sqlite


def names(deliveries: list[Delivery]) -> list[object]:
    return [decode(d.body).payload for d in deliveries]


async def fetch(
    b: SQLiteBackend, *queues: str, limit: int = 10, lease: float = 30.0
) -> list[Delivery]:
    return await b.fetch(list(queues or ["default"]), limit, lease=lease, wait=0)


async def test_declares_every_capability_but_per_key_order(backend: SQLiteBackend) -> None:
    assert backend.features.capabilities == frozenset(Capability) - {Capability.ORDERED_KEYS}
    for proto in (Backend, SupportsEvents, SupportsCron, SupportsCounters, SupportsDeadLetters,
                  SupportsInspect):
        assert isinstance(backend, proto)


async def test_priority_then_fifo_order(backend: SQLiteBackend) -> None:
    await backend.enqueue([make_envelope("t", i, priority=p) for i, p in
                           enumerate([0, 5, 0, 9, 5])])
    assert names(await fetch(backend, limit=3)) == [3, 1, 4]
    assert names(await fetch(backend, limit=3)) == [0, 2]


async def test_queues_are_served_in_the_order_given(backend: SQLiteBackend) -> None:
    await backend.enqueue([make_envelope("t", "a", queue="a"), make_envelope("t", "b", queue="b")])
    got = await fetch(backend, "b", "a")
    assert [d.queue for d in got] == ["b", "a"]
    assert await fetch(backend, "c") == []


async def test_eta_holds_a_message_back(backend: SQLiteBackend, clock: FakeClock) -> None:
    await backend.enqueue([make_envelope("t", "later", eta=clock.now + 60),
                           make_envelope("t", "now")])
    assert names(await fetch(backend, lease=1000)) == ["now"]
    assert await fetch(backend) == []
    clock.advance(61)
    assert names(await fetch(backend)) == ["later"]


async def test_expired_lease_is_redelivered_and_stale_settle_is_a_noop(
    backend: SQLiteBackend, clock: FakeClock
) -> None:
    await backend.enqueue([make_envelope("t", "x")])
    [first] = await fetch(backend, lease=5)
    assert await fetch(backend) == []  # leased
    clock.advance(6)
    [second] = await fetch(backend, lease=5)
    assert second.body == first.body and second.receipt != first.receipt
    await backend.settle([Settlement(first, "ack")])  # lost lease: ignored
    await backend.extend([first], 100)  # also ignored
    [stats] = await backend.stats()
    assert (stats.in_flight, stats.processed) == (1, 0)
    await backend.settle([Settlement(second, "ack")])
    [stats] = await backend.stats()
    assert (stats.in_flight, stats.ready, stats.processed) == (0, 0, 1)


async def test_extend_keeps_the_lease(backend: SQLiteBackend, clock: FakeClock) -> None:
    await backend.enqueue([make_envelope("t", "x")])
    [d] = await fetch(backend, lease=5)
    clock.advance(4)
    await backend.extend([d], 10)
    clock.advance(5)
    assert await fetch(backend) == []
    clock.advance(6)
    assert len(await fetch(backend)) == 1


async def test_retry_replaces_the_body_and_waits_for_eta(
    backend: SQLiteBackend, clock: FakeClock
) -> None:
    env = make_envelope("t", "x")
    await backend.enqueue([env])
    [d] = await fetch(backend)
    nxt = env.next_attempt(AttemptRecord(1, clock.now, "boom"))
    await backend.settle([Settlement(d, "retry", body=encode(nxt), eta=clock.now + 10)])
    [stats] = await backend.stats()
    assert (stats.delayed, stats.failed, stats.in_flight) == (1, 1, 0)
    assert await fetch(backend) == []
    clock.advance(11)
    [again] = await fetch(backend)
    assert decode(again.body).attempt == 1
    assert decode(again.body).history[0].error == "boom"


async def test_release_gives_the_message_back_now(backend: SQLiteBackend) -> None:
    await backend.enqueue([make_envelope("t", "x")])
    [d] = await fetch(backend)
    await backend.settle([Settlement(d, "release")])
    assert names(await fetch(backend)) == ["x"]
    [stats] = await backend.stats()
    assert (stats.processed, stats.failed) == (0, 0)


async def test_dead_letters_list_replay_purge(backend: SQLiteBackend) -> None:
    envs = [make_envelope("t", i, queue="q", priority=3, attempt=4) for i in range(3)]
    await backend.enqueue(envs)
    got = await fetch(backend, "q")
    await backend.settle([Settlement(d, "dead", reason=f"bad {i}") for i, d in enumerate(got)])
    dead = await backend.dead_letters()
    assert [d.id for d in dead] == [e.id for e in envs]
    assert [d.reason for d in dead] == ["bad 0", "bad 1", "bad 2"]
    assert await backend.dead_letters(queue="other") == []
    assert len(await backend.dead_letters(limit=1, offset=1)) == 1
    [stats] = await backend.stats()
    assert (stats.dead, stats.failed) == (3, 3)

    assert await backend.replay_dead(ids=[envs[0].id]) == 1
    [fresh] = await fetch(backend, "q")
    replayed = decode(fresh.body)
    assert (replayed.payload, replayed.attempt, replayed.priority) == (0, 0, 3)
    assert replayed.id != envs[0].id
    assert await backend.purge_dead(queue="q") == 2
    assert await backend.dead_letters() == []


async def test_malformed_bytes_are_returned_raw_and_can_be_buried(backend: SQLiteBackend) -> None:
    await backend.enqueue([make_envelope("t", "ok")])
    con = sqlite3.connect(backend.path)
    with con:
        con.execute("UPDATE jobs SET body = x'c1ffee'")
    con.close()
    [d] = await fetch(backend)
    assert d.body == b"\xc1\xff\xee"
    await backend.settle([Settlement(d, "dead", reason="malformed")])
    assert await backend.replay_dead() == 0  # cannot be rebuilt: stays in the DLQ
    assert len(await backend.dead_letters()) == 1


async def test_unique_key_held_until_ack_or_dead(backend: SQLiteBackend) -> None:
    first = make_envelope("t", 1, unique_key="u")
    r1, r2 = await backend.enqueue([first, make_envelope("t", 2, unique_key="u")])
    assert (r1.duplicate, r2.duplicate, r2.id) == (False, True, first.id)
    [d] = await fetch(backend)
    await backend.settle([Settlement(d, "ack")])
    [r3] = await backend.enqueue([make_envelope("t", 3, unique_key="u")])
    assert not r3.duplicate
    [d] = await fetch(backend)
    await backend.settle([Settlement(d, "dead", reason="x")])
    [r4] = await backend.enqueue([make_envelope("t", 4, unique_key="u")])
    assert not r4.duplicate


async def test_idempotency_key_dedupes_for_its_ttl(
    backend: SQLiteBackend, clock: FakeClock
) -> None:
    first = make_envelope("t", 1, idempotency_key="k")
    [r1] = await backend.enqueue([first])
    [d] = await fetch(backend)
    await backend.settle([Settlement(d, "ack")])  # still deduped after completion
    [r2] = await backend.enqueue([make_envelope("t", 2, idempotency_key="k")])
    assert (r1.duplicate, r2.duplicate, r2.id) == (False, True, first.id)
    clock.advance(86_401)
    [r3] = await backend.enqueue([make_envelope("t", 3, idempotency_key="k")])
    assert not r3.duplicate


async def test_fan_out_to_two_groups_with_patterns(backend: SQLiteBackend) -> None:
    await backend.bind("users.*", "mailer")
    await backend.bind("users.created", "audit")
    await backend.bind("users.created", "audit")  # idempotent
    await backend.bind("orders.*", "billing")
    assert await backend.publish(make_envelope("users.created", {"id": 7}, kind="event")) == 2
    assert await backend.publish(make_envelope("users.deleted", {"id": 7}, kind="event")) == 1
    assert await backend.publish(make_envelope("nobody.cares", {}, kind="event")) == 0
    mailer = await fetch(backend, "@mailer")
    audit = await fetch(backend, "@audit")
    assert [decode(d.body).name for d in mailer] == ["users.created", "users.deleted"]
    assert [(decode(d.body).name, decode(d.body).group) for d in audit] == [
        ("users.created", "audit")
    ]
    assert await fetch(backend, "@billing") == []


async def test_claim_tick_once_across_instances(
    backend: SQLiteBackend, db_url: str, clock: FakeClock
) -> None:
    async with SQLiteBackend.from_url(db_url, clock=clock) as other:
        results = await asyncio.gather(
            *(b.claim_tick("nightly", 1000.0) for b in (backend, other, backend, other))
        )
        assert sorted(results) == [False, False, False, True]
        assert await other.claim_tick("nightly", 1060.0)
        assert await backend.claim_tick("hourly", 1000.0)


async def test_fixed_window_resets_at_the_boundary(
    backend: SQLiteBackend, clock: FakeClock
) -> None:
    clock.now = 1000.0 * 60 + 50  # 10 s before a 60 s window ends
    assert await backend.hit_window("k", 60, 2) == (True, 0.0)
    assert await backend.hit_window("k", 60, 2) == (True, 0.0)
    allowed, retry_after = await backend.hit_window("k", 60, 2)
    assert not allowed and retry_after == pytest.approx(10.0)
    assert (await backend.hit_window("other", 60, 2))[0]
    clock.advance(10)  # exactly at the next window
    assert await backend.hit_window("k", 60, 2) == (True, 0.0)
    assert not (await backend.hit_window("k", 60, 0))[0]


async def test_token_bucket_refills(backend: SQLiteBackend, clock: FakeClock) -> None:
    assert (await backend.take_token("b", 2.0, 2))[0]
    assert (await backend.take_token("b", 2.0, 2))[0]
    allowed, retry_after = await backend.take_token("b", 2.0, 2)
    assert not allowed and retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert (await backend.take_token("b", 2.0, 2))[0]
    clock.advance(100)  # refill caps at burst
    assert [(await backend.take_token("b", 2.0, 2))[0] for _ in range(3)] == [True, True, False]


async def test_stats_count_every_state(backend: SQLiteBackend, clock: FakeClock) -> None:
    await backend.enqueue([make_envelope("t", i, queue="q") for i in range(4)]
                          + [make_envelope("t", "later", queue="q", eta=clock.now + 60),
                             make_envelope("t", "other", queue="r")])
    a, b, _leased = await fetch(backend, "q", limit=3)
    await backend.settle([Settlement(a, "ack"), Settlement(b, "dead", reason="no")])
    q, r = await backend.stats()
    assert (q.queue, q.ready, q.delayed, q.in_flight, q.dead, q.processed, q.failed) == (
        "q", 1, 1, 1, 1, 1, 1)
    assert (r.queue, r.ready) == ("r", 1)


async def test_heartbeats_expire_and_can_be_forgotten(
    backend: SQLiteBackend, clock: FakeClock
) -> None:
    info = WorkerInfo("w1", socket.gethostname(), 123, ["default"], 10, clock.now, clock.now,
                      {"version": "1"})
    await backend.heartbeat(info, ttl=30)
    await backend.heartbeat(WorkerInfo("w2", "h", 2, [], 1, 0.0, 0.0), ttl=100)
    assert await backend.workers() == [info, WorkerInfo("w2", "h", 2, [], 1, 0.0, 0.0)]
    clock.advance(31)
    assert [w.id for w in await backend.workers()] == ["w2"]
    await backend.forget_worker("w2")
    assert await backend.workers() == []


async def test_wipe_empties_everything(backend: SQLiteBackend) -> None:
    await backend.enqueue([make_envelope("t", 1)])
    await backend.bind("*", "g")
    await backend.wipe()
    assert await backend.stats() == []
    assert await backend.publish(make_envelope("e", 1)) == 0


async def test_state_survives_reopening(db_url: str) -> None:
    async with SQLiteBackend.from_url(db_url) as b:
        await b.enqueue([make_envelope("t", "durable")])
    async with SQLiteBackend.from_url(db_url) as b:
        assert names(await fetch(b)) == ["durable"]


async def test_use_after_close_is_a_backend_error(db_url: str) -> None:
    b = SQLiteBackend.from_url(db_url)
    await b.open()
    await b.open()  # idempotent
    await b.close()
    await b.close()
    with pytest.raises(BackendError, match="closed"):
        await b.enqueue([make_envelope("t", 1)])


async def test_newer_schema_is_refused(db_url: str, tmp_path: Path) -> None:
    async with SQLiteBackend.from_url(db_url):
        pass
    con = sqlite3.connect(tmp_path / "hive.db")
    with con:
        con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(Exception, match="schema version 999"):
        await SQLiteBackend.from_url(db_url).open()


async def test_locked_database_is_a_clear_backend_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/locked.db?busy_timeout=0.05"
    async with SQLiteBackend.from_url(url) as b:
        con = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendError, match="is locked"):
                await b.enqueue([make_envelope("t", 1)])
        finally:
            con.execute("ROLLBACK")
            con.close()
        await b.enqueue([make_envelope("t", 2)])  # usable again once the lock is gone
