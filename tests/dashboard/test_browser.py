"""The dashboard in a real browser (Chromium through Playwright) against a running worker.

One server, one worker and one browser for the whole module, each test continuing from the
state the previous one left (the order is the order a user would go: log in, watch, fix a
dead letter, pause a queue). The dashboard and the worker share a SQLite file but are
separate hives, as two processes would be; they run on one background event loop.

Needs Debian's ``chromium`` (Playwright's own browser download is not used). Without it the
tests skip locally and fail under ``CI``. A screenshot of each page lands in
``tests/artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests._services import free_port, in_ci
from workhive import Hive, Module, TaskContext
from workhive.cli._dashboard import LOOPBACK
from workhive.dashboard import create_app
from workhive.worker import Worker

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("WORKHIVE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
TOKEN = "s3cret-token"
WAIT_MS = 20_000  # how long a change may take to show (worker, history flush, refresh)
T = TypeVar("T")

app_module = Module("browser")
#: while True, browser:flaky fails (and, with no retries, becomes a dead letter)
broken = {"flaky": True}


@app_module.task("browser:ok", queue="fast")
async def ok(p: dict[str, int]) -> None:
    return None


@app_module.task("browser:flaky", max_retries=0)
async def flaky(p: dict[str, int]) -> None:
    if broken["flaky"]:
        raise RuntimeError("the ledger is locked")


#: browser:export runs until the test sets this (on the stack's loop)
release = asyncio.Event()


@app_module.task("browser:export", queue="exports")
async def export(p: dict[str, int], ctx: TaskContext) -> None:
    await ctx.progress(0.4, "exported 400 rows")
    await release.wait()


@app_module.cron("* * * * * *", name="browser:tick", queue="clock")
async def tick() -> None:
    return None


def _chromium() -> str:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        reason = (f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                  "WORKHIVE_TEST_CHROMIUM)")
        if in_ci():
            pytest.fail(f"CI needs a browser: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("CI needs Playwright: pip install playwright", pytrace=False)
        pytest.skip("Playwright is not installed (pip install playwright)")
    return CHROMIUM


class Stack:
    """The dashboard server and a worker on one background event loop."""

    def __init__(self, db: Path) -> None:
        self.url = f"sqlite:///{db}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.producer = self._hive()
        self.worker = Worker(self._hive(), concurrency=4, poll_interval=0.1)
        self.worker.heartbeat_interval = 0.2  # running tasks show within a refresh
        self._thread = threading.Thread(target=self._run, daemon=True)
        import uvicorn

        app = create_app(self._hive(), allowed_hosts=LOOPBACK, token=TOKEN)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))

    def _hive(self) -> Hive:
        hive = Hive(self.url)
        hive.include(app_module)
        return hive

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            await self.producer.open()
            worker = asyncio.create_task(self.worker.run())
            await self.server.serve()
            self.worker.stop()
            await worker
            await self.producer.close()
            await self.worker.hive.close()

        self.loop.run_until_complete(main())

    def start(self) -> None:
        self._thread.start()
        for _ in range(3000):  # uvicorn says when it listens; give up after about 30 s
            if self.server.started:
                return
            time.sleep(0.01)
        raise RuntimeError("the dashboard server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the stack's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def enqueue(self, task: str, count: int) -> None:
        async def many() -> None:
            for i in range(count):
                await self.producer.enqueue(task, {"i": i})

        self.call(many())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _chromium()
    running = Stack(tmp_path_factory.mktemp("browser") / "wh.db")
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.set_default_timeout(WAIT_MS)
        errors: list[str] = []  # console errors and CSP violations: none allowed
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("dialog", lambda d: d.accept())  # the confirm() before actions
        yield tab
        browser.close()
    assert errors == []


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cell(page: Any, queue: str, column: int) -> Any:
    """A cell of the live queue table (columns: queue, ready, delayed, in-flight, dead,
    processed, failed...)."""
    return page.locator(f'table[data-rows="queues"] tr:has(a:text-is("{queue}")) '
                        f"td:nth-child({column})")


READY, DEAD, PROCESSED = 2, 5, 6


def test_login_with_the_token(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/workers")
    assert page.url.startswith(stack.base + "/login?next=")
    page.fill("input[name=token]", "wrong")
    page.click("button:text('Log in')")
    page.wait_for_selector("text=That token is not right.")
    shot(page, "login")
    page.fill("input[name=token]", TOKEN)
    page.click("button:text('Log in')")
    page.wait_for_url(stack.base + "/workers")  # back where the user was going
    page.wait_for_selector("td:text-is('alive')")  # the running worker, with its heartbeat
    shot(page, "workers")


def test_overview_counts_and_chart_follow_the_worker(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/")
    chart = page.locator('div[data-chart="throughput"]')
    page.wait_for_selector('div[data-chart="throughput"] canvas')  # uPlot drew it
    before = int(chart.get_attribute("data-total") or 0)
    stack.enqueue("browser:ok", 5)
    page.wait_for_function(
        "n => +document.querySelector('div[data-chart=throughput]').dataset.total >= n",
        arg=before + 5)
    # the cron job's runs count in the chart too: wait for the five themselves
    cell(page, "fast", PROCESSED).filter(has_text="5").wait_for()
    assert cell(page, "fast", PROCESSED).inner_text() == "5"
    shot(page, "overview")


def test_replay_a_dead_letter_and_see_it_run(stack: Stack, page: Any) -> None:
    stack.enqueue("browser:flaky", 1)
    page.goto(stack.base + "/dead")
    link = page.locator('table[data-rows="dead_letters"] td a').first
    link.wait_for()
    shot(page, "dead")
    link.click()
    page.wait_for_selector("text=RuntimeError: the ledger is locked")
    assert "test_browser.py" in page.inner_text("pre:has-text('Traceback')")
    assert "/workhive/worker.py" not in page.content()  # framework frames hidden
    shot(page, "dead-letter")
    broken["flaky"] = False
    page.click("button:text-is('Replay')")
    page.wait_for_selector("text=Replayed 1 dead letter(s).")
    page.goto(stack.base + "/")
    cell(page, "default", PROCESSED).filter(has_text="1").wait_for()  # it ran, and passed
    assert cell(page, "default", DEAD).inner_text() == "0"


def test_pause_stops_the_queue_and_resume_restarts_it(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/")
    page.click("form[action='/queues/fast/pause'] button")
    page.wait_for_selector("text=Queue 'fast' paused.")
    watch = stack.worker._pauses
    for _ in range(WAIT_MS // 100):  # until the worker has seen the pause (it asks every 1 s)
        if "fast" in watch._paused:
            break
        page.wait_for_timeout(100)
    assert "fast" in watch._paused
    stack.enqueue("browser:ok", 3)
    stack.enqueue("browser:flaky", 1)  # the worker keeps fetching the other queue...
    cell(page, "default", PROCESSED).filter(has_text="2").wait_for()
    assert cell(page, "fast", READY).inner_text() == "3"  # ...but not the paused one
    assert cell(page, "fast", PROCESSED).inner_text() == "5"
    page.locator('table[data-rows="queues"] td:text-is("paused")').wait_for()
    shot(page, "paused")
    page.click("form[action='/queues/fast/resume'] button")
    page.wait_for_selector("text=Queue 'fast' resumed.")
    cell(page, "fast", PROCESSED).filter(has_text="8").wait_for()
    assert cell(page, "fast", READY).inner_text() == "0"


def test_task_browser_runs_a_scheduled_task_now(stack: Stack, page: Any) -> None:
    async def later() -> str:
        return (await stack.producer.enqueue("browser:ok", {"i": 99}, delay=3600)).id

    task_id = stack.call(later())
    page.goto(stack.base + "/queues/fast?state=delayed")
    page.click(f"a:text-is('{task_id}')")
    page.wait_for_selector("text=Payload")
    shot(page, "task")
    page.click("button:text-is('Run now')")
    page.wait_for_url("**/queues/fast?state=ready")
    page.goto(stack.base + "/")
    cell(page, "fast", PROCESSED).filter(has_text="9").wait_for()  # the worker ran it


def test_tasks_and_cron_pages(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/tasks")
    row = page.locator('table[data-rows="tasks"] tr:has(td:text-is("browser:ok"))')
    row.locator("td:nth-child(4)").filter(has_text="9").wait_for()  # 9 succeeded
    page.wait_for_selector('div[data-chart="latency"] canvas')
    shot(page, "tasks")
    page.goto(stack.base + "/cron")
    page.locator('table[data-rows="jobs"] td:has-text("enqueued browser:tick as")').wait_for()
    page.locator('table[data-rows="jobs"] td:text-is("succeeded")').wait_for()  # it ran
    shot(page, "cron")


def test_a_running_task_shows_its_worker_and_progress(stack: Stack, page: Any) -> None:
    stack.enqueue("browser:export", 1)
    page.goto(stack.base + "/workers")
    row = page.locator('table[data-rows="running"] tr:has(td:text-is("browser:export"))')
    row.locator("progress").wait_for()
    assert "40%" in row.inner_text() and "exported 400 rows" in row.inner_text()
    shot(page, "workers-running")
    row.locator("a").click()  # the task's own page
    page.wait_for_selector("td:text-is('running for')")
    assert "exported 400 rows" in page.inner_text("main")
    shot(page, "task-running")
    stack.loop.call_soon_threadsafe(release.set)
    page.goto(stack.base + "/workers")
    page.wait_for_selector("td:text-is('No task is running.')")


def test_bulk_purge_of_selected_dead_letters(stack: Stack, page: Any) -> None:
    broken["flaky"] = True
    stack.enqueue("browser:flaky", 2)
    page.goto(stack.base + "/queues/default?state=dead")
    boxes = page.locator('table[data-rows="tasks"] input[name=id]')
    boxes.nth(1).wait_for()
    page.wait_for_selector('div[data-chart="throughput"] canvas')  # the queue's own chart
    page.check("input[data-select-all]")
    page.evaluate("document.getElementById('live-status').textContent = ''")
    page.wait_for_function("() => /updated/.test(document.getElementById('live-status')"
                           ".textContent)")  # a refresh keeps what is ticked
    assert boxes.nth(0).is_checked() and boxes.nth(1).is_checked()
    shot(page, "queue-bulk")
    page.click("button:text-is('Purge selected')")
    page.wait_for_selector("text=Purged 2 dead letter(s).")
    page.wait_for_selector("td:text-is(\"No dead letters in queue 'default'.\")")
