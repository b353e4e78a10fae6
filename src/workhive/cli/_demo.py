"""``workhive demo``: the example app end to end on the embedded default backend.

It runs :mod:`workhive.demo`, the example app shipped inside the package (so a plain ``pip
install workhive`` is enough), prints what registered, enqueues a batch (flag-disabled tasks
are reported as dropped), publishes events to two groups, runs an in-process worker with a
progress bar until every message reached a final state and the 2-second cron job fired at
least once, then prints a summary. Totals are measured as deltas from a baseline, so
re-running on a kept ``--db`` is still truthful.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from workhive.backend import topic_matches
from workhive.cli._common import CliError, console, run, set_verbose
from workhive.cli._demo_report import DemoRun, print_declarations, print_summary
from workhive.demo import scenario, services
from workhive.demo.app import create_hive
from workhive.hive import Hive
from workhive.inspector import Inspector, Snapshot

#: The demo's backend. One line to switch: "memory://demo" runs without touching the disk.
DEMO_BACKEND = "sqlite:///{db}"
#: Every 2 seconds. croniter reads a 6th field as *seconds* (last), so this is "* * * * * */2";
#: "*/2 * * * * *" would mean "every second of every even minute".
DEMO_CRON = "* * * * * */2"
#: A safety net, not a benchmark: the demo normally finishes in a few seconds.
DEMO_DEADLINE = 45.0


class _HideTaskLogs(logging.Filter):
    """Per-attempt task logs would scroll the progress bar away; the summary reports them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("workhive.task")


@click.command("demo")
@click.option("--db", type=click.Path(dir_okay=False), help="SQLite file to use (kept).")
@click.option("--keep", is_flag=True, help="Keep the temporary database and print its path.")
@click.option("-v", "--verbose", is_flag=True, help="Show every log line.")
@click.pass_context
def demo_command(ctx: click.Context, db: str | None, keep: bool, verbose: bool) -> None:
    """Run the example app end to end with a progress bar and a summary."""
    verbose = set_verbose(ctx, verbose)
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_HideTaskLogs())
    tmpdir = None if db else Path(tempfile.mkdtemp(prefix="workhive-demo-"))
    path = Path(db).resolve() if db else Path(tmpdir or ".") / "demo.db"
    url = DEMO_BACKEND.format(db=path)
    out = console()
    started = time.monotonic()
    try:
        demo = run(_run(url, out))
    finally:
        if tmpdir is not None and not keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print_summary(out, demo)
    out.print(f"[green]Demo finished in {time.monotonic() - started:.1f}s[/] on {url}")
    if db or keep:
        out.print(f"Database kept at {path} (try: workhive status --backend {url})")


async def _run(url: str, out: Console) -> DemoRun:
    services.reset()
    hive: Hive = create_hive(backend=url, overdue_schedule=DEMO_CRON)
    inspector = Inspector(hive)
    print_declarations(out, inspector.declarations(), hive.backend.name)
    demo = DemoRun()
    try:
        baseline = await inspector.snapshot()
        for name, payload in scenario.tasks():
            result = await hive.enqueue(name, payload)
            (demo.enqueued if result.id else demo.dropped)[name] += 1
            if not result.id:
                demo.dropped_flag[name] = hive.disabled.get(name, "?")
        for event, payload in scenario.events():
            demo.published[event] += 1
            demo.copies += await hive.publish(event, payload) or 0
        out.print(f"Enqueued {sum(demo.enqueued.values())} task(s), dropped "
                  f"{sum(demo.dropped.values())} (feature flags off); published "
                  f"{sum(demo.published.values())} event(s) as {demo.copies} group copies")
        cron_copies = sum(1 for job in hive.crons.values() for sub in hive.subscribers
                          if job.publish and topic_matches(sub.pattern, job.publish))
        expected = sum(demo.enqueued.values()) + demo.copies + cron_copies
        worker = hive.worker(concurrency=8, shutdown_timeout=5.0)
        running = asyncio.create_task(worker.run(), name="demo-worker")
        try:
            final = await _follow(inspector, baseline, expected, running, out)
        finally:
            worker.stop()
            await running
        demo.finish(baseline, final, worker, await inspector.dead_letters(limit=20),
                    services.outbox.messages, hive)
    finally:
        await hive.close()
    return demo


def _settled(baseline: Snapshot, snap: Snapshot) -> tuple[int, bool]:
    """Messages that reached a final state since ``baseline``, and whether all queues are idle."""
    before = {s.queue: s.processed + s.dead for s in baseline.queues}
    done = sum(s.processed + s.dead - before.get(s.queue, 0) for s in snap.queues)
    idle = all(s.ready == 0 and s.in_flight == 0 and s.delayed == 0 for s in snap.queues)
    return done, idle


async def _follow(inspector: Inspector, baseline: Snapshot, expected: int,
                  running: asyncio.Task[None], out: Console) -> Snapshot:
    """Poll the backend and drive the progress bar until every message is final and idle."""
    deadline = time.monotonic() + DEMO_DEADLINE
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as progress:
        bar = progress.add_task("Working (tasks, events, cron)", total=expected)
        while True:
            snap = await inspector.snapshot()
            done, idle = _settled(baseline, snap)
            progress.update(bar, completed=min(done, expected))
            if done >= expected and idle:
                return snap
            if running.done():
                running.result()  # surface a crashed worker
                raise CliError("the demo worker stopped before the work was done")
            if time.monotonic() > deadline:
                raise CliError(f"demo did not finish within {DEMO_DEADLINE:.0f}s "
                               f"({done}/{expected} messages settled)")
            await asyncio.sleep(0.1)


__all__ = ["DEMO_BACKEND", "demo_command"]
