"""NATS as its own coordination store: claims, counters and heartbeats under contention from two
clients (two connections, as two processes would have), plus event routing details."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from workhive import Hive, Module
from workhive.backend import WorkerInfo
from workhive.backends.nats import NatsBackend
from workhive.backends.nats.naming import filters_for, subject_matches, token, untoken
from workhive.errors import ValidationError
from workhive.testing import run_until_idle


@pytest.fixture
async def pair(make: Callable[..., NatsBackend]) -> tuple[NatsBackend, NatsBackend]:
    a, b = make(), make()
    await a.open()
    await b.open()
    return a, b


async def test_cron_tick_claimed_once(pair: tuple[NatsBackend, NatsBackend]) -> None:
    a, b = pair
    results = await asyncio.gather(*(c.claim_tick("job", 1234.0) for c in (a, b) * 10))
    assert results.count(True) == 1
    assert await a.claim_tick("job", 1235.0) and await b.claim_tick("other", 1234.0)


async def test_window_counter_is_exact_under_contention(
        pair: tuple[NatsBackend, NatsBackend]) -> None:
    a, b = pair
    results = await asyncio.gather(*(c.hit_window("k", 3600, 10) for c in (a, b) * 15))
    allowed = [ok for ok, _ in results]
    assert allowed.count(True) == 10
    assert all(0 < wait <= 3600 for ok, wait in results if not ok)


async def test_token_bucket_under_contention(pair: tuple[NatsBackend, NatsBackend]) -> None:
    a, b = pair
    results = await asyncio.gather(*(c.take_token("tb", 0.01, 5) for c in (a, b) * 6))
    assert [ok for ok, _ in results].count(True) == 5
    ok, wait = await a.take_token("tb", 0.01, 5)
    assert not ok and 0 < wait <= 100


async def test_claim_key_one_owner_ttl_and_release(pair: tuple[NatsBackend, NatsBackend]) -> None:
    a, b = pair
    owners = await asyncio.gather(*(c.claim_key("lock", h, 0.6)
                                    for c, h in ((a, "x"), (b, "y"), (a, "z"))))
    assert len(set(owners)) == 1
    winner = owners[0]
    assert await b.claim_key("lock", "other", 0.6) == winner
    await asyncio.sleep(0.7)  # expired: free again
    assert await b.claim_key("lock", "late", None) == "late"
    await a.release_key("lock", "not-the-holder")
    assert await a.claim_key("lock", "x", None) == "late"
    await b.release_key("lock", "late")
    assert await a.claim_key("lock", "x", None) == "x"


async def test_heartbeats_expire_and_forget(pair: tuple[NatsBackend, NatsBackend]) -> None:
    a, b = pair
    now = time.time()
    info = WorkerInfo("w1", "host", 1, ["default"], 4, now, now, {"processed": 3})
    await a.heartbeat(info, ttl=0.8)
    await a.heartbeat(WorkerInfo("w2", "host", 2, ["q"], 1, now, now), ttl=30)
    assert {w.id for w in await b.workers()} == {"w1", "w2"}
    (w1,) = [w for w in await b.workers() if w.id == "w1"]
    assert w1.extra == {"processed": 3} and w1.queues == ["default"]
    await asyncio.sleep(1.0)
    assert [w.id for w in await b.workers()] == ["w2"]
    await b.forget_worker("w2")
    assert await a.workers() == []


async def test_overlapping_patterns_deliver_one_copy_per_group(backend: NatsBackend) -> None:
    m, got = Module("ev"), Counter[str]()

    @m.subscribe("a.*", group="g")
    async def one(e: dict[str, str]) -> None:
        got[f"one:{e['n']}"] += 1

    @m.subscribe("a.#.z", group="h")
    async def deep(e: dict[str, str]) -> None:
        got[f"deep:{e['n']}"] += 1

    hive = Hive(backend)
    hive.include(m)
    await hive.open()
    await backend.bind("a.b", "g")  # overlaps 'a.*' in the same group: still one copy
    for name in ("a.b", "a.z", "a.b.z", "a.b.c.z", "a.b.c", "b.z"):
        await hive.publish(name, {"n": name})
    await run_until_idle(hive)
    assert got == Counter({"one:a.b": 1, "one:a.z": 1, "deep:a.z": 1, "deep:a.b.z": 1,
                           "deep:a.b.c.z": 1}), got
    assert await backend.dead_letters() == []


def test_pattern_translation() -> None:
    assert filters_for("users.*") == ["users.*"]
    assert filters_for("users.#") == ["users", "users.>"]
    assert filters_for("#") == [">"]
    assert filters_for("a.#.b") == ["a.>"]
    assert subject_matches("a.>", "a.b.c") and not subject_matches("a.>", "a")
    assert subject_matches("a.*", "a.b") and not subject_matches("a.*", "a.b.c")
    with pytest.raises(ValidationError):
        filters_for("a..b")
    for name in ("plain-Name_1", "with space", "@g", "dots.x", "=41"):
        assert untoken(token(name)) == name
        assert "." not in token(name) and " " not in token(name)
