"""Task results and cancel on the real server: expiry on the database clock, housekeeping,
cancel of a delayed / leased task, cancel racing claims, and a schema from before the tables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest

from tests.backends.postgres._clock import db_now, until_db_clock_passes
from workhive._envelope import decode, make_envelope
from workhive.backend import Capability, Settlement
from workhive.backends.postgres import PostgresBackend
from workhive.errors import ValidationError

pytestmark = pytest.mark.postgres
Make = Callable[..., PostgresBackend]


async def _count(pg_url: str, schema: str, table: str) -> int:
    con = await asyncpg.connect(pg_url)
    try:
        return int(await con.fetchval(f"SELECT count(*) FROM {schema}.{table}"))
    finally:
        await con.close()


def test_declares_results_and_cancel() -> None:
    features = PostgresBackend.features
    assert features.has(Capability.RESULTS) and features.has(Capability.CANCEL)


async def test_a_result_is_kept_overwritten_and_gone_after_its_ttl(
    backend: PostgresBackend, pg_url: str, schema: str
) -> None:
    assert await backend.get_result("nobody") is None
    await backend.store_result("t1", b"\x00running", 600)
    await backend.store_result("t1", b"\x00done", 600)  # the last write wins
    assert await backend.get_result("t1") == b"\x00done"
    await backend.store_result("t2", b"brief", 0.2)
    stored_by = await db_now(pg_url)  # the row's expiry is at most this + ttl
    await until_db_clock_passes(pg_url, stored_by + 0.2)
    assert await backend.get_result("t2") is None
    assert await backend.get_result("t1") == b"\x00done"
    # housekeeping deletes the expired row and keeps the live one
    backend._next_housekeeping = 0.0
    await backend._housekeep()
    assert await _count(pg_url, schema, "results") == 1


async def test_cancel_deletes_a_delayed_task_and_frees_its_unique_key(
    backend: PostgresBackend,
) -> None:
    later = make_envelope("t:x", 1, queue="q", eta=time.time() + 600, unique_key="report")
    await backend.enqueue([later])
    assert (await backend.enqueue([make_envelope("t:x", 2, queue="q",
                                                 unique_key="report")]))[0].duplicate
    assert await backend.cancel(later.id, 60) is True
    assert await backend.cancelled([later.id]) == set()  # deleted, not flagged
    assert await backend.stats() == []  # no row left in any state
    again = make_envelope("t:x", 3, queue="q", unique_key="report")
    assert not (await backend.enqueue([again]))[0].duplicate
    assert await backend.cancel(later.id, 60) is False  # gone: only a flag is left to set


async def test_cancel_flags_a_leased_task_until_the_flag_expires(
    backend: PostgresBackend, pg_url: str, schema: str
) -> None:
    running, other = make_envelope("t:x", 1, queue="q"), make_envelope("t:x", 2, queue="q")
    await backend.enqueue([running, other])
    (held,) = await backend.fetch(["q"], 1, lease=60, wait=0)
    assert decode(held.body).id == running.id
    assert await backend.cancel(running.id, 60) is False
    assert await backend.cancelled([running.id, other.id, "nobody"]) == {running.id}
    assert await backend.cancelled([]) == set()
    await backend.settle([Settlement(held, "ack")])  # the flag does not touch the row
    (stats,) = await backend.stats()
    assert (stats.ready, stats.processed) == (1, 1)
    # a second cancel renews the flag with its own ttl; once that passes, the flag is gone
    assert await backend.cancel(running.id, 0.2) is False
    flagged_by = await db_now(pg_url)
    await until_db_clock_passes(pg_url, flagged_by + 0.2)
    assert await backend.cancelled([running.id]) == set()
    backend._next_housekeeping = 0.0
    await backend._housekeep()
    assert await _count(pg_url, schema, "cancels") == 0


async def test_cancel_racing_claims_either_deletes_or_flags(make: Make) -> None:
    """Two workers claim while a producer cancels every task: each task is either deleted
    before any worker got it (True) or was leased and flagged (False), never both or lost."""
    producer, workers = make(), [make(), make()]
    envelopes = [make_envelope("t:x", i, queue="q") for i in range(60)]
    await producer.enqueue(envelopes)
    fetched: list[str] = []

    async def drain(worker: PostgresBackend) -> None:
        while got := await worker.fetch(["q"], 3, lease=60, wait=0):
            fetched.extend(decode(d.body).id for d in got)
            await asyncio.sleep(0)

    async def cancel_all() -> list[bool]:  # from the tail, so they meet the workers midway
        return [await producer.cancel(e.id, 60) for e in envelopes[::-1]][::-1]

    cancelling = asyncio.create_task(cancel_all())
    await asyncio.gather(*(drain(w) for w in workers))
    outcomes = await cancelling
    deleted = {e.id for e, gone in zip(envelopes, outcomes, strict=True) if gone}
    assert deleted.isdisjoint(fetched)
    assert deleted | set(fetched) == {e.id for e in envelopes}
    assert len(fetched) == len(set(fetched))
    assert await producer.cancelled([e.id for e in envelopes]) == set(fetched)


async def test_a_schema_without_the_result_tables_gains_them(
    make: Make, pg_url: str, schema: str
) -> None:
    first = make()
    await first.enqueue([make_envelope("t", "kept")])
    await first.close()
    con = await asyncpg.connect(pg_url)
    try:
        await con.execute(f"DROP TABLE {schema}.results, {schema}.cancels")
        later = make()
        await later.store_result("r", b"value", 60)
        assert await later.get_result("r") == b"value"
        [got] = await later.fetch(["default"], 10, lease=30, wait=0)
        assert decode(got.body).payload == "kept"
        version = await con.fetchval(
            f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
    finally:
        await con.close()
    assert version == "2"  # unchanged: an older workhive still opens this schema


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf"), "60", True])
async def test_a_ttl_that_is_not_a_positive_number_is_refused(backend: PostgresBackend,
                                                             ttl: object) -> None:
    with pytest.raises(ValidationError, match="ttl of the result of task t1"):
        await backend.store_result("t1", b"x", ttl)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ttl of the cancel of task t1"):
        await backend.cancel("t1", ttl)  # type: ignore[arg-type]
    assert await backend.get_result("t1") is None
    assert await backend.cancelled(["t1"]) == set()
