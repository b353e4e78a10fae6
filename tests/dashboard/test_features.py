"""Login, charts data, the task browser, pause/resume and cron triggers, over HTTP
(memory and sqlite; the browser tests drive the same pages in Chromium)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.dashboard.conftest import build_hive, populate
from workhive import Hive
from workhive.backend import WorkerInfo
from workhive.cli import cli
from workhive.dashboard import create_app
from workhive.dashboard._auth import COOKIE
from workhive.dashboard._pages import trim_traceback
from workhive.inspector import inspect_of

TOKEN = "t0ken"


def client(hive: Hive, *, token: str | None = None, read_only: bool = False
           ) -> httpx.AsyncClient:
    app = create_app(hive, read_only=read_only, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://testserver")


async def test_token_guards_every_page_but_login_and_static(hive: Hive) -> None:
    async with client(hive, token=TOKEN) as c:
        page = await c.get("/dead?queue=x")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fdead%3Fqueue%3Dx"
        api = await c.get("/api/queues")
        assert api.status_code == 401 and "Bearer" in api.json()["error"]
        assert (await c.post("/api/dead/replay-all")).status_code == 401
        assert (await c.get("/login")).status_code == 200
        assert (await c.get("/static/vendor/uPlot.iife.min.js")).status_code == 200
        assert (await c.get("/api/queues", headers={"Authorization": f"Bearer {TOKEN}"}
                            )).status_code == 200
        basic = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
        assert (await c.get("/api/queues", headers={"Authorization": f"Basic {basic}"}
                            )).status_code == 200
        assert (await c.get("/api/queues", headers={"Authorization": "Bearer nope"}
                            )).status_code == 401


async def test_login_sets_a_cookie_that_is_not_the_token(hive: Hive) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    async with client(hive, token=TOKEN) as c:
        wrong = await c.post("/login", content="token=nope&next=%2Fdead", headers=form)
        assert wrong.status_code == 303 and "failed=1" in wrong.headers["location"]
        assert COOKIE not in c.cookies
        # an absolute next= would send the user elsewhere after logging in: ignored
        evil = await c.post("/login", content="token=t0ken&next=%2F%2Fevil.example",
                            headers=form)
        assert evil.headers["location"] == "/"
        good = await c.post("/login", content="token=t0ken&next=%2Fdead", headers=form)
        assert good.headers["location"] == "/dead"
        cookie = good.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert TOKEN not in cookie
        assert (await c.get("/dead")).status_code == 200
        assert "Log out" in (await c.get("/")).text
        assert (await c.post("/logout")).status_code == 303
        assert (await c.get("/dead")).status_code == 303


def test_an_empty_token_is_refused(hive: Hive) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        create_app(hive, token=" ")


def test_cli_refuses_a_network_address_without_a_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0", "--backend",
                                      "memory://"], env={"WORKHIVE_DASHBOARD_TOKEN": None})
    assert result.exit_code == 2 and "without a login" in result.stderr
    empty = CliRunner().invoke(cli, ["dashboard", "--token", "", "--backend", "memory://"])
    assert empty.exit_code == 2 and "is empty" in empty.stderr


async def test_history_feeds_the_charts_and_the_task_table(client: httpx.AsyncClient) -> None:
    data = (await client.get("/api/history?range=1h")).json()
    assert data["available"] and data["step_s"] == 60 and len(data["t"]) == 60
    assert sum(data["succeeded"]) == 3 and sum(data["failed"]) == 2 and data["total"] == 5
    assert data["tasks"] == ["demo:boom", "demo:ok"]
    only = (await client.get("/api/history?range=1d&task=demo:ok")).json()
    assert sum(only["succeeded"]) == 3 and sum(only["failed"]) == 0 and len(only["t"]) == 144
    assert (await client.get("/api/history?range=2y")).status_code == 400
    rows = {r["task"]: r for r in (await client.get("/api/tasks")).json()["tasks"]}
    assert rows["demo:ok"]["succeeded"] == 3 and rows["demo:ok"]["failure_pct"] == 0.0
    assert rows["demo:boom"]["retried"] == 1 and rows["demo:boom"]["dead"] == 1
    assert rows["demo:boom"]["failure_pct"] == 100.0 and rows["demo:ok"]["p95_ms"] is not None
    page = (await client.get("/tasks")).text
    assert 'data-chart="throughput"' in page and "demo:boom" in page


async def test_a_backend_without_history_says_so() -> None:
    hive = Hive("noop://")
    async with client(hive) as c:
        data = (await c.get("/api/history")).json()
    assert data["available"] is False and data["total"] == 0
    await hive.close()


async def test_task_browser_lists_searches_and_pages(hive: Hive,
                                                     client: httpx.AsyncClient) -> None:
    for i in range(5):
        await hive.enqueue("demo:ok", {"n": i})
    later = await hive.enqueue("demo:ok", {"n": 99}, delay=3600)
    ready = (await client.get("/api/queues/fast/tasks?state=ready&limit=2&offset=2")).json()
    assert ready["total"] == 5 and len(ready["tasks"]) == 2
    page = (await client.get("/queues/fast?state=ready&limit=2&offset=2")).text
    assert "3\u20134 of 5" in page and "previous" in page and "next" in page
    delayed = (await client.get("/api/queues/fast/tasks?state=delayed")).json()
    assert [t["id"] for t in delayed["tasks"]] == [later.id]
    assert delayed["tasks"][0]["at"] > delayed["tasks"][0]["enqueued_at"]
    assert (await client.get(f"/api/queues/fast/tasks?state=ready&q={later.id}")
            ).json()["total"] == 0
    found = (await client.get(f"/api/queues/fast/tasks?state=delayed&q={later.id[-8:]}")
             ).json()
    assert found["total"] == 1
    dead = (await client.get("/api/queues/default/tasks?state=dead&q=REFUSED")).json()
    assert dead["total"] == 1 and dead["tasks"][0]["name"] == "demo:boom"
    assert (await client.get("/api/queues/default/tasks?state=dead&q=nothing-like-it")
            ).json()["total"] == 0
    detail = (await client.get(f"/queues/fast/tasks/{later.id}")).text
    assert "Run now" in detail and "Delete" in detail and "&quot;n&quot;: 99" in detail
    assert (await client.post(f"/api/queues/fast/tasks/{later.id}/run-now")).json() == {
        "ran_now": True}
    assert (await client.get("/api/queues/fast/tasks?state=ready")).json()["total"] == 6
    deleted = await client.post(f"/api/queues/fast/tasks/{later.id}/delete")
    assert deleted.json() == {"deleted": True, "cancel_requested": False}
    gone = await client.get(f"/api/queues/fast/tasks/{later.id}")
    assert gone.status_code == 404 and "may have finished" in gone.json()["error"]
    assert (await client.get("/api/queues/fast/tasks?state=bogus")).status_code == 400


async def test_dead_letters_search(client: httpx.AsyncClient) -> None:
    assert len((await client.get("/api/dead?q=demo:BOOM")).json()["dead_letters"]) == 1
    assert (await client.get("/api/dead?q=zzz")).json()["dead_letters"] == []


async def test_pause_and_resume_through_the_api(hive: Hive, client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/queues/fast/pause")).json() == {"paused": "fast"}
    queues = {q["queue"]: q for q in (await client.get("/api/queues")).json()["queues"]}
    assert queues["fast"]["paused"] == "paused" and queues["default"]["paused"] == "running"
    redirect = await client.post("/queues/fast/resume")
    assert redirect.status_code == 303 and redirect.headers["location"] == "/?resumed=fast"
    assert "Queue &#x27;fast&#x27; resumed." in (await client.get("/?resumed=fast")).text
    assert (await client.get("/api/queues")).json()["queues"][1]["paused"] == "running"


async def test_actions_are_refused_read_only_and_cross_site(hive: Hive) -> None:
    async with client(hive, read_only=True) as c:
        for path in ("/api/queues/fast/pause", "/api/cron/demo:tick/trigger",
                     "/api/queues/fast/tasks/x/delete"):
            response = await c.post(path)
            assert response.status_code == 403 and "read-only" in response.json()["error"]
    async with client(hive) as c:
        response = await c.post("/queues/fast/pause", headers={"Origin": "http://evil.example"})
        assert response.status_code == 403


async def test_cron_trigger_fires_the_job_now(hive: Hive, client: httpx.AsyncClient) -> None:
    assert "Trigger now" in (await client.get("/cron")).text
    fired = await client.post("/api/cron/demo:tick/trigger")
    assert fired.json() == {"triggered": "demo:tick", "target": "demo.tick"}
    missing = await client.post("/api/cron/nope/trigger")
    assert missing.status_code == 404 and "no cron job 'nope'" in missing.json()["error"]


async def test_workers_page_marks_lost_workers(hive: Hive, client: httpx.AsyncClient) -> None:
    now = time.time()
    inspect = inspect_of(hive.backend, "test")
    await inspect.heartbeat(WorkerInfo("w-live", "h1", 1, ["fast"], 4, now - 3700, now), 60)
    await inspect.heartbeat(WorkerInfo("w-gone", "h2", 2, ["fast"], 4, now - 90, now - 30), 60)
    rows = {w["id"]: w for w in (await client.get("/api/workers")).json()["workers"]}
    assert rows["w-live"]["state"] == "alive" and rows["w-gone"]["state"].startswith("lost")
    page = (await client.get("/workers")).text
    assert "1h 1m" in page and '<tr class="bad"><td>w-gone</td>' in page


def test_tracebacks_hide_framework_frames() -> None:
    tb = ('Traceback (most recent call last):\n'
          '  File "/x/site-packages/workhive/worker.py", line 3, in _process\n'
          '    await chain(ctx)\n'
          '  File "/usr/lib/python3.11/asyncio/tasks.py", line 9, in wait_for\n'
          '    return await fut\n'
          '           ^^^^^^^^^\n'
          '  File "/app/billing.py", line 7, in charge\n'
          '    raise RuntimeError("card declined")\n'
          'RuntimeError: card declined')
    short, hidden = trim_traceback(tb)
    assert hidden == 2
    assert short == ('Traceback (most recent call last):\n'
                     '  File "/app/billing.py", line 7, in charge\n'
                     '    raise RuntimeError("card declined")\n'
                     'RuntimeError: card declined')


async def test_the_dead_letter_page_can_show_every_frame(client: httpx.AsyncClient) -> None:
    (entry,) = (await client.get("/api/dead")).json()["dead_letters"]
    short = (await client.get(f"/dead/{entry['id']}")).text
    full = (await client.get(f"/dead/{entry['id']}?frames=all")).text
    assert "workhive/worker.py" not in short and "show every frame" in short
    assert "workhive/worker.py" in full


async def test_sqlite_history_is_shared_by_every_dashboard(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    worker_side = build_hive(url)
    await populate(worker_side)
    await worker_side.close()
    other = build_hive(url)  # a second dashboard process: same file, fresh objects
    async with client(other) as c:
        assert (await c.get("/api/history")).json()["total"] == 5
    await other.close()
