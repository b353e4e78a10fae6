"""``workhive status``: queue depths, totals, live workers, the progress running tasks report
(``ctx.progress``) and, with ``--watch``, rates.

Reads only through :class:`~workhive.inspector.Inspector`. Rates need two snapshots, so they
appear from the second refresh of ``--watch`` on; ``--json`` prints one JSON object per refresh
(JSON lines), so ``--watch --json`` can feed a script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import asdict
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from workhive.cli._app import HiveSpec, hive_command, run_and_close
from workhive.cli._common import console
from workhive.inspector import Inspector, QueueRate, Snapshot


def snapshot_json(snap: Snapshot, rates: dict[str, QueueRate] | None) -> dict[str, Any]:
    queues = []
    for stat in snap.queues:
        row: dict[str, Any] = asdict(stat)
        if rates is not None and stat.queue in rates:
            row["processed_per_s"] = round(rates[stat.queue].processed_per_s, 3)
            row["failed_per_s"] = round(rates[stat.queue].failed_per_s, 3)
        queues.append(row)
    workers = [asdict(w) for w in snap.workers]
    return {"backend": snap.backend, "taken_at": snap.taken_at, "queues": queues,
            "workers": workers}


def render(snap: Snapshot, rates: dict[str, QueueRate] | None) -> Group:
    """The queue table and the worker table for one snapshot."""
    queues = Table(title=f"Queues ({snap.backend})")
    columns = ["queue", "ready", "delayed", "in-flight", "dead", "processed", "failed"]
    if rates is not None:
        columns += ["processed/s", "failed/s"]
    for i, column in enumerate(columns):
        queues.add_column(column, justify="left" if i == 0 else "right")
    for s in snap.queues:
        row = [s.queue, *(str(n) for n in (s.ready, s.delayed, s.in_flight, s.dead,
                                            s.processed, s.failed))]
        if rates is not None:
            rate = rates.get(s.queue)
            row += [f"{rate.processed_per_s:.1f}", f"{rate.failed_per_s:.1f}"] if rate else ["", ""]
        queues.add_row(*row, style="red" if s.dead else None)
    if not snap.queues:
        queues.add_row("(no queues yet)", *[""] * (len(columns) - 1))
    workers = Table(title="Workers")
    for column in ("worker", "queues", "concurrency", "in-flight", "processed", "heartbeat"):
        workers.add_column(column)
    for w in snap.workers:
        workers.add_row(w.id, ",".join(w.queues), str(w.concurrency),
                        str(w.extra.get("in_flight", "")), str(w.extra.get("processed", "")),
                        f"{max(snap.taken_at - w.seen_at, 0):.0f}s ago")
    if not snap.workers:
        workers.add_row("(no live workers)", "", "", "", "", "")
    running = progress_rows(snap)
    if not running:
        return Group(queues, workers)
    progress = Table(title="Progress of running tasks")
    for column in ("task id", "task", "done", "message", "worker"):
        progress.add_column(column, justify="right" if column == "done" else "left")
    for task_row in running:
        progress.add_row(*task_row)
    return Group(queues, workers, progress)


def progress_rows(snap: Snapshot) -> list[tuple[str, str, str, str, str]]:
    """What running tasks reported with ``ctx.progress`` (carried by worker heartbeats, so
    as fresh as the last beat)."""
    rows = []
    for w in snap.workers:
        reported = w.extra.get("progress")
        if not isinstance(reported, dict):
            continue
        for task_id, entry in reported.items():
            if isinstance(entry, list | tuple) and len(entry) == 3:
                name, fraction, message = entry
                done = f"{fraction:.0%}" if isinstance(fraction, int | float) else "?"
                rows.append((str(task_id), str(name), done, str(message), w.id))
    return rows


@click.command("status")
@click.option("--watch", "-w", is_flag=True, help="Refresh until interrupted; shows rates.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--count", type=click.IntRange(min=0), default=0, hidden=True,
              help="Stop --watch after this many refreshes (0: never); for scripts and tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per refresh).")
@hive_command
def status_command(spec: HiveSpec, watch: bool, interval: float, count: int,
                   as_json: bool) -> None:
    """Show queue depths, totals, and workers with their heartbeats."""
    hive = spec.build(must_exist=True)
    inspector = Inspector(hive)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how --watch normally ends
        if watch:
            run_and_close(hive, _watch(inspector, interval, count, as_json))
            return
        snap = run_and_close(hive, inspector.snapshot())
        if as_json:
            click.echo(json.dumps(snapshot_json(snap, None)))
        else:
            console().print(render(snap, None))


async def _watch(inspector: Inspector, interval: float, count: int, as_json: bool) -> None:
    previous = await inspector.snapshot()
    rates: dict[str, QueueRate] | None = None
    refreshes = 1
    out = console()
    if as_json:
        click.echo(json.dumps(snapshot_json(previous, None)))
        live = None
    else:
        live = Live(render(previous, None), console=out, auto_refresh=False)
        live.start()
    try:
        while count == 0 or refreshes < count:
            await asyncio.sleep(interval)
            current = await inspector.snapshot()
            rates = Inspector.rates(previous, current)
            previous, refreshes = current, refreshes + 1
            if live is None:
                click.echo(json.dumps(snapshot_json(current, rates)))
            else:
                live.update(render(current, rates), refresh=True)
    finally:
        if live is not None:
            live.stop()
