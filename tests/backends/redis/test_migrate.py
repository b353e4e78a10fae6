"""Data written in the key layout before hash tags: refused until migrated, then all there.

The old layout is written here by hand, key by key, exactly as the older version's scripts
stored it (``P:q:<queue>:...`` lists per priority, a global dead-letter index, ``P:uniq:`` and
``P:idem:`` strings). Nothing of it may be lost or silently ignored.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from redis.asyncio import Redis

from tests._services import unique_name
from workhive._envelope import decode, encode, make_envelope
from workhive.backend import Settlement, WorkerInfo
from workhive.backends.redis import RedisBackend
from workhive.backends.redis.connection import LegacyLayout
from workhive.backends.redis.migrate import main

pytestmark = pytest.mark.redis


async def write_old_layout(r: Redis, p: str) -> dict[str, str]:
    envs = {name: make_envelope("t", name, queue="default", priority=5 if name == "b1" else 0)
            for name in ("a1", "a2", "b1", "d1", "l1", "x1")}
    i = {name: e.id for name, e in envs.items()}
    q = f"{p}:q:default"
    await r.hset(f"{q}:body", mapping={e.id: encode(e) for n, e in envs.items() if n != "x1"})
    await r.hset(f"{q}:meta", mapping={i["b1"]: "5", i["a2"]: "0|t:u1"})
    await r.rpush(f"{q}:r:0", i["a1"], i["a2"])
    await r.rpush(f"{q}:r:5", i["b1"])
    await r.zadd(f"{q}:prios", {"0": 0, "5": -5})
    await r.zadd(f"{q}:delayed", {i["d1"]: time.time() + 2.0})
    await r.zadd(f"{q}:lease", {f"7|{i['l1']}": time.time() - 1})  # its worker died: expired
    await r.set(f"{p}:seq", 7)
    await r.hset(f"{q}:stats", mapping={"processed": 3, "failed": 1})
    await r.rpush(f"{q}:wake", "1")
    await r.hset(f"{p}:dead:body", i["x1"], encode(envs["x1"]))
    await r.hset(f"{p}:dead:info", i["x1"], "1700000000.000000|7|defaultboom: it failed")
    await r.zadd(f"{p}:dead:idx", {i["x1"]: 1_700_000_000})
    await r.zadd(f"{q}:dead", {i["x1"]: 1_700_000_000})
    await r.set(f"{p}:uniq:t:u1", i["a2"])
    await r.set(f"{p}:idem:k1", i["a1"], ex=3600)
    await r.hset(f"{p}:bindings", "ev.*\ngrp", 1)
    await r.set(f"{p}:bind:ver", 3)
    beat = WorkerInfo("w1", "host", 1, ["default"], 1, time.time(), time.time())
    await r.set(f"{p}:w:w1", msgspec.msgpack.encode(beat), px=600_000)
    await r.sadd(f"{p}:workers", "w1")
    await r.sadd(f"{p}:queues", "default")
    return i


async def test_old_layout_is_refused_then_migrated_whole(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = unique_name("mig")
    r = Redis.from_url(redis_url)
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    try:
        ids = await write_old_layout(r, prefix)
        before = sorted([k async for k in r.scan_iter(match=f"{prefix}:*")])
        with pytest.raises(LegacyLayout, match="workhive.backends.redis.migrate"):
            await backend.open()
        producer = RedisBackend.from_url(redis_url, prefix=prefix)
        with pytest.raises(LegacyLayout):  # also without open(): the first call checks
            await producer.enqueue([make_envelope("t", "new")])
        await producer.close()
        assert sorted([k async for k in r.scan_iter(match=f"{prefix}:*")]) == before
        assert [k async for k in r.scan_iter(match="{" + prefix + "*")] == []  # untouched

        assert await asyncio.to_thread(main, [redis_url, "--prefix", prefix, "--dry-run"]) == 0
        assert "would move" in capsys.readouterr().out
        assert sorted([k async for k in r.scan_iter(match=f"{prefix}:*")]) == before
        assert await asyncio.to_thread(main, [redis_url, "--prefix", prefix]) == 0
        out = capsys.readouterr().out
        assert "5 messages" in out and "1 dead letters" in out and "1 leased" in out, out
        left = sorted([k async for k in r.scan_iter(match=f"{prefix}:*")])
        assert left == [f"{prefix}:w:w1".encode(), f"{prefix}:workers".encode()]  # same names

        await backend.open()
        got = await backend.fetch(["default"], 10, lease=30, wait=0)
        # priority first; the expired lease comes back first among its priority, FIFO after
        assert [decode(d.body).payload for d in got][:4] == ["b1", "l1", "a1", "a2"]
        # the delayed one comes after them: later, or in this batch on a machine slow enough
        # that its eta passed during the migration
        later = got.pop(4) if len(got) == 5 else (
            await backend.fetch(["default"], 10, lease=30, wait=10))[0]
        assert decode(later.body).payload == "d1"
        dup = await backend.enqueue([make_envelope("t", "u", unique_key="t:u1"),
                                     make_envelope("t", "i", idempotency_key="k1")])
        assert [(x.id, x.duplicate) for x in dup] == [(ids["a2"], True), (ids["a1"], True)]
        await backend.settle([Settlement(d, "ack") for d in [*got, later]])
        assert not (await backend.enqueue([make_envelope("t", "u", unique_key="t:u1")]))[0] \
            .duplicate  # the migrated unique key was released by the ack of its holder
        [letter] = await backend.dead_letters()
        assert (letter.id, letter.queue, letter.reason) == (ids["x1"], "default",
                                                           "boom: it failed")
        [stats] = [s for s in await backend.stats() if s.queue == "default"]
        assert (stats.processed, stats.dead) == (3 + 5, 1)
        assert await backend.publish(make_envelope("ev.x", None, kind="event")) == 1
        assert [w.id for w in await backend.workers()] == ["w1"]  # heartbeats kept their keys
        # a second run finds nothing
        assert await asyncio.to_thread(main, [redis_url, "--prefix", prefix]) == 0
        assert capsys.readouterr().out.strip() == "moved: 0 queues"
    finally:
        await backend.wipe()
        await backend.close()
        await r.aclose()


def test_cluster_urls_have_nothing_to_migrate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redis+cluster://127.0.0.1:1", "--prefix", "x"]) == 2
    assert "never ran on Redis Cluster" in capsys.readouterr().err
