"""``workhive dashboard``: serve :func:`workhive.dashboard.create_app` with uvicorn.

Starlette and uvicorn are an install extra, so this module imports them only when the command
runs: the rest of the CLI works without them, and ``workhive dashboard`` then says how to
install them and exits 2 (a :class:`CliError`). uvicorn's own loggers go through the CLI's log
handler (``[INFO] ...``); request access lines only with ``-v``, since the page polls every two
seconds.

Listening beyond loopback needs a token (``--token`` or ``WORKHIVE_DASHBOARD_TOKEN``): the
command refuses to start without one, so a dashboard reachable from a network is never open.
"""

from __future__ import annotations

import logging

import click

from workhive.cli._app import HiveSpec, hive_command
from workhive.cli._common import CliError

#: When listening on loopback, only these Host headers are served (no DNS rebinding).
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
INSTALL_HINT = "workhive dashboard needs Starlette and uvicorn: pip install 'workhive[dashboard]'"


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8181, show_default=True)
@click.option("--read-only", is_flag=True,
              help="Show everything; refuse replay, purge, pause and trigger.")
@click.option("--token", envvar="WORKHIVE_DASHBOARD_TOKEN", default=None,
              help="Require this secret (login page, bearer token or basic-auth password). "
                   "Also read from WORKHIVE_DASHBOARD_TOKEN.")
@hive_command
def dashboard_command(spec: HiveSpec, host: str, port: int, read_only: bool,
                      token: str | None) -> None:
    """Web UI: queues, charts, tasks, workers, cron, dead letters (replay/purge), pause."""
    if not spec.verbose:  # a server says where it listens: uvicorn's start-up lines are INFO
        logging.getLogger().setLevel(logging.INFO)
    if token is not None and not token.strip():
        raise CliError("--token (or WORKHIVE_DASHBOARD_TOKEN) is empty; give a real secret")
    if host not in LOOPBACK and token is None:
        raise CliError(f"refusing to listen on {host} without a login: anyone who can reach "
                       "it could replay, purge and pause. Give --token (or set "
                       "WORKHIVE_DASHBOARD_TOKEN), or listen on 127.0.0.1")
    try:
        import uvicorn

        from workhive.dashboard import create_app
    except ImportError as exc:
        raise CliError(f"{INSTALL_HINT} ({exc})") from exc
    hive = spec.build(must_exist=True)
    mode = (" (read-only)" if read_only else "") + (", token required" if token else "")
    click.echo(f"workhive dashboard{mode} for the {hive.backend.name} backend on "
               f"http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    allowed = LOOPBACK if host in LOOPBACK else None
    uvicorn.run(create_app(hive, read_only=read_only, allowed_hosts=allowed, token=token),
                host=host,
                port=port, log_config=None, access_log=spec.verbose,
                log_level=logging.DEBUG if spec.verbose else logging.INFO)
