"""The redis backend on a three-master Redis Cluster: what spans queues spans nodes.

Queues are picked so that each master holds at least one; every call that takes several
queues (fetch, settle, stats, dead-letter listings, publish to several groups, wipe) must then
reach all three masters. The conformance suite runs on the same cluster in
test_cluster_conformance.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from tests.backends.redis.cluster import RedisCluster, spread_queues
from tests.backends.redis.conftest import FakeClock
from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement, WorkerInfo
from workhive.backends.redis import RedisBackend, lua
from workhive.backends.redis.keys import BUNDLE, Layout
from workhive.backends.redis.pubsub import RedisPubSubBackend

pytestmark = [pytest.mark.redis, pytest.mark.integration]


async def keys_per_master(cluster: RedisCluster, prefix: str) -> list[int]:
    counts = []
    for port in cluster.ports:
        r = Redis(port=port)
        try:
            found = 0
            for pattern in Layout(prefix, cluster=True).patterns():
                found += len([k async for k in r.scan_iter(match=pattern)])
            counts.append(found)
        finally:
            await r.aclose()
    return counts


async def test_one_call_spans_every_master(
    cluster_make: Callable[..., RedisBackend], redis_cluster: RedisCluster, prefix: str
) -> None:
    backend = cluster_make()
    await backend.open()
    queues = await spread_queues(backend)
    await backend.enqueue([make_envelope("t", i, queue=q, priority=i % 2)
                           for i in range(30) for q in queues])
    assert all(n > 0 for n in await keys_per_master(redis_cluster, prefix))

    got = await backend.fetch(queues, 1000, lease=30, wait=0)
    assert len(got) == 30 * len(queues)
    assert [d.queue for d in got] == [q for q in queues for _ in range(30)]  # queue order
    for q in queues:  # priority first, FIFO within a priority
        mine = [decode(d.body).payload for d in got if d.queue == q]
        assert mine == [i for i in range(30) if i % 2] + [i for i in range(30) if not i % 2]
    await backend.extend(got, 60)
    await backend.settle([Settlement(d, "ack") for d in got])
    stats = {s.queue: s for s in await backend.stats()}
    assert set(stats) == set(queues)
    assert all((s.processed, s.ready, s.in_flight) == (30, 0, 0) for s in stats.values())

    await backend.wipe()
    assert await keys_per_master(redis_cluster, prefix) == [0, 0, 0]


async def test_dead_letters_across_masters_oldest_first(
    cluster_make: Callable[..., RedisBackend],
) -> None:
    clock = FakeClock()
    backend = cluster_make(clock=clock)
    queues = await spread_queues(backend)
    ids = []
    for i in range(6):  # one letter at a time, a second apart, round-robin over the masters
        env = make_envelope("t", i, queue=queues[i % 3])
        ids.append(env.id)
        await backend.enqueue([env])
        [d] = await backend.fetch([env.queue], 1, lease=30, wait=0)
        await backend.settle([Settlement(d, "dead", reason=f"r{i}")])
        clock.now += 1
    assert [d.id for d in await backend.dead_letters()] == ids
    assert [d.id for d in await backend.dead_letters(limit=2, offset=3)] == ids[3:5]
    assert [d.id for d in await backend.dead_letters(queues[1])] == [ids[1], ids[4]]
    assert {s.queue: s.dead for s in await backend.stats()} == dict.fromkeys(queues, 2)

    assert await backend.replay_dead([ids[0], ids[4]]) == 2  # ids only: found on their master
    assert await backend.purge_dead([ids[1]]) == 1
    assert [d.id for d in await backend.dead_letters()] == [ids[2], ids[3], ids[5]]
    replayed = await backend.fetch(queues, 10, lease=30, wait=0)
    assert sorted(decode(d.body).payload for d in replayed) == [0, 4]
    assert await backend.replay_dead() == 3
    assert await backend.dead_letters() == []


async def test_publish_fans_out_to_groups_on_every_master(
    cluster_make: Callable[..., RedisBackend],
) -> None:
    sub, pub = cluster_make(), cluster_make()
    # groups whose copies' queues ("@<group>") are on every master
    groups = [q[1:] for q in await spread_queues(sub, prefix="@g")]
    assert await pub.publish(make_envelope("e.x", None, kind="event")) == 0  # caches bindings
    for g in groups:
        await sub.bind("e.*", g)
    assert await pub.publish(make_envelope("e.x", {"n": 1}, kind="event",
                                           idempotency_key="once")) == len(groups)
    assert await pub.publish(make_envelope("e.x", {"n": 1}, kind="event",
                                           idempotency_key="once")) == len(groups)
    got = await sub.fetch([f"@{g}" for g in groups], 100, lease=30, wait=0)
    assert sorted(d.queue for d in got) == sorted(f"@{g}" for g in groups)  # once per group


async def test_idle_fetch_wakes_on_a_queue_of_any_master(
    cluster_make: Callable[..., RedisBackend],
) -> None:
    consumer, producer = cluster_make(), cluster_make()
    queues = await spread_queues(consumer)
    waiting = asyncio.create_task(consumer.fetch(queues, 10, lease=30, wait=60))
    await asyncio.sleep(0.2)  # blocked: one BLPOP per master
    assert not waiting.done()
    await producer.enqueue([make_envelope("t", "wake", queue=queues[-1])])
    got = await asyncio.wait_for(waiting, 30)  # far below wait=60: woken, not timed out
    assert [d.queue for d in got] == [queues[-1]]


async def test_unique_and_idempotency_keys_dedupe_within_a_queue(
    cluster_make: Callable[..., RedisBackend],
) -> None:
    backend = cluster_make()
    a, b = (await spread_queues(backend))[:2]
    first = await backend.enqueue([make_envelope("t", 1, queue=a, unique_key="u",
                                                 idempotency_key="i")])
    again = await backend.enqueue([make_envelope("t", 2, queue=a, unique_key="u"),
                                   make_envelope("t", 3, queue=a, idempotency_key="i")])
    assert [r.duplicate for r in first + again] == [False, True, True]
    other = await backend.enqueue([make_envelope("t", 4, queue=b, unique_key="u",
                                                 idempotency_key="i")])
    assert not other[0].duplicate  # documented: on a cluster the keys are scoped per queue


def test_every_key_of_a_queue_shares_one_slot() -> None:
    layout = Layout("app", cluster=True)
    for queue in ["default", "@billing", "}", "{", "a}b{c", "{x}", "ü-queue", "a:b", " "]:
        slots = {layout.slot(k) for k in layout.bundle(queue)}
        slots.add(layout.slot(layout.idem(queue, "some {key}")))
        assert slots == {layout.queue_slot(queue)}, queue
    # prefix-wide keys share theirs: a binding and its version change in one script
    assert layout.slot(layout.bindings) == layout.slot(layout.bind_ver)


def test_scripts_touch_only_keys_they_were_given() -> None:
    """Every redis.call names its key through KEYS (directly, or a queue bundle's field)."""
    allowed = re.compile(r"^(KEYS\[|q\.|Q\[|k$|key$|registry$)")
    keyless = {"TIME"}
    sources = {name: getattr(lua, name) for name in dir(lua)
               if name.isupper() and isinstance(getattr(lua, name), str)}
    seen = 0
    for name, source in sources.items():
        for cmd, first in re.findall(r"redis\.p?call\('([A-Z]+)'(?:,\s*([^,)]+))?", source):
            if cmd in keyless:
                continue
            assert first and allowed.match(first.strip()), (name, cmd, first)
            seen += 1
        for first in re.findall(r"chunked\([^,]+,\s*([^,]+),", source):
            assert allowed.match(first.strip()) or first.strip() == "key", (name, first)
    assert seen > 50
    assert f"local b = (i - 1) * {len(BUNDLE)}" in lua._QUEUES  # the bundle Lua unpacks


async def test_one_seed_node_finds_the_others(redis_cluster: RedisCluster) -> None:
    port = redis_cluster.ports[0]
    one_seed = RedisBackend.from_url(f"redis://127.0.0.1:{port}?cluster=true", prefix="x")
    assert one_seed.settings.mode == "cluster"
    try:
        await one_seed.open()
        assert len(one_seed._redis().get_primaries()) == 3  # type: ignore[union-attr]
    finally:
        await one_seed.close()


async def test_pubsub_backend_on_a_cluster(redis_cluster: RedisCluster, prefix: str) -> None:
    """Redis forwards a PUBLISH to every node: a listener on one node hears events published
    through the others (the keys of the channel names spread over every master)."""
    url = f"redis-pubsub://127.0.0.1:{redis_cluster.ports[1]}?cluster=true"
    sub = RedisPubSubBackend.from_url(url, prefix=prefix)
    pub = RedisPubSubBackend.from_url(url, prefix=prefix)
    try:
        await sub.bind("a.*", "g")
        for i in range(12):
            assert await pub.publish(make_envelope(f"a.{i}", i, kind="event")) is None
        got: list[object] = []
        for _ in range(100):  # a deadline only against a hang
            got += [decode(d.body).payload for d in await sub.fetch(["@g"], 50, lease=0, wait=1)]
            if len(got) >= 12:
                break
        assert sorted(got) == list(range(12))  # type: ignore[type-var]
    finally:
        await sub.close()
        await pub.close()


async def test_heartbeats_cron_and_limits_on_a_cluster(
    cluster_make: Callable[..., RedisBackend],
) -> None:
    """Single keys on whichever master owns them: heartbeats (and their index), cron claims,
    rate-limit counters, key claims."""
    a, b = cluster_make(), cluster_make()
    now = time.time()
    for i in range(6):  # heartbeat keys spread over the masters
        await a.heartbeat(WorkerInfo(f"w{i}", "h", i, ["q"], 1, now, now), ttl=60)
    assert sorted(w.id for w in await b.workers()) == [f"w{i}" for i in range(6)]
    await b.forget_worker("w0")
    assert len(await a.workers()) == 5
    wins = await asyncio.gather(*(x.claim_tick("job", 1_700_000_000.0) for x in (a, b) * 3))
    assert sum(wins) == 1
    assert [(await x.hit_window("k", 3600, 2))[0] for x in (a, b, a)] == [True, True, False]
    assert await a.claim_key("c", "a", 60) == "a" and await b.claim_key("c", "b", 60) == "a"
