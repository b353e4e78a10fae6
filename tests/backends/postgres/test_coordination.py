"""Coordination-store details of this backend; the shared contract (claims, ttl, kept dead
letters) is the conformance suite's coordination_store scenario."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from workhive._envelope import decode, encode, make_envelope
from workhive.backend import Coordination, DeadLetter
from workhive.backends.postgres import PostgresBackend

pytestmark = pytest.mark.postgres
Make = Callable[..., PostgresBackend]


def letter(i: int, queue: str = "rabbit", reason: str = "boom") -> DeadLetter:
    return DeadLetter(f"d{i}", queue, encode(make_envelope("t", i, queue=queue)), reason,
                      1_700_000_000.25 + i)


async def test_is_a_coordination_store(backend: PostgresBackend) -> None:
    assert isinstance(backend, Coordination)


async def test_concurrent_claims_agree_on_one_owner(make: Make) -> None:
    a, b = make(), make()
    owners = await asyncio.gather(*(
        (a if i % 2 else b).claim_key(f"k{i // 8}", f"h{i}", None) for i in range(32)
    ))
    for n in range(4):
        group = owners[8 * n : 8 * n + 8]
        assert len(set(group)) == 1 and group[0] in {f"h{i}" for i in range(8 * n, 8 * n + 8)}


async def test_claims_do_not_collide_with_own_keys(backend: PostgresBackend) -> None:
    [stored] = await backend.enqueue([make_envelope("t", 1, unique_key="k", idempotency_key="k")])
    assert not stored.duplicate
    assert await backend.claim_key("k", "a", None) == "a"
    await backend.claim_key("k2", "b", None)
    again = make_envelope("t", 2, unique_key="k2", idempotency_key="k2")
    assert not (await backend.enqueue([again]))[0].duplicate


async def test_replay_of_a_kept_letter_uses_this_backends_queue(
    backend: PostgresBackend,
) -> None:
    await backend.keep_dead([letter(1)])
    assert await backend.replay_dead() == 1
    [got] = await backend.fetch(["rabbit"], 10, lease=30, wait=0)
    assert decode(got.body).payload == 1
    assert await backend.dead_letters() == []


async def test_a_version_1_schema_opens_and_gains_claims(
    make: Make, pg_url: str, schema: str
) -> None:
    first = make()
    await first.enqueue([make_envelope("t", "kept")])
    await first.close()
    con = await asyncpg.connect(pg_url)
    try:
        await con.execute(f"DROP TABLE {schema}.claims")
        await con.execute(f"UPDATE {schema}.meta SET value = '1' WHERE key = 'schema_version'")
        later = make()
        assert await later.claim_key("k", "a", None) == "a"
        [got] = await later.fetch(["default"], 10, lease=30, wait=0)
        assert decode(got.body).payload == "kept"
        version = await con.fetchval(
            f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
    finally:
        await con.close()
    assert version == "2"
