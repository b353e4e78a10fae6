"""``workhive new module NAME``: generate a module from a template (Petrock's feature generator).

The module gets a task, an event subscriber and a test file that passes as generated, so a new
feature starts green and shows each API in use. ``--with-command-worker`` adds a command-log
worker (commands, an event-sourced worker and its tests). The generated tests need only pytest
and workhive itself: they drive asyncio with ``asyncio.run``, not a pytest plugin. Templates
are :class:`string.Template` strings (``$name``, ``$Name``) so generated code needs no escaping
of braces. Nothing is overwritten: an existing directory is an error.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

import click

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_INIT = '''"""The $name module: tasks and event subscribers."""

from $name.tasks import module

__all__ = ["module"]
'''

_INIT_WITH_WORKER = '''"""The $name module: tasks, event subscribers and a command worker."""

from $name.commands import Create${Name}Item
from $name.tasks import module
from $name.worker import ${Name}WorkerState, build_worker

__all__ = ["Create${Name}Item", "${Name}WorkerState", "build_worker", "module"]
'''

_COMMANDS = '''"""Commands of the $name module: typed, named, validated, then logged."""

from __future__ import annotations

from typing import Annotated

import msgspec

from workhive.commandlog import Command


class Create${Name}Item(Command, frozen=True):
    command_name = "$name/create"
    item_id: str
    content: Annotated[str, msgspec.Meta(min_length=1)]
'''

_TASKS = '''"""Tasks and event subscribers of the $name module."""

from __future__ import annotations

import logging

import msgspec

from workhive import Module, TaskContext

logger = logging.getLogger(__name__)

module = Module("$name")

#: What the handlers did; replace with your own logic (the generated test reads it).
PROCESSED: list[str] = []


class Process${Name}Item(msgspec.Struct):
    item_id: str


class ${Name}ItemCreated(msgspec.Struct):
    item_id: str


@module.task("$name:process", queue="default", max_retries=3, timeout=30)
async def process_item(payload: Process${Name}Item, ctx: TaskContext) -> None:
    """Runs on a worker; retried up to 3 times, each attempt limited to 30 s."""
    logger.info("processing %s (attempt %d)", payload.item_id, ctx.attempt)
    PROCESSED.append(payload.item_id)


@module.subscribe("$name.created", group="$name")
async def on_item_created(event: ${Name}ItemCreated, ctx: TaskContext) -> None:
    """Every subscriber group gets each event; here it schedules the processing task."""
    await ctx.enqueue("$name:process", {"item_id": event.item_id})
'''

_WORKER = '''"""The $name command worker: follows the command log and keeps its own state.

Handlers run again on replay (``ctx.replaying``) to rebuild state on start: keep side effects
(emails, API calls) behind ``if ctx.replaying: return`` or in periodic work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from $name.commands import Create${Name}Item
from workhive.commandlog import CommandWorker, Message, WorkerContext

logger = logging.getLogger(__name__)


@dataclass
class ${Name}WorkerState:
    items: dict[str, str] = field(default_factory=dict)
    announced: list[str] = field(default_factory=list)


def on_create(ctx: WorkerContext[${Name}WorkerState], cmd: Create${Name}Item, msg: Message) -> None:
    ctx.state.items[cmd.item_id] = cmd.content
    if ctx.replaying:
        return
    logger.info("new $name item %s (message %d)", cmd.item_id, msg.id)
    ctx.state.announced.append(cmd.item_id)


def build_worker() -> CommandWorker[${Name}WorkerState]:
    worker = CommandWorker("$name worker", "follows $name commands", state=${Name}WorkerState())
    worker.on_command(Create${Name}Item, on_create)
    return worker
'''

_TEST = '''"""Generated tests for the $name module's tasks: they pass as generated; extend them."""

from __future__ import annotations

import asyncio

from $name.tasks import PROCESSED, module
from workhive import Hive
from workhive.testing import run_until_idle


def test_task_and_subscriber() -> None:
    async def scenario() -> None:
        hive = Hive("memory://")  # in-process: real retries, delays and dead letters
        hive.include(module)
        async with hive:
            await hive.enqueue("$name:process", {"item_id": "a"})
            await hive.publish("$name.created", {"item_id": "b"})
            await run_until_idle(hive)

    PROCESSED.clear()
    asyncio.run(scenario())
    assert sorted(PROCESSED) == ["a", "b"]
'''

_WORKER_TEST = '''"""Generated tests for the $name command worker: they pass as generated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from $name.commands import Create${Name}Item
from $name.worker import build_worker, on_create
from workhive.commandlog import AppContext, Executor, Message
from workhive.commandlog.sqlite import SQLiteMessageLog


def test_worker_handler_is_a_plain_function() -> None:
    ctx = build_worker().ctx
    on_create(ctx, Create${Name}Item(item_id="1", content="hello"), Message(1, "", b"", 0.0))
    assert ctx.state.items == {"1": "hello"} and ctx.state.announced == ["1"]


def test_worker_replays_without_side_effects(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SQLiteMessageLog(str(tmp_path / "log.db")) as log:
            app = AppContext(log, Executor(log))
            await app.executor.execute(Create${Name}Item(item_id="1", content="hello"))
            worker = build_worker()
            await worker.start(app)
            await worker.work()
            await worker.stop(app)
            assert worker.state.announced == ["1"]

            restarted = build_worker()
            await restarted.start(app)
            assert restarted.state.items == {"1": "hello"} and restarted.state.announced == []

    asyncio.run(scenario())
'''

#: What every module gets: filename template -> content template.
FILES = {
    "__init__.py": _INIT,
    "tasks.py": _TASKS,
    "test_$name.py": _TEST,
}
#: With ``--with-command-worker``: these replace or join :data:`FILES`.
WORKER_FILES = {
    "__init__.py": _INIT_WITH_WORKER,
    "commands.py": _COMMANDS,
    "worker.py": _WORKER,
    "test_${name}_worker.py": _WORKER_TEST,
}


def render_module(name: str, target: Path, *, command_worker: bool = False) -> list[Path]:
    """Write the module ``name`` under ``target`` (with a command-log worker if asked); return
    the files written."""
    if not _NAME_RE.match(name) or keyword.iskeyword(name):
        raise click.BadParameter(
            f"{name!r} is not a valid module name (lowercase letters, digits, underscores)",
            param_hint="NAME",
        )
    root = target / name
    if root.exists():
        raise click.ClickException(f"{root} already exists; not overwriting it")
    values = {"name": name, "Name": "".join(part.title() for part in name.split("_"))}
    root.mkdir(parents=True)
    written = []
    files = {**FILES, **WORKER_FILES} if command_worker else FILES
    for filename, template in files.items():
        path = root / Template(filename).substitute(values)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
        written.append(path)
    return written


@click.group("new")
def new_group() -> None:
    """Generate code from templates."""


@new_group.command("module")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the module directory.",
)
@click.option(
    "--with-command-worker",
    "command_worker",
    is_flag=True,
    help="Also generate a command-log worker: commands, the worker and its tests.",
)
def new_module(name: str, directory: Path, command_worker: bool) -> None:
    """Create module NAME with a task, a subscriber and a passing test."""
    for path in render_module(name, directory, command_worker=command_worker):
        click.echo(f"created {path}")
    click.echo(f"run its tests: pytest {directory / name}")
