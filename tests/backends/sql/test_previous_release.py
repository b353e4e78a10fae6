"""Stores written by the previous release open with the current code and lose nothing.

``data/`` holds a SQLite file and a PostgreSQL dump that the previous release wrote through its
public API (``make_fixtures.py``, which also defines what they hold). Each test opens a private
copy with the current code, which upgrades the layout in place, and checks one part of the
content through the public backend API, then that the store keeps working.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from msgspec.structs import replace

from tests._services import require_service, unique_name
from tests.backends.sql import make_fixtures as written
from workhive._envelope import decode
from workhive.backend import QueueStats, Settlement
from workhive.backends._sql.layout import ADDED_COLUMNS, DATA_TABLES, SCHEMA_VERSION
from workhive.backends.postgres import PostgresBackend
from workhive.backends.sqlite import SQLiteBackend

Store = SQLiteBackend | PostgresBackend


@dataclass
class OldStore:
    """A store of the previous release, opened by the current code."""

    backend: Store
    stored_version: Callable[[], Awaitable[int]]
    #: the ``table.column`` names the store has now
    columns: Callable[[], Awaitable[set[str]]]


async def _sqlite_store(tmp_path: Path) -> AsyncIterator[OldStore]:
    path = tmp_path / "hive.db"
    shutil.copyfile(written.DATA / "sqlite-v2.db", path)

    async def stored_version() -> int:
        con = sqlite3.connect(path)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            con.close()
        return int(row[0])

    async def columns() -> set[str]:
        con = sqlite3.connect(path)
        try:
            return {f"{t}.{c}" for t in DATA_TABLES
                    for (c,) in con.execute("SELECT name FROM pragma_table_info(?)", (t,))}
        finally:
            con.close()

    async with SQLiteBackend.from_url(f"sqlite:///{path}") as backend:
        yield OldStore(backend, stored_version, columns)


async def _postgres_store() -> AsyncIterator[OldStore]:
    url = require_service("postgres")
    schema = unique_name("whprev")
    script = (written.DATA / "postgres-v2.sql").read_text().replace(written.PLACEHOLDER, schema)

    async def stored_version() -> int:
        con = await asyncpg.connect(url)
        try:
            return int(await con.fetchval(
                f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'"))
        finally:
            await con.close()

    async def columns() -> set[str]:
        con = await asyncpg.connect(url)
        try:
            return {f"{t}.{c}" for t, c in await con.fetch(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = $1", schema)}
        finally:
            await con.close()

    await _pg_execute(url, script)
    try:
        async with PostgresBackend.from_url(url, schema=schema) as backend:
            yield OldStore(backend, stored_version, columns)
    finally:
        await _pg_execute(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def _pg_execute(url: str, script: str) -> None:
    """Run a script of SQL statements on a connection of its own (the dump sets session
    options such as an empty ``search_path`` that no backend connection should inherit)."""
    con = await asyncpg.connect(url)
    try:
        await con.execute(script)
    finally:
        await con.close()


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
async def old(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OldStore]:
    opened = _sqlite_store(tmp_path) if request.param == "sqlite" else _postgres_store()
    async for store in opened:
        yield store


async def test_layout_is_upgraded_to_the_current_version(old: OldStore) -> None:
    assert await old.stored_version() == SCHEMA_VERSION
    assert {f"{t}.{c}" for t, c, _ in ADDED_COLUMNS} <= await old.columns()


async def test_queue_counts_are_kept(old: OldStore) -> None:
    assert await old.backend.stats() == [
        QueueStats("default", ready=3, delayed=1),
        QueueStats("keyed", ready=2),
        QueueStats("mail", dead=1, processed=1, failed=1),
    ]


async def test_ready_tasks_fetch_in_priority_order_and_the_delayed_one_waits(
    old: OldStore,
) -> None:
    got = await old.backend.fetch(["default"], 10, lease=30, wait=0)
    assert [decode(d.body) for d in got] == list(written.READY)
    await old.backend.settle([Settlement(d, "ack") for d in got])
    assert await old.backend.fetch(["default"], 10, lease=30, wait=0) == []
    counts = {s.queue: s for s in await old.backend.stats()}
    assert counts["default"] == QueueStats("default", delayed=1, processed=3)


async def test_unique_and_idempotency_keys_still_dedupe(old: OldStore) -> None:
    again = [
        replace(written.UNIQUE, id="unique-again"),
        replace(written.IDEMPOTENT, id="idempotent-again"),
    ]
    results = await old.backend.enqueue(again)
    assert [(r.id, r.duplicate) for r in results] == [
        (written.UNIQUE.id, True), (written.IDEMPOTENT.id, True),
    ]


async def test_dead_letter_is_listed_and_replays(old: OldStore) -> None:
    (letter,) = await old.backend.dead_letters()
    assert (letter.id, letter.queue, letter.reason) == (
        written.BOUNCED.id, "mail", written.DEAD_REASON)
    assert decode(letter.body) == written.BOUNCED
    assert await old.backend.replay_dead() == 1
    assert await old.backend.dead_letters() == []
    (replayed,) = await old.backend.fetch(["mail"], 10, lease=30, wait=0)
    envelope = decode(replayed.body)
    assert envelope.id != written.BOUNCED.id
    assert (envelope.name, envelope.payload) == (written.BOUNCED.name, written.BOUNCED.payload)


async def test_result_tick_binding_worker_history_and_pause_are_kept(old: OldStore) -> None:
    backend = old.backend
    assert await backend.get_result(written.ACKED.id) == written.RESULT
    assert await backend.claim_tick(*written.TICK) is False
    assert await backend.workers() == [written.WORKER]
    assert await backend.history(written.HISTORY.minute) == [written.HISTORY]
    assert await backend.paused_queues() == {written.PAUSED}
    group = written.BINDING[1]
    event = replace(written.ACKED, id="event-1", name="order.paid", kind="event")
    assert await backend.publish(event) == 1
    (copy,) = await backend.fetch([f"@{group}"], 10, lease=30, wait=0)
    assert decode(copy.body).id == f"event-1@{group}"


async def test_new_work_runs(old: OldStore) -> None:
    fresh = replace(written.ACKED, id="fresh-1", queue="fresh", payload={"new": True})
    (result,) = await old.backend.enqueue([fresh])
    assert (result.id, result.duplicate) == ("fresh-1", False)
    (delivery,) = await old.backend.fetch(["fresh"], 10, lease=30, wait=0)
    assert decode(delivery.body) == fresh
    await old.backend.settle([Settlement(delivery, "ack")])
    counts = {s.queue: s for s in await old.backend.stats()}
    assert counts["fresh"] == QueueStats("fresh", processed=1)
