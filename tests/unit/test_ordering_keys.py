"""Ordering keys: the option and its checks, the envelope field, the capability, and per-key
order on the memory backend (the Kafka backend has its own tests in tests/backends/kafka)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest

from workhive import (
    CapabilityError,
    Hive,
    Module,
    RegistryError,
    TaskContext,
    ValidationError,
)
from workhive._envelope import AttemptRecord, decode, encode, make_envelope
from workhive.backend import Capability, Features, Settlement
from workhive.backends.composite import Composite
from workhive.backends.kafka import KafkaBackend
from workhive.backends.memory import MemoryBackend
from workhive.testing import run_until_idle


class User(msgspec.Struct):
    user_id: int
    text: str = ""


def _module() -> Module:
    m = Module("k")

    @m.task("k:by_field", ordering_key="user_id")
    async def by_field(p: dict[str, Any]) -> None: ...

    @m.task("k:by_function", ordering_key=lambda p: f"u{p.user_id}")
    async def by_function(p: User) -> None: ...

    @m.task("k:plain")
    async def plain(p: dict[str, Any]) -> None: ...

    return m


def _hive(backend: Any = "memory://") -> Hive:
    hive = Hive(backend)
    hive.include(_module())
    return hive


# -- the envelope field ---------------------------------------------------------------------


def test_envelopes_written_before_the_field_still_decode() -> None:
    old = msgspec.msgpack.encode({"id": "1", "name": "t", "payload": {"a": 1}, "attempt": 2})
    env = decode(old)
    assert (env.ordering_key, env.attempt, env.payload) == (None, 2, {"a": 1})


def test_the_field_is_left_out_unless_set() -> None:
    plain = make_envelope("t", None)
    assert b"ordering_key" not in encode(plain)  # old readers see the bytes they always saw
    keyed = make_envelope("t", None, ordering_key="user-7")
    assert decode(encode(keyed)).ordering_key == "user-7"
    retried = keyed.next_attempt(AttemptRecord(0, 0.0, "boom"))  # a retry keeps its key
    assert retried.ordering_key == "user-7"


# -- options and their checks ---------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", b"user", 1.5, True, "\ud800", object(), ["a"]])
async def test_bad_per_call_keys_are_refused_before_any_write(bad: Any) -> None:
    hive = _hive()
    with pytest.raises(ValidationError, match="ordering_key"):
        await hive.enqueue("k:plain", {}, ordering_key=bad)
    assert await hive.backend.stats() == []  # type: ignore[attr-defined]


async def test_keys_from_the_call_the_field_and_the_function() -> None:
    hive = _hive()
    assert _key(hive, "k:plain", {}, ordering_key=7) == "7"  # ints are ids: their digits
    assert _key(hive, "k:plain", {}) is None
    assert _key(hive, "k:by_field", {"user_id": "u-1"}) == "u-1"
    assert _key(hive, "k:by_field", {"user_id": 42}) == "42"
    assert _key(hive, "k:by_field", {"user_id": None}) is None  # no key: this one spreads
    assert _key(hive, "k:by_function", {"user_id": 3}) == "u3"  # the typed payload
    assert _key(hive, "k:by_field", {"user_id": 1}, ordering_key="x") == "x"  # the call wins


def _key(hive: Hive, name: str, payload: Any, **options: Any) -> str | None:
    env = hive.build(name, payload, **options)
    assert env is not None
    return env.ordering_key


def test_a_rule_that_cannot_give_a_key_is_a_clear_error() -> None:
    hive = _hive()
    with pytest.raises(ValidationError, match="payload field 'user_id'"):
        hive.build("k:by_field", {"other": 1})
    m = Module("f")

    @m.task("f:float", ordering_key="score")
    async def by_float(p: dict[str, Any]) -> None: ...

    @m.task("f:raises", ordering_key=lambda p: p["missing"])
    async def raises(p: dict[str, Any]) -> None: ...

    hive.include(m)
    with pytest.raises(ValidationError, match="ordering key of task 'f:float'.*got 1.5"):
        hive.build("f:float", {"score": 1.5})
    with pytest.raises(ValidationError, match="ordering_key function failed.*KeyError"):
        hive.build("f:raises", {})


@pytest.mark.parametrize("bad", ["", 3, b"user_id"])
def test_a_bad_declaration_is_refused(bad: Any) -> None:
    with pytest.raises(RegistryError, match="ordering_key"):
        Module("d").task("d:t", ordering_key=bad)


# -- the capability ---------------------------------------------------------------------------


def test_every_capability_does_not_claim_ordered_keys() -> None:
    assert not Features(frozenset(Capability)).has(Capability.ORDERED_KEYS)
    assert Features(frozenset(), ordered_keys=True).has(Capability.ORDERED_KEYS)
    declared = Features(frozenset({Capability.QUEUE}), ordered_keys=True)
    assert dataclasses.replace(declared, capabilities=frozenset()).has(Capability.ORDERED_KEYS)
    assert KafkaBackend.from_url("kafka://127.0.0.1:1").features.has(Capability.ORDERED_KEYS)
    assert Composite(MemoryBackend(), MemoryBackend()).features.has(Capability.ORDERED_KEYS)


async def test_a_backend_without_it_refuses_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with pytest.raises(CapabilityError,
                       match="'sqlite' backend does not support ordered_keys.*'kafka'"):
        _hive(url)
    hive = Hive(url)
    plain = Module("p")

    @plain.task("p:t")
    async def t() -> None: ...

    hive.include(plain)
    with pytest.raises(CapabilityError, match="ordering_key of task p:t.*'kafka'"):
        await hive.enqueue("p:t", ordering_key="user-7")
    await hive.enqueue("p:t")  # without a key, nothing changes
    await hive.close()


# -- per-key order on the memory backend -------------------------------------------------------


async def test_memory_keeps_per_key_order_through_retries() -> None:
    keys, per_key = 8, 15
    rng = random.Random(3)
    m = Module("mem")
    starts: dict[str, list[int]] = defaultdict(list)
    done: dict[str, list[int]] = defaultdict(list)
    running: Counter[str] = Counter()
    peak = {"all": 0, "key": 0}

    @m.task("mem:step", ordering_key="key", retry_backoff=0.02)
    async def step(p: dict[str, Any], ctx: TaskContext) -> None:
        starts[p["key"]].append(p["seq"])
        running[p["key"]] += 1
        peak["key"] = max(peak["key"], running[p["key"]])
        peak["all"] = max(peak["all"], sum(running.values()))
        try:
            await asyncio.sleep(p["sleep"])
            if p["seq"] % 5 == 2 and ctx.attempt == 0:
                raise RuntimeError("the first attempt fails")
            done[p["key"]].append(p["seq"])
        finally:
            running[p["key"]] -= 1

    hive = Hive("memory://")
    hive.include(m)
    for seq in range(per_key):
        for k in range(keys):
            await hive.enqueue("mem:step", {"key": f"k{k}", "seq": seq,
                                            "sleep": rng.uniform(0.001, 0.01)})
    await run_until_idle(hive, concurrency=16, timeout=60)
    failing = [s for s in range(per_key) if s % 5 == 2]
    for k in range(keys):
        assert done[f"k{k}"] == list(range(per_key))
        assert starts[f"k{k}"] == sorted([*range(per_key), *failing])
    assert peak["key"] == 1 and peak["all"] > 1, peak


async def test_memory_holds_a_key_through_an_expired_lease_and_frees_it_on_dead() -> None:
    backend = MemoryBackend()
    envs = [make_envelope("t", {"n": n}, ordering_key="a") for n in range(3)]
    await backend.enqueue(envs)
    (first,) = await backend.fetch(["default"], 10, lease=0.05, wait=0)
    await asyncio.sleep(0.1)  # the worker died: its lease runs out
    (again,) = await backend.fetch(["default"], 10, lease=30, wait=1)
    assert decode(again.body).id == envs[0].id  # not the next one of the key
    await backend.settle([Settlement(again, "dead", reason="gave up")])
    (second,) = await backend.fetch(["default"], 10, lease=30, wait=1)
    assert decode(second.body).id == envs[1].id
    assert decode(first.body).id == envs[0].id
