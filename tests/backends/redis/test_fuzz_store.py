"""Garbage in any stored Redis field never wedges a queue, and no good message is lost.

For every field of every key the backend writes (hash fields, list elements, sorted-set and
set members, plain strings), each value of ``GARBAGE`` is written in its place; then good
messages enqueued on the same queue must still be fetched and settled through every action.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from tests._services import unique_name
from tests.backends._fuzz import GARBAGE, assert_queue_flows, seed
from tests.backends.redis.conftest import FakeClock
from workhive import Hive, Module
from workhive._envelope import make_envelope
from workhive.backend import WorkerInfo
from workhive.backends.redis import RedisBackend
from workhive.backends.redis.keys import Layout
from workhive.testing import run_until_idle

pytestmark = pytest.mark.redis

Target = tuple[bytes, str, bytes | None]  # key, redis type, field / member / index


async def _seed_everything(backend: RedisBackend, queue: str, clock: FakeClock) -> None:
    await seed(backend, queue, clock.now)
    await backend.bind("fz.*", "grp")
    await backend.publish(make_envelope("fz.ev", {}, kind="event"))
    await backend.hit_window("rk", 60, 5)
    await backend.take_token("tk", 1.0, 5)
    await backend.heartbeat(WorkerInfo("w1", "h", 1, [queue], 1, 0.0, 0.0), 3600)
    await backend.claim_key("ck", "holder", None)


async def _targets(r: Redis, prefix: str) -> list[Target]:
    out: list[Target] = []
    keys = [k for pattern in Layout(prefix, cluster=False).patterns()
            async for k in r.scan_iter(match=pattern)]
    for key in keys:
        kind = (await r.type(key)).decode()
        if kind == "hash":
            out += [(key, kind, f) for f in await r.hkeys(key)]
        elif kind == "list":
            out += [(key, kind, str(i).encode()) for i in range(await r.llen(key))]
        elif kind in {"zset", "set"}:
            members = await (r.zrange(key, 0, -1) if kind == "zset" else r.smembers(key))
            out += [(key, kind, m) for m in members]
        else:
            out.append((key, kind, None))
    return sorted(out)


async def _corrupt(r: Redis, target: Target, value: bytes) -> None:
    key, kind, field = target
    assert field is not None or kind == "string"
    if kind == "hash":
        await r.hset(key, field, value)  # type: ignore[arg-type]
    elif kind == "list":
        await r.lset(key, int(field or 0), value)
    elif kind == "zset":
        score = await r.zscore(key, field)  # type: ignore[arg-type]
        await r.zrem(key, field)  # type: ignore[arg-type]
        await r.zadd(key, {value: score or 0.0})
    elif kind == "set":
        await r.srem(key, field)  # type: ignore[arg-type]
        await r.sadd(key, value)
    else:
        await r.set(key, value)


async def test_garbage_in_any_stored_field_keeps_the_queue_flowing(redis_url: str) -> None:
    r = Redis.from_url(redis_url)
    cases = 0
    try:
        # discover the structures once, with a throwaway prefix
        probe = unique_name("fzp")
        clock = FakeClock()
        backend = RedisBackend.from_url(redis_url, prefix=probe, clock=clock)
        await _seed_everything(backend, "q", clock)
        layout = [(k.replace(probe.encode(), b"<P>", 1), kind, f)
                  for k, kind, f in await _targets(r, probe)]
        await backend.wipe()
        await backend.close()
        kinds = {kind for _, kind, _ in layout}
        assert kinds >= {"hash", "list", "zset", "set", "string"}, kinds

        for template, kind, field in layout:
            for label, value in GARBAGE.items():
                prefix = unique_name("fz")
                clock = FakeClock()
                backend = RedisBackend.from_url(redis_url, prefix=prefix, clock=clock)
                await _seed_everything(backend, "q", clock)
                target = (template.replace(b"<P>", prefix.encode(), 1), kind, field)
                await _corrupt(r, target, value)

                async def later(clock: FakeClock = clock) -> None:
                    clock.now += 100  # due: delayed seeds, expired leases

                try:
                    await assert_queue_flows(backend, "q", later)
                    await backend.publish(make_envelope("fz.ev", {}, kind="event"))
                    await backend.hit_window("rk", 60, 5)
                    await backend.take_token("tk", 1.0, 5)
                    await backend.workers()
                    await backend.claim_key("ck", "other", None)
                except Exception as exc:
                    raise AssertionError(
                        f"{kind} {template!r} field {field!r} = {label}: {exc!r}") from exc
                finally:
                    await backend.wipe()
                    await backend.close()
                cases += 1
    finally:
        await r.aclose()
    print(f"redis store fuzz: {cases} cases over {len(layout)} fields")
    assert cases == len(layout) * len(GARBAGE)


async def test_corrupt_priority_of_a_delayed_message_goes_to_dlq_and_queue_flows(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported wedge: a delayed message whose stored priority is not an int."""
    prefix = unique_name("fz")
    m, ran = Module("w"), []

    @m.task("w:t")
    async def t(p: dict[str, Any]) -> None:
        ran.append(p["i"])

    hive = Hive(RedisBackend.from_url(redis_url, prefix=prefix))
    hive.include(m)
    r = Redis.from_url(redis_url)
    try:
        bad = await hive.enqueue("w:t", {"i": 0}, priority=1, delay=0.05)
        meta = Layout(prefix, cluster=False).key("default", "meta")
        await r.hset(meta, bad.id, b"high")  # as an old version wrote
        for i in range(1, 4):
            await hive.enqueue("w:t", {"i": i})
        await asyncio.sleep(0.06)  # the delay falls due (any longer wait is as good)
        with caplog.at_level(logging.ERROR, logger="workhive.backends.redis"):
            await run_until_idle(hive)
        assert sorted(ran) == [1, 2, 3]
        (letter,) = await hive.backend.dead_letters()  # type: ignore[attr-defined]
        assert letter.id == bad.id and "corrupt stored priority" in letter.reason
        assert any(bad.id in rec.getMessage() and "dead-letter" in rec.getMessage()
                   for rec in caplog.records)
        await hive.enqueue("w:t", {"i": 4})
        await run_until_idle(hive)
        assert sorted(ran) == [1, 2, 3, 4]
    finally:
        await hive.backend.wipe()  # type: ignore[attr-defined]
        await hive.close()
        await r.aclose()


async def test_ready_id_without_body_is_dropped_with_an_error_log(
    backend: RedisBackend, prefix: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = Redis.from_url(redis_url)
    try:
        ready = Layout(prefix, cluster=False).key("default", "ready")
        await r.rpush(ready, b"ghost")
        good = make_envelope("t", {}, queue="default")
        await backend.enqueue([good])
        with caplog.at_level(logging.ERROR, logger="workhive.backends.redis"):
            got = await backend.fetch(["default"], 10, lease=30, wait=0)
        assert [d.receipt.split(b"|", 1)[1].decode() for d in got] == [good.id]
        assert any("ghost" in rec.getMessage() and "dropped" in rec.getMessage()
                   for rec in caplog.records)
        assert await backend.dead_letters() == []
    finally:
        await r.aclose()
