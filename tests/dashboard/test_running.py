"""What runs now and what ran last: a queue's own charts, running tasks with their progress
and running time (from worker heartbeats), cron jobs' last fire and outcome, and bulk actions
on selected tasks and dead letters (memory and sqlite, over HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from tests.dashboard.conftest import client_for, populate
from workhive import Hive, Module, TaskContext
from workhive.backend import WorkerInfo
from workhive.inspector import inspect_of
from workhive.worker import Worker


async def test_a_queue_page_charts_that_queue_only(hive: Hive, client: httpx.AsyncClient) -> None:
    page = (await client.get("/queues/fast")).text
    assert "History of queue fast" in page and 'data-chart="throughput"' in page
    assert ('<input type="hidden" name="queue" value="fast" data-history-filter="queue">'
            in page)
    assert '<select name="queue"' not in page  # the queue is fixed, not picked
    assert "demo:ok" in page and "demo:boom" not in page  # only this queue's tasks to pick
    data = (await client.get("/api/history?queue=fast")).json()
    assert sum(data["succeeded"]) == 3 and sum(data["failed"]) == 0


running = Module("running")
#: set by the test to let running:slow finish
release: dict[str, asyncio.Event] = {}


@running.task("running:slow", queue="slow")
async def slow(p: dict[str, str], ctx: TaskContext) -> int:
    await ctx.progress(0.4, "exported 400 rows")
    await release[p["key"]].wait()
    return 7


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until true; the heartbeat carries what the dashboard shows."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the dashboard never showed it")


async def test_running_tasks_show_their_worker_time_and_progress(backend_url: str) -> None:
    hive = Hive(backend_url)
    hive.include(running)
    release[backend_url] = asyncio.Event()
    worker = Worker(hive, concurrency=2, poll_interval=0.02)
    worker.heartbeat_interval = 0.05
    handle = await hive.enqueue("running:slow", {"key": backend_url}, store_result=True)
    run = asyncio.create_task(worker.run())
    async with client_for(hive) as c:
        async def listed() -> bool:
            return bool((await c.get("/api/workers")).json()["running"])

        await _until(listed)
        (row,) = (await c.get("/api/workers")).json()["running"]
        assert row["id"] == handle.id and row["name"] == "running:slow"
        assert row["queue"] == "slow" and row["worker"] == worker.id
        assert row["progress"] == 0.4 and row["message"] == "exported 400 rows"
        assert row["running_s"] >= 0 and row["started_at"] <= time.time()
        assert row["href"] == f"/queues/slow/tasks/{handle.id}"
        page = (await c.get("/workers")).text
        assert '<progress max="1" value="0.400"></progress> 40%' in page
        assert f'<a href="/queues/slow/tasks/{handle.id}">{handle.id}</a>' in page
        (task,) = (await c.get("/api/queues/slow/tasks?state=in_flight")).json()["tasks"]
        assert task["worker"] == worker.id and task["progress"] == 0.4
        assert "running for" in (await c.get("/queues/slow?state=in_flight")).text
        detail = (await c.get(f"/api/queues/slow/tasks/{handle.id}")).json()
        assert detail["running"]["worker"] == worker.id
        assert detail["status"]["state"] == "running" and detail["status"]["progress"] == 0.4
        html = (await c.get(f"/queues/slow/tasks/{handle.id}")).text
        assert "Result record" in html and "exported 400 rows" in html and worker.id in html
        release[backend_url].set()
        assert await hive.handle(handle.id).result(timeout=10) == 7
        finished = await c.get(f"/queues/slow/tasks/{handle.id}")  # gone, its record kept
        assert finished.status_code == 200 and "succeeded" in finished.text
        assert (await c.get(f"/api/queues/slow/tasks/{handle.id}")).json()["state"] == "finished"
    worker.stop()
    await run
    await hive.close()


clock = Module("clock")


@clock.cron("* * * * * *", name="clock:noop", queue="clock")
async def noop() -> None:
    return None


async def test_cron_shows_the_last_fire_a_worker_reports(backend_url: str) -> None:
    hive = Hive(backend_url)
    hive.include(clock)
    worker = Worker(hive, poll_interval=0.02)
    worker.heartbeat_interval = 0.05
    run = asyncio.create_task(worker.run())
    async with client_for(hive) as c:
        async def fired() -> bool:  # and its task ran
            return bool((await c.get("/api/cron")).json()["jobs"][0]["last_run"] == "succeeded")

        await _until(fired)
        (job,) = (await c.get("/api/cron")).json()["jobs"]
        assert job["last_worker"] == worker.id and job["failed"] == 0
        assert job["last_outcome"].startswith("enqueued clock:noop as ")
        assert job["last_fire"] < job["next_fire"] and job["last_ago_s"] >= 0
        assert job["last_run_at"] >= job["last_fired_at"]
        page = (await c.get("/cron")).text
        assert "last run" in page and "enqueued clock:noop" in page
    worker.stop()
    await run
    await hive.close()


async def test_cron_takes_the_latest_fire_of_every_worker(hive: Hive,
                                                          client: httpx.AsyncClient) -> None:
    now = time.time()
    inspect = inspect_of(hive.backend, "test")
    tick = now - 60
    await inspect.heartbeat(WorkerInfo("w-old", "h", 1, [], 1, now, now, {
        "cron": {"demo:tick": [tick - 300, tick - 299, "published demo.tick to 2 group(s)"]}}),
        60)
    await inspect.heartbeat(WorkerInfo("w-new", "h", 2, [], 1, now, now, {
        "cron": {"demo:tick": [tick, tick + 1, "failed: BackendUnavailable: down"],
                 "gone:job": [tick, tick, "?"], "bad": "not a list"},
        "cron_runs": {"demo:tick": [str(tick), tick + 2, "dead"]}}), 60)
    (job,) = (await client.get("/api/cron")).json()["jobs"]
    assert job["last_fire"] == tick and job["last_worker"] == "w-new" and job["failed"] == 1
    assert job["last_run"] == "failed (dead letter)" and job["last_run_at"] == tick + 2
    assert "failed: BackendUnavailable: down" in (await client.get("/cron")).text


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_bulk_replay_and_purge_of_selected_dead_letters(
        hive: Hive, client: httpx.AsyncClient) -> None:
    await populate(hive, dead=2)  # three dead letters now
    ids = [d["id"] for d in (await client.get("/api/dead")).json()["dead_letters"]]
    assert len(ids) == 3
    page = (await client.get("/dead")).text
    assert f'<input type="checkbox" name="id" value="{ids[0]}" form="bulk"' in page
    assert 'formaction="/dead/purge-selected"' in page and "data-select-all" in page
    body = f"id={ids[0]}&id={ids[1]}&back=%2Fqueues%2Fdefault%3Fstate%3Ddead"
    replayed = await client.post("/dead/replay-selected", content=body, headers=FORM)
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/queues/default?state=dead&replayed=2"
    assert "Replayed 2 dead letter(s)." in (await client.get(replayed.headers["location"])).text
    assert [d["id"] for d in (await client.get("/api/dead")).json()["dead_letters"]] == [ids[2]]
    purged = await client.post("/api/dead/purge-selected", json={"ids": [ids[2], "nope"]})
    assert purged.json() == {"purged": 1}
    assert (await client.get("/api/dead")).json()["dead_letters"] == []
    nothing = await client.post("/api/dead/replay-selected", json={"ids": []})
    assert nothing.status_code == 400 and "select at least one" in nothing.json()["error"]
    evil = await client.post("/dead/purge-selected", content="id=x&back=%2F%2Fevil.example",
                             headers=FORM)
    assert evil.headers["location"] == "/?purged=0"  # never back to another site


async def test_bulk_delete_of_selected_tasks(hive: Hive, client: httpx.AsyncClient) -> None:
    later = [(await hive.enqueue("demo:ok", {"n": i}, delay=3600)).id for i in range(3)]
    page = (await client.get("/queues/fast?state=delayed")).text
    assert 'formaction="/queues/fast/tasks/delete-selected"' in page
    assert f'name="id" value="{later[0]}" form="bulk"' in page
    body = f"id={later[0]}&id={later[1]}&back=%2Fqueues%2Ffast%3Fstate%3Ddelayed"
    deleted = await client.post("/queues/fast/tasks/delete-selected", content=body,
                                headers=FORM)
    assert deleted.headers["location"] == "/queues/fast?state=delayed&deleted=2&cancelling=0"
    assert "Deleted 2 task(s)." in (await client.get(deleted.headers["location"])).text
    left = (await client.get("/api/queues/fast/tasks?state=delayed")).json()["tasks"]
    assert [t["id"] for t in left] == [later[2]]
    again = await client.post("/api/queues/fast/tasks/delete-selected",
                              json={"ids": [later[0], later[2]]})
    assert again.json() == {"deleted": 1, "cancel_requested": 0, "not_found": 1}


async def test_bulk_actions_are_refused_read_only_and_cross_site(
        hive: Hive, ro_client: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    page = (await ro_client.get("/dead")).text
    assert 'name="id"' not in page and "selected" not in page
    for path in ("/api/dead/replay-selected", "/api/dead/purge-selected",
                 "/api/queues/fast/tasks/delete-selected"):
        refused = await ro_client.post(path, json={"ids": ["x"]})
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    cross = await client.post("/dead/purge-selected", content="id=x", headers={
        **FORM, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert len((await client.get("/api/dead")).json()["dead_letters"]) == 1  # untouched
