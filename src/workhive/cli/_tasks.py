"""``workhive cancel ID...`` and ``workhive result ID``: act on one enqueued task by its id.

``cancel`` deletes a task still waiting (pending or delayed) or tells the worker running it to
stop; on a broker, which cannot delete a waiting message, it flags the task and the worker that
receives it drops it. ``result`` shows the record a task keeps when it asked for its result
(``store_result``): its state, progress, value or failure. Both go through the same hive
calls as the Python API (:meth:`Hive.cancel`, :meth:`Hive.handle`), so a backend without the
capability is refused the same way, with the setting that fixes it.
"""

from __future__ import annotations

import json

import click

from workhive._tracking import CancelsOnArrival
from workhive.cli._app import HiveSpec, hive_command, run_and_close
from workhive.cli._common import console


@click.command("cancel")
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@hive_command
def cancel_command(spec: HiveSpec, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Cancel tasks by ID: a waiting one is deleted (on a broker: flagged, and dropped when a
    worker receives it), a running one is told to stop."""
    hive = spec.build(must_exist=True)

    async def cancel_each() -> list[bool]:
        return [await hive.cancel(task_id) for task_id in task_ids]

    outcomes = run_and_close(hive, cancel_each())
    on_arrival = isinstance(hive.backend, CancelsOnArrival) and hive.backend.cancel_on_arrival
    for task_id, deleted in zip(task_ids, outcomes, strict=True):
        if as_json:
            click.echo(json.dumps({"id": task_id, "deleted": deleted}))
        elif deleted:
            console().print(f"Cancelled {task_id}: it was waiting and is deleted")
        elif on_arrival:  # a broker: a waiting message cannot be taken out of its queue
            console().print(f"Cancel requested for {task_id}, flagged: it will be dropped when "
                            "a worker receives it, or stopped if it is running (nothing happens "
                            "if it already finished)")
        else:
            console().print(f"Cancel requested for {task_id}: the worker running it stops it "
                            "(nothing happens if it already finished)")


@click.command("result")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@hive_command
def result_command(spec: HiveSpec, task_id: str, as_json: bool) -> None:
    """Show a task's state, progress and result (kept when it asked for store_result)."""
    hive = spec.build(must_exist=True)
    status = run_and_close(hive, hive.handle(task_id).status())
    if as_json:
        click.echo(json.dumps({f: getattr(status, f) for f in status.__struct_fields__},
                              default=repr))
        return
    out = console()
    out.print(f"{task_id}: [bold]{status.state}[/]" + (
        " (nothing recorded: not started, no result asked for, or expired)"
        if status.state == "pending" else ""))
    if status.progress is not None:
        out.print(f"progress: {status.progress:.0%} {status.message}".rstrip())
    if status.state == "succeeded":
        out.print(f"value: {json.dumps(status.value, default=repr)}", markup=False)
    if status.error_type:
        out.print(f"error: {status.error_type}: {status.error_message}", markup=False)
    if status.traceback and spec.verbose:
        out.print(status.traceback, markup=False)
