"""Coordination-store details of this backend; the shared contract (claims, ttl, kept dead
letters) is the conformance suite's coordination_store scenario."""

from __future__ import annotations

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
