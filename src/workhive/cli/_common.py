"""Plumbing every command shares: the error type, output consoles, logging, option sets.

Why here and not in each command: the exit-code contract (2 for anything the user can fix, one
red line, traceback only with ``-v``) and the logging format (seed 000's ``[INFO] ...`` lines)
must be identical across commands, and only the CLI may install logging handlers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from rich.console import Console

T = TypeVar("T")

VERBOSE_KEY = "workhive.verbose"
LOG_FORMAT = "[%(levelname)s] %(message)s"


class CliError(Exception):
    """A problem with the command line itself (bad --app, bad JSON, missing argument).

    Kept out of :mod:`workhive.errors` on purpose: the library never raises it.
    """


def console() -> Console:
    """A console bound to the *current* stdout (CliRunner swaps it per invocation).

    Piped or captured output gets 120 columns instead of rich's 80, so ids and task names in
    tables are not cut (``COLUMNS`` still wins).
    """
    out = Console(file=sys.stdout, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(file=sys.stdout, highlight=False, width=120)
    return out


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def report_error(exc: BaseException, *, verbose: bool) -> None:
    """One red line naming the problem; the full traceback only when asked for."""
    if verbose:
        click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
    kind = "" if isinstance(exc, CliError) else f"{type(exc).__name__}: "
    message = " ".join(str(exc).split())  # one line, even for multi-line driver messages
    click.secho(f"Error: {kind}{message}", fg="red", err=True)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_handler: logging.Handler | None = None


def setup_logging(level: int) -> None:
    """Install the one CLI log handler on the root logger (replacing an earlier one)."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = _CurrentStderr()
    _handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(_handler)
    root.setLevel(level)


def set_verbose(ctx: click.Context, verbose: bool, *, quiet_level: int = logging.WARNING) -> bool:
    """Record ``-v`` where the error boundary can see it and set the log level to match."""
    verbose = verbose or bool(ctx.meta.get(VERBOSE_KEY, False))
    ctx.meta[VERBOSE_KEY] = verbose
    setup_logging(logging.DEBUG if verbose else quiet_level)
    return verbose


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's async body; each command owns its event loop."""
    return asyncio.run(coro)


def parse_json(text: str | None, what: str) -> Any:
    """``None`` -> ``None``; ``-`` reads stdin; anything else must be JSON."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} "
                       f"column {exc.colno}): {text[:60]!r}") from exc


F = TypeVar("F", bound=Callable[..., Any])


def hive_options(fn: F) -> F:
    """Add ``--app/--backend/--config/-v``: how a command finds its hive and its backend."""
    options = [
        click.option("--app", "app", metavar="MODULE:ATTR", envvar="WORKHIVE_APP",
                     help="The Hive (or a factory returning one), e.g. myapp.tasks:hive."),
        click.option("--backend", "backend", metavar="URL",
                     help="Backend URL; wins over the app's and the config's backend."),
        click.option("--config", "config", metavar="PATH", type=click.Path(dir_okay=False),
                     help="workhive.yaml to load (default: ./workhive.yaml or $WORKHIVE_CONFIG)."),
        click.option("-v", "--verbose", is_flag=True, help="Debug logs and full tracebacks."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
