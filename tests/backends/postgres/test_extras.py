"""Events, cron ticks, counters, dead letters, stats and heartbeats on the real server."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import pytest

from workhive._envelope import decode, encode, make_envelope
from workhive.backend import Settlement, WorkerInfo
from workhive.backends.postgres import PostgresBackend

pytestmark = pytest.mark.postgres
Make = Callable[..., PostgresBackend]


async def _bury(backend: PostgresBackend, queue: str, n: int) -> list[str]:
    await backend.enqueue([make_envelope("t:dead", i, queue=queue, attempt=3) for i in range(n)])
    got = await backend.fetch([queue], n, lease=30, wait=0)
    await backend.settle([Settlement(d, "dead", reason=f"boom {queue}") for d in got])
    return [decode(d.body).id for d in got]


async def test_dead_letters_list_replay_and_purge(backend: PostgresBackend) -> None:
    a_ids = await _bury(backend, "a", 3)
    await _bury(backend, "b", 2)
    dead = await backend.dead_letters()
    assert [d.id for d in dead][:3] == a_ids and len(dead) == 5
    assert dead[0].reason == "boom a" and dead[0].failed_at > 0
    assert [d.id for d in await backend.dead_letters("a", limit=1, offset=1)] == [a_ids[1]]
    assert await backend.replay_dead([a_ids[0]]) == 1
    (fresh,) = await backend.fetch(["a"], 10, lease=30, wait=0)
    replayed = decode(fresh.body)
    assert replayed.id != a_ids[0] and replayed.attempt == 0 and replayed.payload == 0
    assert await backend.purge_dead(queue="b") == 2
    assert await backend.replay_dead(queue="a") == 2
    assert await backend.dead_letters() == []
    assert await backend.purge_dead() == 0


async def test_malformed_dead_letter_stays_put_on_replay(backend: PostgresBackend) -> None:
    await backend.enqueue([make_envelope("t:x", 1, queue="m")])
    (d,) = await backend.fetch(["m"], 1, lease=30, wait=0)
    await backend.settle([Settlement(d, "dead", body=b"\xc1 junk", reason="malformed")])
    assert await backend.replay_dead() == 0
    (still,) = await backend.dead_letters()
    assert still.body == b"\xc1 junk"


async def test_fan_out_to_bound_groups(make: Make) -> None:
    a, b = make(), make()
    await a.bind("orders.*", "billing")
    await b.bind("orders.created", "shipping")
    await b.bind("orders.created", "shipping")  # idempotent
    event = make_envelope("orders.created", {"n": 1}, kind="event", idempotency_key="e1")
    assert await a.publish(event) == 2
    assert await a.publish(event) == 2  # copies are deduped per group by the scoped key...
    assert await b.publish(make_envelope("orders.paid", {}, kind="event")) == 1
    assert await b.publish(make_envelope("users.made", {}, kind="event")) == 0
    billing = await b.fetch(["@billing"], 10, lease=30, wait=0)
    shipping = await b.fetch(["@shipping"], 10, lease=30, wait=0)
    assert len(billing) == 2 and len(shipping) == 1  # ...so each group holds one copy of e1
    copy = decode(shipping[0].body)
    assert (copy.id, copy.group, copy.queue) == (f"{event.id}@shipping", "shipping", "@shipping")


async def test_claim_tick_once_across_instances(make: Make) -> None:
    backends = [make() for _ in range(4)]
    results = await asyncio.gather(*(b.claim_tick("job", 60.0) for b in backends for _ in range(3)))
    assert results.count(True) == 1
    assert await backends[0].claim_tick("job", 120.0)
    assert await backends[1].claim_tick("other", 60.0)


async def test_hit_window_boundaries(make: Make) -> None:
    a, b = make(), make()
    for x in (a, b):  # connect first: a first call's connect must not push a hit past the window
        await x.hit_window("warm-up", 60, 1)
    period = 0.5
    # start just after a window boundary so three hits land in one window
    await asyncio.sleep(period - time.time() % period + 0.02)
    assert await a.hit_window("k", period, 2) == (True, 0.0)
    assert await b.hit_window("k", period, 2) == (True, 0.0)
    allowed, retry_after = await a.hit_window("k", period, 2)
    assert not allowed and 0 < retry_after <= period
    await asyncio.sleep(retry_after + 0.01)  # the next window starts empty
    assert (await b.hit_window("k", period, 2))[0]
    assert (await a.hit_window("other", period, 2))[0]
    denied, wait = await a.hit_window("zero", period, 0)
    assert not denied and 0 < wait <= period


async def test_take_token_refills_at_rate(make: Make) -> None:
    a, b = make(), make()
    for x in (a, b):  # connect first, so the three takes below follow each other closely
        await x.take_token("warm-up", 1.0, 1)
    # 2 tokens a second: a loaded machine must spend half a second between the first and the
    # third take before a refill would let the third one through
    assert [(await x.take_token("t", 2.0, 2))[0] for x in (a, b)] == [True, True]
    allowed, retry_after = await a.take_token("t", 2.0, 2)
    assert not allowed and 0 < retry_after <= 0.5 + 1e-6
    await asyncio.sleep(retry_after + 0.02)
    assert (await b.take_token("t", 2.0, 2))[0]
    assert not (await b.take_token("t", 2.0, 2))[0]
    assert not (await a.take_token("none", 1.0, 0))[0]


async def test_stats_counts_every_state(backend: PostgresBackend) -> None:
    await backend.enqueue([make_envelope("t:x", i, queue="s") for i in range(5)])
    await backend.enqueue([make_envelope("t:x", "later", queue="s", eta=time.time() + 60)])
    got = await backend.fetch(["s"], 3, lease=30, wait=0)
    await backend.settle([
        Settlement(got[0], "ack"),
        Settlement(got[1], "retry", body=encode(make_envelope("t:x", "r", queue="s")),
                   eta=time.time() + 60),
    ])
    await _bury(backend, "s", 1)
    (stat,) = [s for s in await backend.stats() if s.queue == "s"]
    assert (stat.ready, stat.delayed, stat.in_flight) == (2, 2, 1), stat
    assert (stat.dead, stat.processed, stat.failed) == (1, 1, 2), stat


async def test_heartbeats_expire_and_can_be_forgotten(make: Make) -> None:
    a, b = make(), make()

    def info(wid: str) -> WorkerInfo:
        return WorkerInfo(wid, "host", 42, ["q"], 4, time.time(), time.time(), {"v": 1})

    await a.heartbeat(info("w1"), 30)
    await b.heartbeat(info("w2"), 0.2)
    assert [w.id for w in await b.workers()] == ["w1", "w2"]
    (w1, _) = await a.workers()
    assert (w1.queues, w1.extra, w1.pid) == (["q"], {"v": 1}, 42)
    await asyncio.sleep(0.3)
    assert [w.id for w in await a.workers()] == ["w1"]
    await b.forget_worker("w1")
    assert await a.workers() == []
    assert not math.isnan(w1.seen_at)
