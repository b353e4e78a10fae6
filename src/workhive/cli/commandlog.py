"""``workhive log tail`` and ``workhive workers``: look at a command log from the shell.

Both read through the public :class:`~workhive.commandlog.MessageLog` API only (head, reads,
checkpoints), so they work on every log URL (SQLite, PostgreSQL, NATS JetStream, Kafka) and
never change what is in it. (Opening a log creates its tables, stream or topics if they are
missing, as it does for a worker.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from workhive.commandlog import Message, MessageLog, open_log
from workhive.errors import WorkhiveError

_PAYLOAD_WIDTH = 80
_LOG_HELP = "sqlite:///…, postgresql://…, nats://host:4222/STREAM or kafka://host:9092/topic"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _row(m: Message) -> tuple[str, str, str, str]:
    text = m.payload.decode("utf-8", "replace")
    if len(text) > _PAYLOAD_WIDTH:
        text = text[: _PAYLOAD_WIDTH - 1] + "…"
    return str(m.id), _when(m.timestamp), m.name, text


def _table(messages: list[Message]) -> Table:
    table = Table("id", "time", "command", "payload")
    for m in messages:
        table.add_row(*_row(m))
    return table


async def _tail(log: MessageLog, n: int, follow: bool, console: Console) -> None:
    await log.open()
    try:
        head = await log.head()
        console.print(f"log {log.url}: head {head}")
        last = max(0, head - n)
        messages = await _read(log, last, n)
        if messages:
            console.print(_table(messages))
            last = messages[-1].id
        while follow:
            await log.wait_for(last, 1.0)
            for m in await log.read_after(last, 1000):
                console.print("\t".join(_row(m)), highlight=False)
                last = m.id
    finally:
        await log.close()


async def _read(log: MessageLog, after: int, n: int) -> list[Message]:
    """Up to ``n`` messages after ``after``: a log may return fewer per call than asked."""
    out: list[Message] = []
    while len(out) < n:
        batch = await log.read_after(after, n - len(out))
        if not batch:
            break
        out += batch
        after = batch[-1].id
    return out


async def _workers(log: MessageLog, console: Console) -> None:
    await log.open()
    try:
        head = await log.head()
        checkpoints = await log.checkpoints()
    finally:
        await log.close()
    console.print(f"log {log.url}: head {head}")
    table = Table("worker", "checkpoint", "lag", "updated")
    for name, (last_id, updated) in checkpoints.items():
        table.add_row(name, str(last_id), str(max(0, head - last_id)), _when(updated))
    if not checkpoints:
        console.print("no worker has saved a checkpoint yet")
    else:
        console.print(table)


def _run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a command body, turning workhive errors (bad URL, store down) into CLI errors.

    Exit code 2 with one line, like every other user error of the CLI (see workhive.cli).
    """
    try:
        asyncio.run(make())
    except KeyboardInterrupt:
        pass
    except WorkhiveError as exc:
        raise _UserError(str(exc)) from exc


class _UserError(click.ClickException):
    exit_code = 2  # the CLI's code for anything the user can fix


@click.group("log")
def log_group() -> None:
    """Inspect the command log."""


@log_group.command("tail")
@click.option(
    "--log", "url", required=True, envvar="WORKHIVE_LOG", help=_LOG_HELP
)
@click.option("-n", "count", default=20, show_default=True, help="How many last messages to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new messages.")
def tail_command(url: str, count: int, follow: bool) -> None:
    """Show the log head and the last N messages."""
    _run(lambda: _tail(open_log(url), count, follow, Console()))


@click.command("workers")
@click.option(
    "--log", "url", required=True, envvar="WORKHIVE_LOG", help=_LOG_HELP
)
def workers_command(url: str) -> None:
    """Show each command worker's checkpoint and lag behind the log head."""
    _run(lambda: _workers(open_log(url), Console()))
