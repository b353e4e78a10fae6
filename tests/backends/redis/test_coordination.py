"""Coordination-store details of this backend; the shared contract (claims, ttl, kept dead
letters) is the conformance suite's coordination_store scenario."""

from __future__ import annotations

import pytest

from workhive._envelope import decode, encode, make_envelope
from workhive.backend import Coordination, DeadLetter
from workhive.backends.redis import RedisBackend

pytestmark = pytest.mark.redis


def letter(i: int, queue: str = "rabbit", reason: str = "boom") -> DeadLetter:
    return DeadLetter(f"d{i}", queue, encode(make_envelope("t", i, queue=queue)), reason,
                      1_700_000_000.25 + i)


async def test_is_a_coordination_store(backend: RedisBackend) -> None:
    assert isinstance(backend, Coordination)


async def test_claims_do_not_collide_with_own_keys(backend: RedisBackend, prefix: str) -> None:
    [stored] = await backend.enqueue([make_envelope("t", 1, unique_key="k", idempotency_key="k")])
    assert not stored.duplicate
    assert await backend.claim_key("k", "a", None) == "a"
    await backend.claim_key("k2", "b", None)
    again = make_envelope("t", 2, unique_key="k2", idempotency_key="k2")
    assert not (await backend.enqueue([again]))[0].duplicate
    client = backend._redis()
    assert await client.get(f"{prefix}:claim:k") == b"a"


async def test_replay_of_a_kept_letter_uses_this_backends_queue(backend: RedisBackend) -> None:
    await backend.keep_dead([letter(1)])
    assert await backend.replay_dead() == 1
    [got] = await backend.fetch(["rabbit"], 10, lease=30, wait=0)
    assert decode(got.body).payload == 1
    assert await backend.dead_letters() == []
