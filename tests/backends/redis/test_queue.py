"""Queue behaviour of the redis backend against the real Redis: order, leases, settle, DLQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.backends.redis.conftest import FakeClock
from workhive._envelope import AttemptRecord, decode, encode, make_envelope
from workhive.backend import Delivery, Settlement
from workhive.backends.redis import RedisBackend

pytestmark = pytest.mark.redis


def payloads(deliveries: list[Delivery]) -> list[object]:
    return [decode(d.body).payload for d in deliveries]


async def test_fifo_within_priority_and_priority_first(backend: RedisBackend) -> None:
    await backend.enqueue([make_envelope("t", i, priority=i % 3) for i in range(9)])
    got = await backend.fetch(["default"], 100, lease=30, wait=0)
    assert payloads(got) == [2, 5, 8, 1, 4, 7, 0, 3, 6]
    assert await backend.fetch(["default"], 100, lease=30, wait=0) == []


async def test_negative_priorities_and_queue_order(backend: RedisBackend) -> None:
    await backend.enqueue([make_envelope("t", "low", queue="b", priority=-5),
                           make_envelope("t", "a0", queue="a"),
                           make_envelope("t", "high", queue="b", priority=3)])
    got = await backend.fetch(["b", "a"], 10, lease=30, wait=0)
    assert payloads(got) == ["high", "low", "a0"]
    assert [d.queue for d in got] == ["b", "b", "a"]


async def test_limit_is_respected_across_batches(backend: RedisBackend) -> None:
    await backend.enqueue([make_envelope("t", i) for i in range(2500)])  # > one script chunk
    first = await backend.fetch(["default"], 1000, lease=30, wait=0)
    second = await backend.fetch(["default"], 2000, lease=30, wait=0)
    assert len(first) == 1000 and len(second) == 1500
    assert payloads(first + second) == list(range(2500))
    await backend.settle([Settlement(d, "ack") for d in first + second])
    [stats] = await backend.stats()
    assert (stats.ready, stats.in_flight, stats.processed) == (0, 0, 2500)


async def test_delay_with_fake_clock(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock()
    b = make(clock=clock)
    await b.enqueue([make_envelope("t", "later", eta=clock.now + 10),
                     make_envelope("t", "now", eta=clock.now - 1)])
    assert payloads(await b.fetch(["default"], 10, lease=30, wait=0)) == ["now"]
    clock.now += 9.999
    assert await b.fetch(["default"], 10, lease=30, wait=0) == []
    [stats] = await b.stats()
    assert stats.delayed == 1
    clock.now += 0.001
    assert payloads(await b.fetch(["default"], 10, lease=30, wait=0)) == ["later"]


async def test_fetch_waits_for_a_delayed_message_on_the_real_clock(backend: RedisBackend) -> None:
    eta = time.time() + 0.3
    await backend.enqueue([make_envelope("t", "d", eta=eta)])
    got = await backend.fetch(["default"], 10, lease=30, wait=10)
    assert payloads(got) == ["d"]
    assert time.time() >= eta


async def test_blocked_fetch_wakes_on_enqueue(make: Callable[..., RedisBackend]) -> None:
    consumer, producer = make(), make()
    task = asyncio.create_task(consumer.fetch(["q"], 10, lease=30, wait=60))
    await asyncio.sleep(0.1)  # let it block in BLPOP
    assert not task.done()
    await producer.enqueue([make_envelope("t", "wake", queue="q")])
    got = await asyncio.wait_for(task, 30)  # far below wait=60: it was woken, not timed out
    assert payloads(got) == ["wake"]


async def test_empty_fetch_with_wait_returns_empty(backend: RedisBackend) -> None:
    assert await backend.fetch(["nothing"], 10, lease=30, wait=0.05) == []
    assert await backend.fetch([], 10, lease=30, wait=0) == []


async def test_lease_expiry_redelivers_and_stale_settle_is_noop(
    make: Callable[..., RedisBackend],
) -> None:
    clock = FakeClock()
    a, b = make(clock=clock), make(clock=clock)
    await a.enqueue([make_envelope("t", "x")])
    [old] = await a.fetch(["default"], 1, lease=5, wait=0)
    assert await b.fetch(["default"], 1, lease=5, wait=0) == []  # still leased
    clock.now += 5
    [new] = await b.fetch(["default"], 1, lease=5, wait=0)  # lost worker recovery
    assert new.body == old.body and new.receipt != old.receipt
    await a.settle([Settlement(old, "ack")])  # stale: must not remove b's message
    await a.extend([old], 100)  # stale: must not revive anything
    [stats] = await a.stats()
    assert (stats.in_flight, stats.processed) == (1, 0)
    await b.settle([Settlement(new, "ack")])
    [stats] = await a.stats()
    assert (stats.in_flight, stats.processed) == (0, 1)


async def test_stats_count_a_lapsed_lease_as_ready(make: Callable[..., RedisBackend]) -> None:
    """Like the task browser and the SQL backends: a lease that ran out is ready again (the
    next fetch takes it back), not in flight."""
    clock = FakeClock()
    b = make(clock=clock)
    await b.enqueue([make_envelope("t", "x")])
    await b.fetch(["default"], 1, lease=5, wait=0)
    [held] = await b.stats()
    assert (held.ready, held.in_flight) == (0, 1)
    clock.now += 6
    [lapsed] = await b.stats()
    assert (lapsed.ready, lapsed.in_flight) == (1, 0)
    assert (await b.browse("default", "ready", 10, 0))[1] == 1


async def test_extend_keeps_the_lease(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock()
    a, b = make(clock=clock), make(clock=clock)
    await a.enqueue([make_envelope("t", "long")])
    [d] = await a.fetch(["default"], 1, lease=5, wait=0)
    clock.now += 4
    await a.extend([d], 5)
    clock.now += 4  # 8 s after fetch, 4 s after extend
    assert await b.fetch(["default"], 1, lease=5, wait=0) == []
    clock.now += 1
    assert len(await b.fetch(["default"], 1, lease=5, wait=0)) == 1


async def test_two_instances_never_get_the_same_message(
    make: Callable[..., RedisBackend],
) -> None:
    a, b = make(), make()
    await a.enqueue([make_envelope("t", i) for i in range(600)])
    seen: list[int] = []

    async def drain(backend: RedisBackend) -> None:
        while got := await backend.fetch(["default"], 7, lease=30, wait=0):
            seen.extend(int(p) for p in payloads(got))  # type: ignore[call-overload]
            await backend.settle([Settlement(d, "ack") for d in got])
            await asyncio.sleep(0)

    await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    assert sorted(seen) == list(range(600))


async def test_retry_release_and_attempt_history(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock()
    b = make(clock=clock)
    await b.enqueue([make_envelope("t", "r"), make_envelope("t", "l", priority=1)])
    rel, ret = await b.fetch(["default"], 2, lease=30, wait=0)
    env = decode(ret.body)
    nxt = env.next_attempt(AttemptRecord(env.attempt + 1, clock.now, "boom"))
    await b.settle([Settlement(rel, "release"),
                    Settlement(ret, "retry", body=encode(nxt), eta=clock.now + 60)])
    assert payloads(await b.fetch(["default"], 10, lease=300, wait=0)) == ["l"]
    clock.now += 60
    [again] = await b.fetch(["default"], 10, lease=30, wait=0)
    assert decode(again.body).attempt == 1
    assert decode(again.body).history[0].error == "boom"
    [stats] = await b.stats()
    assert stats.failed == 1


async def test_dead_letters_list_replay_purge(backend: RedisBackend) -> None:
    await backend.enqueue([make_envelope("t", i, queue="q", priority=2) for i in range(3)]
                          + [make_envelope("t", "other", queue="other")])
    got = await backend.fetch(["q", "other"], 10, lease=30, wait=0)
    await backend.settle([Settlement(d, "dead", reason=f"bad\n{i}") for i, d in enumerate(got)])
    dead = await backend.dead_letters()
    assert len(dead) == 4 and {d.reason for d in dead} == {f"bad\n{i}" for i in range(4)}
    assert [d.queue for d in await backend.dead_letters("other")] == ["other"]
    assert len(await backend.dead_letters(limit=2, offset=3)) == 1
    stats = {s.queue: s for s in await backend.stats()}
    assert (stats["q"].dead, stats["q"].failed) == (3, 3)

    first = (await backend.dead_letters("q"))[0]
    assert await backend.replay_dead([first.id]) == 1
    assert await backend.replay_dead([first.id]) == 0  # already replayed
    [replayed] = await backend.fetch(["q"], 10, lease=30, wait=0)
    env, orig = decode(replayed.body), decode(first.body)
    assert env.payload == orig.payload and env.priority == 2
    assert env.id != orig.id and env.attempt == 0 and env.history == ()

    assert await backend.purge_dead(queue="other") == 1
    assert await backend.replay_dead(queue="q") == 2
    assert await backend.dead_letters() == []
    assert len(await backend.fetch(["q"], 10, lease=30, wait=0)) == 2


async def test_dead_keeps_original_body_when_none_given(backend: RedisBackend) -> None:
    env = make_envelope("t", {"k": 1})
    await backend.enqueue([env])
    [d] = await backend.fetch(["default"], 1, lease=30, wait=0)
    await backend.settle([Settlement(d, "dead", reason="r")])
    [dead] = await backend.dead_letters()
    assert dead.id == env.id and decode(dead.body) == env


async def test_unique_key_held_until_ack_or_dead(backend: RedisBackend) -> None:
    first = make_envelope("t", 1, unique_key="u")
    [r1] = await backend.enqueue([first])
    [r2] = await backend.enqueue([make_envelope("t", 2, unique_key="u")])
    assert not r1.duplicate and r2.duplicate and r2.id == first.id
    [d] = await backend.fetch(["default"], 1, lease=30, wait=0)
    await backend.settle([Settlement(d, "retry", body=d.body)])  # retry keeps it held
    assert (await backend.enqueue([make_envelope("t", 3, unique_key="u")]))[0].duplicate
    [d] = await backend.fetch(["default"], 1, lease=30, wait=0)
    await backend.settle([Settlement(d, "ack")])
    [r4] = await backend.enqueue([make_envelope("t", 4, unique_key="u")])
    assert not r4.duplicate
    [d] = await backend.fetch(["default"], 1, lease=30, wait=0)
    await backend.settle([Settlement(d, "dead", reason="x")])
    assert not (await backend.enqueue([make_envelope("t", 5, unique_key="u")]))[0].duplicate


async def test_idempotency_key_dedupes_for_a_day(backend: RedisBackend) -> None:
    env = make_envelope("t", 1, idempotency_key="k")
    results = await backend.enqueue([env, make_envelope("t", 2, idempotency_key="k")])
    assert [r.duplicate for r in results] == [False, True] and results[1].id == env.id
    [d] = await backend.fetch(["default"], 10, lease=30, wait=0)
    await backend.settle([Settlement(d, "ack")])
    assert (await backend.enqueue([make_envelope("t", 3, idempotency_key="k")]))[0].duplicate
    ttl = await backend._redis().ttl(backend._keys.idem("default", "k"))
    assert 86_000 < ttl <= 86_400


async def test_stats_counts_every_state(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock()
    b = make(clock=clock)
    await b.enqueue([make_envelope("t", i, queue="s") for i in range(4)]
                    + [make_envelope("t", "d", queue="s", eta=clock.now + 5)])
    a1, a2, _ = await b.fetch(["s"], 3, lease=30, wait=0)
    await b.settle([Settlement(a1, "ack"), Settlement(a2, "dead", reason="x")])
    [s] = await b.stats()
    assert (s.queue, s.ready, s.delayed, s.in_flight, s.dead, s.processed, s.failed) == (
        "s", 1, 1, 1, 1, 1, 1)
    clock.now += 5
    [s] = await b.stats()
    assert (s.ready, s.delayed) == (2, 0)  # due but not yet promoted counts as ready


async def test_wipe_removes_only_its_prefix(make: Callable[..., RedisBackend]) -> None:
    b = make()
    other = RedisBackend.from_url(b.settings.url, prefix=b.settings.prefix + "x")
    try:
        await b.enqueue([make_envelope("t", 1)])
        await other.enqueue([make_envelope("t", 2)])
        await b.wipe()
        assert await b.stats() == []
        assert len(await other.fetch(["default"], 10, lease=30, wait=0)) == 1
    finally:
        await other.wipe()
        await other.close()
