"""``workhive dlq list|show|replay|purge``: look at and act on dead letters.

Ids may be given as any unique prefix (they are 32 hex characters; nobody types those). An
unknown or ambiguous id is an error naming it, and nothing is replayed or purged unless every
id resolved — a half-applied replay is harder to reason about than a refused one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import click
from rich.markup import escape
from rich.table import Table

from workhive.cli._app import HiveSpec, hive_command, run_and_close
from workhive.cli._common import CliError, console
from workhive.inspector import (
    DeadLetterNotFound,
    DeadLetterView,
    Inspector,
    dead_letter_json,
    dead_letters_of,
)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group("dlq")
def dlq_group() -> None:
    """Inspect, replay and purge dead letters."""


@dlq_group.command("list")
@click.option("--queue", "-q", help="Only this queue.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@hive_command
def dlq_list(spec: HiveSpec, queue: str | None, limit: int, as_json: bool) -> None:
    """List dead letters: id, queue, task, attempts, reason."""
    hive = spec.build(must_exist=True)
    views = run_and_close(hive, Inspector(hive).dead_letters(queue, limit))
    if as_json:
        click.echo(json.dumps([dead_letter_json(v, full=False) for v in views]))
        return
    if not views:
        console().print("The dead-letter queue is empty.")
        return
    table = Table(title="Dead letters")
    table.add_column("id", no_wrap=True)
    for column in ("queue", "task", "attempts", "failed at (UTC)", "reason"):
        table.add_column(column)
    for v in views:
        table.add_row(v.id, v.letter.queue, v.name, str(v.attempts), _when(v.letter.failed_at),
                      escape(v.letter.reason))
    console().print(table)


@dlq_group.command("show")
@click.argument("dead_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
@hive_command
def dlq_show(spec: HiveSpec, dead_id: str, as_json: bool) -> None:
    """Show one dead letter: payload, error, and every attempt with its traceback."""
    hive = spec.build(must_exist=True)
    (view,) = run_and_close(hive, _resolve(Inspector(hive), [dead_id], None))
    if as_json:
        click.echo(json.dumps(dead_letter_json(view, full=True), default=repr))
        return
    out = console()
    letter, env = view.letter, view.envelope
    out.print(f"[bold]Dead letter {view.id}[/]")
    out.print(f"queue:     {escape(letter.queue)}")
    out.print(f"task:      {escape(view.name)}" + (f" ({env.kind})" if env else ""))
    out.print(f"failed at: {_when(letter.failed_at)} UTC")
    out.print(f"reason:    [red]{escape(letter.reason)}[/]")
    if env is None:
        out.print(f"[red]the stored message could not be decoded: {escape(view.decode_error)}[/]")
        return
    out.print("payload:")
    out.print(escape(json.dumps(env.payload, indent=2, default=repr)), soft_wrap=True)
    out.print(f"attempts:  {len(env.history)}")
    for record in env.history:
        out.print(f"[bold]-- attempt {record.attempt + 1} at {_when(record.at)} UTC: "
                  f"{escape(record.error)}[/]")
        if record.traceback:
            out.print(escape(record.traceback.rstrip()), soft_wrap=True)


async def _resolve(inspector: Inspector, prefixes: Sequence[str],
                   queue: str | None) -> list[DeadLetterView]:
    """One dead letter per id (or unique prefix), or CliError naming the one that is not."""
    resolved = []
    for prefix in prefixes:
        if not prefix.strip():
            raise CliError("an empty dead-letter id matches everything; use --all for that")
        try:
            resolved.append(await inspector.dead_letter(prefix, queue))
        except DeadLetterNotFound as exc:
            hint = "" if exc.ambiguous else "; see: workhive dlq list"
            raise CliError(f"{exc}{hint}") from exc
    return resolved


def _acting_on_dead_letters(action: str, done: str, doc: str) -> click.Command:
    """``dlq replay`` or ``dlq purge``: the same arguments and the same id resolution, one
    call apart; built here once so the two cannot drift apart."""

    @dlq_group.command(action, help=doc)
    @click.argument("ids", nargs=-1, metavar="[ID]...")
    @click.option("--all", "all_", is_flag=True,
                  help=f"{action.capitalize()} every dead letter (see --queue).")
    @click.option("--queue", "-q", help="Only dead letters of this queue.")
    @hive_command
    def command(spec: HiveSpec, ids: tuple[str, ...], all_: bool, queue: str | None) -> None:
        hive = spec.build(must_exist=True)
        if bool(ids) == all_:
            raise CliError(f"dlq {action}: name dead-letter ids or pass --all (not both)")
        dead = dead_letters_of(hive.backend, f"dlq {action}")

        async def act() -> int:
            await hive.open()
            chosen = None
            if ids:
                chosen = [v.id for v in await _resolve(Inspector(hive), ids, queue)]
            if action == "replay":
                return await dead.replay_dead(chosen, queue)
            return await dead.purge_dead(chosen, queue)

        console().print(f"{done} {run_and_close(hive, act())} dead letter(s)")

    return command


dlq_replay = _acting_on_dead_letters(
    "replay", "Replayed", "Put dead letters back on their queue with a fresh attempt count.")
dlq_purge = _acting_on_dead_letters("purge", "Purged", "Delete dead letters for good.")
