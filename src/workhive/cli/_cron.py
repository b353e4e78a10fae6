"""``workhive cron list``: what the app schedules and when each job fires next.

Cron jobs are declared in code, so this needs ``--app``; it never touches the backend.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import click
from rich.table import Table

from workhive.cli._app import HiveSpec, hive_command
from workhive.cli._common import console
from workhive.inspector import Inspector


@click.group("cron")
def cron_group() -> None:
    """Inspect cron jobs."""


@cron_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@hive_command
def cron_list(spec: HiveSpec, as_json: bool) -> None:
    """List cron jobs: schedule, next fire time (UTC), target."""
    spec.require_app("workhive cron list")
    now = time.time()
    jobs = Inspector(spec.build()).cron_jobs(now)
    if as_json:
        click.echo(json.dumps([{"job": j.name, "schedule": j.schedule, "next_fire": j.next_fire,
                                "target": j.target} for j in jobs]))
        return
    if not jobs:
        console().print("No cron jobs registered.")
        return
    table = Table(title="Cron jobs")
    for column in ("job", "schedule", "next fire (UTC)", "in", "target"):
        table.add_column(column)
    for job in jobs:
        at = datetime.fromtimestamp(job.next_fire, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(job.name, job.schedule, at, f"{job.next_fire - now:.0f}s", job.target)
    console().print(table)
