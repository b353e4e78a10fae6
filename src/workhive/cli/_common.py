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

from workhive._redact import redact

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
        click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
    kind = "" if isinstance(exc, CliError) else f"{type(exc).__name__}: "
    # one line, even for multi-line driver messages; never a password a driver echoed
    message = redact(" ".join(str(exc).split()))
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
        text = read_stdin(what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} "
                       f"column {exc.colno}): {text[:60]!r}") from exc


def read_stdin(what: str) -> str:
    """Stdin as UTF-8 text; other bytes are a :class:`CliError`, whatever the locale says.

    Read as bytes: a text stdin decodes with the locale (strict, a traceback) or with
    surrogateescape (the C locale), which would smuggle lone surrogates into a payload.
    """
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # already text (a test harness): refuse what the locale let through
        text: str = sys.stdin.read()
        _require_utf8(text, f"{what} from stdin")
        return text
    data: bytes = stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{what} from stdin is not UTF-8 text (byte {data[exc.start]:#04x} at "
                       f"offset {exc.start})") from None


def _require_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        shown = f"byte {ord(bad) - 0xDC00:#04x}" if 0xDC80 <= ord(bad) <= 0xDCFF else repr(bad)
        try:  # show undecodable argv bytes as \xff, other lone surrogates as \udxxx
            raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "backslashreplace").decode()
        raise CliError(f"{what} is not UTF-8 text ({shown} at character {exc.start}): "
                       f"{raw[:60]}") from None


def check_arguments(args: list[str]) -> None:
    """Refuse command-line arguments that are not UTF-8 (a :class:`CliError`).

    Python hands undecodable argv bytes over as lone surrogates (surrogateescape); left alone
    they fail deep inside encoding or a driver with a traceback.
    """
    for position, arg in enumerate(args, start=1):
        _require_utf8(arg, f"argument {position}")


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
