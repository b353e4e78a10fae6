"""Plumbing every command shares: the error type, output consoles, logging, option sets.

Why here and not in each command: the exit-code contract (2 for anything the user can fix, one
red line, traceback only with ``-v``) and the logging format (timestamped ``[INFO] ...`` lines,
as Go workers print them, or JSON with ``--log-format json``; :mod:`workhive.cli._logformat`)
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
from workhive.cli._logformat import FORMATS, formatter

T = TypeVar("T")

VERBOSE_KEY = "workhive.verbose"
LOG_FORMAT_KEY = "workhive.log_format"
LOG_FORMAT_ENV = "WORKHIVE_LOG_FORMAT"


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


def report_error(exc: BaseException, *, verbose: bool) -> None:
    """One red line naming the problem; the full traceback only when asked for.

    Under ``--log-format json`` the line is a JSON log record like every other line on stderr
    (the traceback, with ``-v``, in its ``exception`` field), so a log shipper parses it too.
    """
    kind = "" if isinstance(exc, CliError) else f"{type(exc).__name__}: "
    # one line, even for multi-line driver messages; never a password a driver echoed
    message = f"Error: {kind}{redact(' '.join(str(exc).split()))}"
    trace = redact("".join(traceback.format_exception(exc))) if verbose else None
    if _errors_as_json():
        record = logging.LogRecord("workhive.cli", logging.ERROR, "", 0, message, None, None)
        record.exc_text = trace
        click.echo(formatter("json").format(record), err=True)
        return
    if trace:
        click.echo(trace, err=True, nl=False)
    click.secho(message, fg="red", err=True)


def _errors_as_json() -> bool:
    """Whether the command asked for JSON logs; an invalid choice here means text (the error
    being reported may be that very choice)."""
    ctx = click.get_current_context(silent=True)
    chosen = ctx.meta.get(LOG_FORMAT_KEY) if ctx is not None else None
    return str(chosen or os.environ.get(LOG_FORMAT_ENV, "")).strip().lower() == "json"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_handler: logging.Handler | None = None


def setup_logging(level: int, log_format: str = "text") -> None:
    """Install the one CLI log handler on the root logger (replacing an earlier one).

    ``log_format``: ``text`` (timestamped ``[LEVEL] message`` lines) or ``json`` (one object
    per line); see :mod:`workhive.cli._logformat`.
    """
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = _CurrentStderr()
    _handler.setFormatter(formatter(log_format))
    root.addHandler(_handler)
    root.setLevel(level)


def log_format(ctx: click.Context) -> str:
    """``--log-format`` if the command has it, else ``$WORKHIVE_LOG_FORMAT``, else ``text``."""
    chosen = ctx.meta.get(LOG_FORMAT_KEY) or os.environ.get(LOG_FORMAT_ENV) or "text"
    chosen = str(chosen).strip().lower()
    if chosen not in FORMATS:
        raise CliError(f"${LOG_FORMAT_ENV} must be one of {', '.join(FORMATS)}, got {chosen!r}")
    return chosen


def set_verbose(ctx: click.Context, verbose: bool, *, quiet_level: int = logging.WARNING) -> bool:
    """Record ``-v`` where the error boundary can see it and set the log level to match."""
    verbose = verbose or bool(ctx.meta.get(VERBOSE_KEY, False))
    ctx.meta[VERBOSE_KEY] = verbose
    setup_logging(logging.DEBUG if verbose else quiet_level, log_format(ctx))
    return verbose


def _remember_log_format(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[LOG_FORMAT_KEY] = value.lower()


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
    """Add ``--app/--backend/--config/-v/--log-format``: how a command finds its hive and its
    backend, and how it logs."""
    options = [
        click.option("--app", "app", metavar="MODULE:ATTR", envvar="WORKHIVE_APP",
                     help="The Hive (or a factory returning one), e.g. myapp.tasks:hive."),
        click.option("--backend", "backend", metavar="URL",
                     help="Backend URL; wins over the app's and the config's backend."),
        click.option("--config", "config", metavar="PATH", type=click.Path(),
                     help="A workhive.yaml, or a directory with featureflags.yaml + config.yaml "
                          "(default: $WORKHIVE_CONFIG, ./workhive.yaml, ./config/)."),
        click.option("-v", "--verbose", is_flag=True, help="Debug logs and full tracebacks."),
        click.option("--log-format", type=click.Choice(FORMATS, case_sensitive=False),
                     envvar=LOG_FORMAT_ENV, expose_value=False, callback=_remember_log_format,
                     help="Log lines as timestamped text (default) or one JSON object per "
                          f"line for log shippers (${LOG_FORMAT_ENV})."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
