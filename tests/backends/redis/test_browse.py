"""The task browser on the redis backend: listing by state with totals, find, run now, search,
and the dashboard's task pages, on the loopback Redis and (one test) a Redis Cluster.

The dashboard scenario is the one tests/dashboard/test_features.py runs on memory and sqlite,
imported under a name pytest does not collect, so all three backends pass the same checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests._services import require_service, unique_name
from tests.backends.redis.cluster import spread_queues
from tests.backends.redis.conftest import FakeClock
from tests.dashboard.conftest import build_hive, client_for, populate
from tests.dashboard.test_features import (
    test_task_browser_lists_searches_and_pages as browser_scenario,
)
from workhive import Hive
from workhive._envelope import AttemptRecord, decode, make_envelope
from workhive.backends.redis import RedisBackend
from workhive.backends.redis.browse import PAGE
from workhive.browse import QueuedTask, SupportsBrowse, browser_of
from workhive.inspector import Inspector

pytestmark = pytest.mark.redis


def ids(rows: list[QueuedTask]) -> list[str]:
    return [r.id for r in rows]


async def test_ready_lists_in_fetch_order_with_totals_across_its_parts(
        backend: RedisBackend) -> None:
    assert isinstance(backend, SupportsBrowse)
    # priorities above 0 live in a sorted set, 0 in a list, below 0 in the sorted set again
    await backend.enqueue([make_envelope("t", i, priority=i % 3 - 1) for i in range(9)])
    listed, total = await backend.browse("default", "ready", 100, 0)
    assert total == 9 and {t.state for t in listed} == {"ready"}
    pages = [await backend.browse("default", "ready", 2, off) for off in range(0, 10, 2)]
    assert [i for page, n in pages for i in ids(page) if n == 9] == ids(listed)
    fetched = await backend.fetch(["default"], 100, lease=30, wait=0)
    assert [decode(d.body).id for d in fetched] == ids(listed)
    assert await backend.browse("default", "ready", 10, 0) == ([], 0)
    running, total = await backend.browse("default", "in_flight", 3, 6)
    assert total == 9 and len(running) == 3 and all(t.at > 0 for t in running)


async def test_states_follow_the_clock_without_a_fetch(make: Callable[..., RedisBackend]
                                                        ) -> None:
    clock = FakeClock()
    b = make(clock=clock)
    soon = make_envelope("t", "soon", eta=clock.now + 10)
    later = make_envelope("t", "later", eta=clock.now + 100, priority=2)
    leased = make_envelope("t", "leased")
    await b.enqueue([leased])
    await b.fetch(["default"], 1, lease=5, wait=0)
    await b.enqueue([soon, later])

    found = await b.find_task("default", later.id)
    assert found is not None and found.state == "delayed" and found.at == later.eta
    running = await b.find_task("default", leased.id)
    assert running is not None and running.state == "in_flight"
    assert running.at == pytest.approx(clock.now + 5)
    assert ids((await b.browse("default", "delayed", 10, 0))[0]) == [soon.id, later.id]

    clock.now += 10  # soon is due and the lease ran out: both ready until a fetch moves them
    ready, total = await b.browse("default", "ready", 10, 0)
    assert total == 2 and ids(ready) == [leased.id, soon.id]
    assert all(t.at == 0 for t in ready)
    assert (await b.browse("default", "in_flight", 10, 0))[1] == 0
    for task_id in (soon.id, leased.id):
        now_ready = await b.find_task("default", task_id)
        assert now_ready is not None and now_ready.state == "ready" and now_ready.at == 0

    assert not await b.run_now("default", soon.id)  # already due: nothing to hurry
    assert not await b.run_now("default", leased.id)
    assert not await b.run_now("other", later.id)  # another queue's task
    assert await b.run_now("default", later.id)
    assert not await b.run_now("default", later.id)
    got = await b.fetch(["default"], 10, lease=30, wait=0)
    assert decode(got[0].body).id == later.id  # priority 2 goes first
    assert await b.find_task("default", "no-such-id") is None
    assert await b.find_task("other", later.id) is None


async def test_a_page_bigger_than_one_call_and_bad_input(backend: RedisBackend) -> None:
    envelopes = [make_envelope("t", i) for i in range(PAGE * 2 + 10)]
    await backend.enqueue(envelopes)
    rows, total = await backend.browse("default", "ready", PAGE * 2, 5)
    assert total == len(envelopes) and ids(rows) == [e.id for e in envelopes[5:5 + PAGE * 2]]
    assert await backend.browse("default", "ready", 0, 0) == ([], len(envelopes))
    assert (await backend.browse("default", "ready", 10, 10**9))[0] == []
    with pytest.raises(ValueError, match="state must be one of"):
        await backend.browse("default", "dead", 10, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= 0"):
        await backend.browse("default", "ready", -1, 0)


async def test_corrupt_entries_are_listed_not_hidden(backend: RedisBackend) -> None:
    good = make_envelope("t", "fine")
    await backend.enqueue([good])
    client = backend._redis()
    await client.rpush(backend._keys.key("default", "ready"), "orphan")  # id without a body
    await client.zadd(backend._keys.key("default", "ranked"), {"no-sequence": -1})
    rows, total = await backend.browse("default", "ready", 10, 0)
    assert total == 3 and ids(rows) == ["no-sequence", good.id, "orphan"]
    assert rows[0].body == b"" and rows[2].body == b""
    views, _ = await Inspector(Hive(backend)).tasks("default", "ready")
    assert [v.name for v in views] == ["<malformed>", "t", "<malformed>"]


async def test_search_reads_task_names_ids_and_error_text(backend: RedisBackend) -> None:
    failed = make_envelope("mail:send", {}, history=(AttemptRecord(1, 1.0, "SMTP refused"),),
                           eta=4e9)
    await backend.enqueue([make_envelope("mail:send", {}), make_envelope("report:build", {}),
                           failed])
    inspector = Inspector(Hive(backend))
    assert (await inspector.tasks("default", "ready", search="MAIL:"))[1] == 1
    assert (await inspector.tasks("default", "delayed", search="smtp"))[1] == 1
    views, total = await inspector.tasks("default", "delayed", search=failed.id[-6:])
    assert total == 1 and views[0].id == failed.id
    assert (await inspector.tasks("default", "ready", search="nothing"))[1] == 0


@pytest.fixture
async def redis_hive() -> AsyncIterator[Hive]:
    url = require_service("redis") + f"?prefix={unique_name('brw')}"
    hive = build_hive(url)
    await populate(hive)
    yield hive
    await hive.backend.wipe()  # type: ignore[attr-defined]
    await hive.close()


async def test_the_dashboard_browses_deletes_and_runs_redis_tasks(redis_hive: Hive) -> None:
    assert browser_of(redis_hive.backend) is not None
    async with client_for(redis_hive) as client:
        await browser_scenario(redis_hive, client)


@pytest.mark.integration
async def test_browse_on_a_cluster_reaches_every_master(
        cluster_make: Callable[..., RedisBackend]) -> None:
    b = cluster_make()
    queues = await spread_queues(b)
    later = {q: make_envelope("t", q, queue=q, eta=4e9) for q in queues}
    await b.enqueue([make_envelope("t", q, queue=q) for q in queues] + list(later.values()))
    for q in queues:
        assert (await b.browse(q, "ready", 10, 0))[1] == 1
        assert ids((await b.browse(q, "delayed", 10, 0))[0]) == [later[q].id]
        found = await b.find_task(q, later[q].id)
        assert found is not None and found.state == "delayed"
        assert await b.run_now(q, later[q].id)
        assert (await b.browse(q, "ready", 10, 0))[1] == 2
