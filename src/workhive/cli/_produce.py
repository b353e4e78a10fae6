"""``workhive enqueue`` and ``workhive publish``: produce work from a shell or a script.

Without ``--app`` the CLI is a bare producer (it has no handler code), so ``enqueue`` needs
``--queue`` to know where a task goes; with ``--app`` the payload is validated against the
handler's type before anything is stored, and a task switched off by a feature flag is
reported as dropped rather than as an error (the same contract as ``Hive.enqueue``).

``--store-result`` / ``--result-ttl`` ask for the run's result to be kept, as ``Hive.enqueue``'s
``store_result`` / ``result_ttl`` do, so a script can enqueue now and read the outcome later
with ``workhive result ID``; the output names that command whenever the result will be kept
(asked here, or declared by the task in the ``--app``).
"""

from __future__ import annotations

import json

import click

from workhive.cli._app import HiveSpec, hive_command, run_and_close
from workhive.cli._common import CliError, console, parse_json
from workhive.hive import Hive
from workhive.results import result_keep


@click.command("enqueue")
@click.argument("name")
@click.argument("payload", required=False, metavar="[PAYLOAD_JSON]")
@click.option("--queue", "-q", help="Queue (required for a task this CLI has no --app for).")
@click.option("--priority", "-p", type=int, help="Higher runs first.")
@click.option("--delay", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Run no earlier than this many seconds from now.")
@click.option("--idempotency-key", "-k", "idempotency_key",
              help="A second enqueue with the same key is a no-op.")
@click.option("--store-result", is_flag=True,
              help="Keep the run's state and result, to read with 'workhive result ID'.")
@click.option("--result-ttl", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Keep the result this long (implies --store-result; default: the task's "
                   "declaration, else one day).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@hive_command
def enqueue_command(
    spec: HiveSpec,
    name: str,
    payload: str | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    idempotency_key: str | None,
    store_result: bool,
    result_ttl: float | None,
    as_json: bool,
) -> None:
    """Enqueue task NAME with an optional JSON payload ('-' reads stdin)."""
    data = parse_json(payload, "PAYLOAD_JSON")
    hive = spec.build()
    # a flag left off means "as the task declares", not store_result=False
    result = run_and_close(hive, hive.enqueue(
        name, data, queue=queue, priority=priority, delay=delay or None,
        idempotency_key=idempotency_key, store_result=store_result or None,
        result_ttl=result_ttl))
    task = hive.tasks.get(name)
    kept = result_keep(store_result or None, result_ttl,
                       task.options if task is not None else None) is not None
    _report_enqueue(hive, name, result.id, result.duplicate, as_json, kept)


def _report_enqueue(hive: Hive, name: str, message_id: str, duplicate: bool,
                    as_json: bool, kept: bool) -> None:
    flag = hive.disabled.get(name) if not message_id else None
    if as_json:
        click.echo(json.dumps({"task": name, "id": message_id or None, "duplicate": duplicate,
                               "dropped_by_flag": flag}))
    elif flag is not None:
        console().print(f"[yellow]Dropped {name}: feature flag {flag!r} is off[/]")
    elif duplicate:
        console().print(f"Duplicate of {message_id}: {name} was already enqueued with that key")
    else:
        console().print(f"Enqueued {name} [bold]{message_id}[/] on {hive.backend.name}")
        if kept:
            console().print(f"Follow it with: workhive result {message_id}")


@click.command("publish")
@click.argument("event")
@click.argument("payload", required=False, metavar="[PAYLOAD_JSON]")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@hive_command
def publish_command(spec: HiveSpec, event: str, payload: str | None, as_json: bool) -> None:
    """Publish EVENT with an optional JSON payload to every subscribed group."""
    data = parse_json(payload, "PAYLOAD_JSON")
    if not event.strip():
        raise CliError("EVENT must not be empty")
    hive = spec.build()
    copies = run_and_close(hive, hive.publish(event, data))
    if as_json:
        click.echo(json.dumps({"event": event, "groups": copies}))
    elif copies == 0:
        console().print(f"[yellow]Published {event}, but no subscriber group is bound to it: "
                        "nobody will receive it[/]")
    elif copies is None:
        console().print(f"Published {event} (the broker routes it to the bound groups)")
    else:
        console().print(f"Published {event} to {copies} group(s)")
