"""The postgres backend as a composite's coordination store: key claims and kept dead letters."""

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


async def test_first_claim_wins_and_others_get_the_owner(make: Make) -> None:
    a, b = make(), make()  # two processes on one schema
    assert await a.claim_key("k", "a", 60) == "a"
    assert await b.claim_key("k", "b", 60) == "a"
    assert await a.claim_key("k", "a", 60) == "a"
    assert await b.claim_key("other", "b", None) == "b"


async def test_concurrent_claims_agree_on_one_owner(make: Make) -> None:
    a, b = make(), make()
    owners = await asyncio.gather(*(
        (a if i % 2 else b).claim_key(f"k{i // 8}", f"h{i}", None) for i in range(32)
    ))
    for n in range(4):
        group = owners[8 * n : 8 * n + 8]
        assert len(set(group)) == 1 and group[0] in {f"h{i}" for i in range(8 * n, 8 * n + 8)}


async def test_release_only_by_the_owner(backend: PostgresBackend) -> None:
    await backend.claim_key("k", "a", None)
    await backend.release_key("k", "b")
    assert await backend.claim_key("k", "b", None) == "a"
    await backend.release_key("k", "a")
    assert await backend.claim_key("k", "b", None) == "b"
    await backend.release_key("never-claimed", "a")  # no error


async def test_an_expired_claim_is_free_and_no_ttl_never_expires(
    backend: PostgresBackend,
) -> None:
    # ttls run on the database clock (same host here, so the sleep measures it too)
    assert await backend.claim_key("k", "a", 0.2) == "a"
    assert await backend.claim_key("forever", "a", None) == "a"
    assert await backend.claim_key("k", "b", 0.2) == "a"
    await asyncio.sleep(0.3)
    assert await backend.claim_key("k", "b", 0.2) == "b"
    assert await backend.claim_key("forever", "b", None) == "a"
    await backend.release_key("k", "a")  # the old owner's late release frees nothing
    assert await backend.claim_key("k", "c", 0.2) == "b"


async def test_claims_do_not_collide_with_own_keys(backend: PostgresBackend) -> None:
    [stored] = await backend.enqueue([make_envelope("t", 1, unique_key="k", idempotency_key="k")])
    assert not stored.duplicate
    assert await backend.claim_key("k", "a", None) == "a"
    await backend.claim_key("k2", "b", None)
    again = make_envelope("t", 2, unique_key="k2", idempotency_key="k2")
    assert not (await backend.enqueue([again]))[0].duplicate


async def test_kept_letters_are_listed_counted_and_purged(backend: PostgresBackend) -> None:
    await backend.keep_dead([letter(1), letter(2), letter(3, queue="other", reason="bad")])
    dead = await backend.dead_letters()
    assert [(d.id, d.queue, d.reason, d.failed_at) for d in dead] == [
        ("d1", "rabbit", "boom", 1_700_000_001.25),
        ("d2", "rabbit", "boom", 1_700_000_002.25),
        ("d3", "other", "bad", 1_700_000_003.25),
    ]
    assert decode(dead[0].body).payload == 1
    assert [d.id for d in await backend.dead_letters(queue="other")] == ["d3"]
    assert [d.id for d in await backend.dead_letters(limit=1, offset=1)] == ["d2"]
    assert {s.queue: s.dead for s in await backend.stats()} == {"other": 1, "rabbit": 2}
    assert await backend.purge_dead(ids=["d1", "d3"]) == 2
    assert [d.id for d in await backend.dead_letters()] == ["d2"]


async def test_keeping_the_same_id_twice_stores_one(backend: PostgresBackend) -> None:
    await backend.keep_dead([letter(1)])
    await backend.keep_dead([letter(1, reason="again"), letter(1, reason="and again")])
    [kept] = await backend.dead_letters()
    assert (kept.id, kept.reason) == ("d1", "boom")
    await backend.keep_dead([])


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
