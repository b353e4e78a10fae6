"""A killed worker's heartbeat record goes when the ttl it advertised runs out.

"Killed" = it never calls ``forget_worker``. The record must drop out of ``workers()`` and out
of storage (row / key / dict entry), on memory, sqlite, redis and postgres; a live worker's
record stays. The ttl is short and the wait is a generous poll, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests._services import require_service, unique_name
from workhive.backend import WorkerInfo

TTL = 0.3
PATIENCE = 60.0


def _info(worker_id: str) -> WorkerInfo:
    return WorkerInfo(worker_id, "host", 1, ["q"], 1, time.time(), time.time())


@pytest.fixture(params=["memory", pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        from workhive.backends.memory import MemoryBackend

        b: Any = MemoryBackend()
    elif request.param == "sqlite":
        from workhive.backends.sqlite import SQLiteBackend

        b = SQLiteBackend.from_url(f"sqlite:///{tmp_path / 'hb.db'}")
    elif request.param == "redis":
        pytest.importorskip("redis")
        from workhive.backends.redis import RedisBackend

        b = RedisBackend.from_url(require_service("redis"), prefix=unique_name("hb"))
    else:
        pytest.importorskip("asyncpg")
        from workhive.backends.postgres import PostgresBackend

        b = PostgresBackend.from_url(require_service("postgres"), schema=unique_name("hb"))
    await b.open()
    yield b
    if hasattr(b, "wipe"):
        await b.wipe()
    await b.close()


async def _stored_ids(b: Any) -> set[str]:
    """Worker ids present in storage, expired or not (what the filter in workers() hides)."""
    name = type(b).__name__
    if name == "MemoryBackend":
        return set(b._workers)
    if name == "SQLiteBackend":
        with contextlib.closing(sqlite3.connect(b.path)) as con:  # a second reader, like a CLI
            return {r[0] for r in con.execute("SELECT id FROM workers")}
    if name == "RedisBackend":
        keys = await b._guard(lambda r: r.keys(f"{b.settings.prefix}:w:*"))
        return {k.decode().rsplit(":", 1)[-1] for k in keys}
    async with b._conn("test") as con:
        rows = await con.fetch(f"SELECT id FROM {b.settings.schema}.workers")
    return {r[0] for r in rows}


async def test_a_killed_workers_record_goes_when_its_ttl_runs_out(backend: Any) -> None:
    await backend.heartbeat(_info("killed"), ttl=TTL)
    await backend.heartbeat(_info("alive"), ttl=3600)
    assert {w.id for w in await backend.workers()} == {"killed", "alive"}
    deadline = time.monotonic() + PATIENCE
    while "killed" in {w.id for w in await backend.workers()}:
        assert time.monotonic() < deadline, "the expired worker is still listed"
        await asyncio.sleep(0.05)
    await backend.heartbeat(_info("alive"), ttl=3600)  # the live worker's next beat
    while "killed" in await _stored_ids(backend):
        assert time.monotonic() < deadline, "the expired worker's record is still stored"
        await asyncio.sleep(0.05)
    assert [w.id for w in await backend.workers()] == ["alive"]
    assert "alive" in await _stored_ids(backend)
