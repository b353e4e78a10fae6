"""Gap-safe tailing on PostgreSQL, proved against a real server.

The hazard: ids from a sequence are drawn at INSERT time but become visible at COMMIT, so a
later id can be visible before an earlier one. ``test_the_hazard_is_real`` shows it with raw SQL;
the other tests show the log's appends cannot produce it.
"""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from tests._services import require_service, unique_name
from workhive.commandlog.postgres import PostgresMessageLog

pytestmark = pytest.mark.postgres


async def test_the_hazard_is_real_without_the_lock(pg_log: PostgresMessageLog) -> None:
    """Control experiment: two raw transactions commit out of id order and a reader skips."""
    url = pg_log.url
    a, b = await asyncpg.connect(url), await asyncpg.connect(url)
    insert = (
        f"INSERT INTO {pg_log.messages_table} (name, payload, ts) VALUES ('x', ''::bytea, 0) "
        "RETURNING id"
    )
    try:
        tx_a = a.transaction()
        await tx_a.start()
        id_a = await a.fetchval(insert)
        id_b = await b.fetchval(insert)  # autocommit: visible at once
        assert id_b > id_a
        seen = [m.id for m in await pg_log.read_after(0)]
        assert seen == [id_b], "a reader now believes it is at id_b and will never see id_a"
        await tx_a.commit()
    finally:
        await a.close()
        await b.close()


async def test_an_open_append_blocks_the_next_until_commit(pg_log: PostgresMessageLog) -> None:
    other = PostgresMessageLog(pg_log.url, prefix=pg_log.prefix)  # as another process would
    await other.open()
    try:
        async with pg_log.transaction():
            first = await pg_log.append("a/first", b"{}")
            second = asyncio.create_task(other.append("a/second", b"{}"))
            await asyncio.sleep(0.2)
            assert not second.done(), "the second append must wait for the first to commit"
            assert await other.read_after(0) == []
        assert await second > first
        assert [m.name for m in await other.read_after(0)] == ["a/first", "a/second"]
    finally:
        await other.close()


@pytest.mark.slow
async def test_concurrent_writers_never_let_a_tailing_reader_skip(
    pg_log: PostgresMessageLog,
) -> None:
    url = require_service("postgres")
    writers = [PostgresMessageLog(url, prefix=pg_log.prefix, pool_size=4) for _ in range(3)]
    for w in writers:
        await w.open()
    per_task, tasks_per_writer = 60, 4
    total = len(writers) * tasks_per_writer * per_task
    rng = random.Random(7)

    async def write(log: PostgresMessageLog) -> None:
        for _ in range(per_task):
            if rng.random() < 0.2:
                await log.append_many([("w/batch", b"{}", None)] * 3)
            else:
                await log.append("w/one", b"{}")

    seen: list[int] = []

    async def tail() -> None:
        last = 0
        while True:
            batch = await pg_log.read_after(last, 50)
            for m in batch:
                assert m.id == last + 1, f"reader jumped from {last} to {m.id}: a gap"
                last = m.id
                seen.append(m.id)
            if not batch:
                if done.is_set() and last == await pg_log.head():
                    return
                await pg_log.wait_for(last, 0.05)

    done = asyncio.Event()
    reader = asyncio.create_task(tail())
    try:
        await asyncio.gather(*(write(w) for w in writers for _ in range(tasks_per_writer)))
        done.set()
        await reader
    finally:
        for w in writers:
            await w.close()
    head = await pg_log.head()
    assert head >= total
    assert seen == list(range(1, head + 1))


async def test_open_unreachable_server_is_backend_unavailable() -> None:
    from workhive.errors import BackendUnavailable

    log = PostgresMessageLog("postgresql://postgres@127.0.0.1:1/nope", prefix=unique_name("x"))
    with pytest.raises(BackendUnavailable):
        await log.open()
