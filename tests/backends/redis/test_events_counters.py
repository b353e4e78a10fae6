"""Durable events, cron claims, rate-limit counters and heartbeats of the redis backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.backends.redis.conftest import FakeClock
from workhive._envelope import decode, make_envelope
from workhive.backend import Capability, Settlement, WorkerInfo, event_queue
from workhive.backends.redis import RedisBackend

pytestmark = pytest.mark.redis


def test_declares_every_capability_but_per_key_order() -> None:
    unordered = {c for c in Capability if c.value != "ordered_keys"}  # not kept per key here
    assert RedisBackend.features.capabilities == frozenset(unordered)


async def test_publish_fans_out_to_bound_groups(make: Callable[..., RedisBackend]) -> None:
    sub, pub = make(), make()
    await sub.bind("users.*", "mailer")
    await sub.bind("users.created", "crm")
    await sub.bind("users.created", "crm")  # idempotent
    await sub.bind("orders.*", "billing")
    assert await pub.publish(make_envelope("users.created", {"id": 7}, kind="event")) == 2
    assert await pub.publish(make_envelope("users.deleted", {"id": 7}, kind="event")) == 1
    mailer = await sub.fetch([event_queue("mailer")], 10, lease=30, wait=0)
    crm = await sub.fetch([event_queue("crm")], 10, lease=30, wait=0)
    assert [decode(d.body).name for d in mailer] == ["users.created", "users.deleted"]
    [c] = crm
    env = decode(c.body)
    assert (env.group, env.queue, env.payload) == ("crm", "@crm", {"id": 7})
    assert await sub.fetch([event_queue("billing")], 10, lease=30, wait=0) == []


async def test_publisher_sees_a_binding_made_after_its_cache(
    make: Callable[..., RedisBackend],
) -> None:
    sub, pub = make(), make()
    assert await pub.publish(make_envelope("e.x", None, kind="event")) == 0  # caches bindings
    await sub.bind("e.*", "late")
    assert await pub.publish(make_envelope("e.x", None, kind="event")) == 1
    assert len(await sub.fetch(["@late"], 10, lease=30, wait=0)) == 1


async def test_event_copies_retry_and_dead_letter_per_group(backend: RedisBackend) -> None:
    await backend.bind("a", "g1")
    await backend.bind("a", "g2")
    await backend.publish(make_envelope("a", 1, kind="event", idempotency_key="once"))
    await backend.publish(make_envelope("a", 1, kind="event", idempotency_key="once"))
    [d1] = await backend.fetch(["@g1"], 10, lease=30, wait=0)
    [d2] = await backend.fetch(["@g2"], 10, lease=30, wait=0)  # each group one copy
    await backend.settle([Settlement(d1, "dead", reason="x"), Settlement(d2, "dead", reason="y")])
    dead = await backend.dead_letters()
    assert sorted(d.queue for d in dead) == ["@g1", "@g2"]  # same event id, two dead letters
    assert await backend.replay_dead(queue="@g2") == 1
    [again] = await backend.fetch(["@g2"], 10, lease=30, wait=0)
    assert decode(again.body).group == "g2"


async def test_claim_tick_once_across_instances(make: Callable[..., RedisBackend]) -> None:
    instances = [make() for _ in range(4)]
    wins = await asyncio.gather(*(b.claim_tick("report", 1_700_000_000.0)
                                  for b in instances for _ in range(5)))
    assert sum(wins) == 1
    assert await instances[0].claim_tick("report", 1_700_000_060.0)
    assert await instances[1].claim_tick("other", 1_700_000_000.0)


async def test_fixed_window_at_its_boundaries(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock(1_000_000.0)  # a multiple of the period: the start of a window
    a, b = make(clock=clock), make(clock=clock)
    assert await a.hit_window("deletions", 10, 2) == (True, 0.0)
    clock.now += 5
    assert await b.hit_window("deletions", 10, 2) == (True, 0.0)  # shared across instances
    clock.now += 4.5
    allowed, retry = await a.hit_window("deletions", 10, 2)
    assert not allowed and retry == pytest.approx(0.5)
    clock.now += 0.499
    allowed, retry = await a.hit_window("deletions", 10, 2)
    assert not allowed and retry == pytest.approx(0.001)
    clock.now = 1_000_010.0  # the next window starts exactly here
    assert await a.hit_window("deletions", 10, 2) == (True, 0.0)
    assert await a.hit_window("other-key", 10, 1) == (True, 0.0)
    assert (await a.hit_window("other-key", 10, 1))[0] is False


async def test_daily_limits_of_seed_003(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock(86_400.0 * 20_000 + 86_399.0)  # one second before midnight
    b = make(clock=clock)
    results = [(await b.hit_window("email:user-1", 86_400, 2))[0] for _ in range(3)]
    assert results == [True, True, False]
    assert (await b.hit_window("email:user-2", 86_400, 2))[0]  # per user
    clock.now += 1  # midnight: a new day
    assert (await b.hit_window("email:user-1", 86_400, 2))[0]


async def test_token_bucket(make: Callable[..., RedisBackend]) -> None:
    clock = FakeClock(5_000.0)
    b = make(clock=clock)
    assert await b.take_token("api", 2.0, 2) == (True, 0.0)
    assert await b.take_token("api", 2.0, 2) == (True, 0.0)
    allowed, retry = await b.take_token("api", 2.0, 2)
    assert not allowed and retry == pytest.approx(0.5)
    clock.now += 0.5
    assert (await b.take_token("api", 2.0, 2))[0]
    clock.now += 100  # refills only up to burst
    assert [(await b.take_token("api", 2.0, 2))[0] for _ in range(3)] == [True, True, False]


async def test_token_bucket_on_the_redis_clock(backend: RedisBackend) -> None:
    assert (await backend.take_token("real", 1000.0, 1))[0]
    allowed, retry = await backend.take_token("real", 0.001, 1)
    assert not allowed and retry > 0


async def test_counters_reject_nonsense(backend: RedisBackend) -> None:
    with pytest.raises(ValueError):
        await backend.hit_window("k", 0, 1)
    with pytest.raises(ValueError):
        await backend.take_token("k", 0, 1)


async def test_heartbeats_expire(backend: RedisBackend) -> None:
    now = time.time()
    info = WorkerInfo("w1", "host", 123, ["default"], 10, now, now, {"v": 1})
    await backend.heartbeat(info, ttl=30)
    await backend.heartbeat(WorkerInfo("w2", "h", 1, [], 1, now, now), ttl=0.05)
    await asyncio.sleep(0.2)
    assert await backend.workers() == [info]
    await backend.forget_worker("w1")
    assert await backend.workers() == []
