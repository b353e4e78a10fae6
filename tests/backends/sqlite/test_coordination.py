"""The SQLite backend as a composite's coordination store: key claims and kept dead letters."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from workhive._envelope import decode, encode, make_envelope
from workhive.backend import Coordination, DeadLetter
from workhive.backends.sqlite import SQLiteBackend

from .conftest import FakeClock

pytestmark = pytest.mark.sqlite


def letter(i: int, queue: str = "rabbit", reason: str = "boom") -> DeadLetter:
    return DeadLetter(f"d{i}", queue, encode(make_envelope("t", i, queue=queue)), reason,
                      1_700_000_000.0 + i)


async def test_is_a_coordination_store(backend: SQLiteBackend) -> None:
    assert isinstance(backend, Coordination)


async def test_first_claim_wins_and_others_get_the_owner(backend: SQLiteBackend) -> None:
    assert await backend.claim_key("k", "a", 60) == "a"
    assert await backend.claim_key("k", "b", 60) == "a"
    assert await backend.claim_key("k", "a", 60) == "a"  # the owner asking again still owns it
    assert await backend.claim_key("other", "b", None) == "b"


async def test_release_only_by_the_owner(backend: SQLiteBackend) -> None:
    await backend.claim_key("k", "a", None)
    await backend.release_key("k", "b")
    assert await backend.claim_key("k", "b", None) == "a"
    await backend.release_key("k", "a")
    assert await backend.claim_key("k", "b", None) == "b"
    await backend.release_key("never-claimed", "a")  # no error


async def test_an_expired_claim_is_free(real_backend: SQLiteBackend) -> None:
    assert await real_backend.claim_key("k", "a", 0.2) == "a"
    assert await real_backend.claim_key("k", "b", 0.2) == "a"
    await asyncio.sleep(0.3)
    assert await real_backend.claim_key("k", "b", 0.2) == "b"
    await real_backend.release_key("k", "a")  # the old owner's late release frees nothing
    assert await real_backend.claim_key("k", "c", 0.2) == "b"


async def test_no_ttl_never_expires(backend: SQLiteBackend, clock: FakeClock) -> None:
    await backend.claim_key("forever", "a", None)
    await backend.claim_key("brief", "a", 1)
    clock.advance(10 * 365 * 86_400.0)  # also past every housekeeping sweep
    await backend.claim_tick("job", 1.0)  # a write that runs housekeeping
    assert await backend.claim_key("forever", "b", None) == "a"
    assert await backend.claim_key("brief", "b", None) == "b"


async def test_claims_do_not_collide_with_own_keys(backend: SQLiteBackend) -> None:
    env = make_envelope("t", 1, unique_key="k", idempotency_key="k")
    [stored] = await backend.enqueue([env])
    assert not stored.duplicate
    assert await backend.claim_key("k", "a", None) == "a"
    again = make_envelope("t", 2, unique_key="k2", idempotency_key="k2")
    await backend.claim_key("k2", "b", None)
    assert not (await backend.enqueue([again]))[0].duplicate


async def test_kept_letters_are_listed_counted_and_purged(backend: SQLiteBackend) -> None:
    await backend.keep_dead([letter(1), letter(2), letter(3, queue="other", reason="bad")])
    dead = await backend.dead_letters()
    assert [(d.id, d.queue, d.reason, d.failed_at) for d in dead] == [
        ("d1", "rabbit", "boom", 1_700_000_001.0),
        ("d2", "rabbit", "boom", 1_700_000_002.0),
        ("d3", "other", "bad", 1_700_000_003.0),
    ]
    assert decode(dead[0].body).payload == 1
    assert [d.id for d in await backend.dead_letters(queue="other")] == ["d3"]
    assert [d.id for d in await backend.dead_letters(limit=1, offset=1)] == ["d2"]
    assert {s.queue: s.dead for s in await backend.stats()} == {"other": 1, "rabbit": 2}
    assert await backend.purge_dead(ids=["d1", "d3"]) == 2
    assert [d.id for d in await backend.dead_letters()] == ["d2"]


async def test_keeping_the_same_id_twice_stores_one(backend: SQLiteBackend) -> None:
    await backend.keep_dead([letter(1)])
    await backend.keep_dead([letter(1, reason="again"), letter(1, reason="and again")])
    [kept] = await backend.dead_letters()
    assert (kept.id, kept.reason) == ("d1", "boom")
    await backend.keep_dead([])


async def test_replay_of_a_kept_letter_uses_this_backends_queue(backend: SQLiteBackend) -> None:
    await backend.keep_dead([letter(1)])
    assert await backend.replay_dead() == 1
    [got] = await backend.fetch(["rabbit"], 10, lease=30, wait=0)
    assert decode(got.body).payload == 1
    assert await backend.dead_letters() == []


async def test_a_version_1_file_opens_and_gains_claims(db_url: str, tmp_path: Path) -> None:
    async with SQLiteBackend.from_url(db_url) as b:
        await b.enqueue([make_envelope("t", "kept")])
    con = sqlite3.connect(tmp_path / "hive.db")
    with con:
        con.execute("DROP TABLE claims")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    async with SQLiteBackend.from_url(db_url) as b:
        assert await b.claim_key("k", "a", None) == "a"
        [got] = await b.fetch(["default"], 10, lease=30, wait=0)
        assert decode(got.body).payload == "kept"
    con = sqlite3.connect(tmp_path / "hive.db")
    [(version,)] = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    con.close()
    assert version == "2"
