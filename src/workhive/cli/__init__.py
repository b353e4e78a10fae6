"""The ``workhive`` command line (click + rich).

Exit codes: 0 success; 2 for anything the user can fix — a bad ``--app`` path, bad JSON, a
config error, an unknown task, an invalid payload, a missing backend capability, an unreachable
broker — reported as one red line (the traceback too with ``-v``); 1 when a worker had to be
stopped by a second signal. The error boundary lives in :class:`_Main` so that every
subcommand, including those other modules contribute, gets the same treatment.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from workhive import __version__
from workhive.cli._common import VERBOSE_KEY, CliError, check_arguments, report_error
from workhive.cli._cron import cron_group
from workhive.cli._demo import demo_command
from workhive.cli._dlq import dlq_group
from workhive.cli._produce import enqueue_command, publish_command
from workhive.cli._status import status_command
from workhive.cli._tasks import cancel_command, result_command
from workhive.cli._worker import worker_command
from workhive.errors import WorkhiveError

USER_ERRORS = (WorkhiveError, CliError)


class _Main(click.Group):
    """A group whose invoke turns user errors into exit code 2 and one red line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # every argument of every subcommand passes here first, before click decodes options
        try:
            check_arguments(args)
        except CliError as exc:
            report_error(exc, verbose=False)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            report_error(exc, verbose=bool(ctx.meta.get(VERBOSE_KEY, False)))
            ctx.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logs and full tracebacks.")
@click.version_option(__version__, prog_name="workhive")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """workhive: background tasks, events and cron jobs."""
    ctx.meta[VERBOSE_KEY] = verbose


for _command in (worker_command, enqueue_command, publish_command, status_command, dlq_group,
                 cron_group, demo_command, cancel_command, result_command):
    cli.add_command(_command)

# Written by other engineers, possibly not there yet: the CLI must work without them. Imported
# by name at run time so mypy is happy before and after they land.
_OPTIONAL_COMMANDS = {
    "workhive.cli.commandlog": ("log_group", "workers_command"),
    "workhive.cli.scaffold": ("new_group",),
    "workhive.cli._dashboard": ("dashboard_command",),
}
for _module_name, _names in _OPTIONAL_COMMANDS.items():
    try:
        _module = importlib.import_module(_module_name)
        _found = [getattr(_module, name) for name in _names]
    except (ImportError, AttributeError):
        continue
    for _command in _found:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point (``workhive = workhive.cli:main``)."""
    cli(prog_name="workhive")


__all__ = ["cli", "main"]
