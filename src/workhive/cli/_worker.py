"""``workhive worker``: run a hive's handlers until told to stop.

Signals follow DESIGN §4: the first SIGTERM/SIGINT stops fetching and lets running handlers
finish within ``--shutdown-timeout`` (the rest go back to the queue), and the process exits 0;
a second signal stops at once (running handlers are cancelled and released, exit code 1, so a
supervisor can tell a cut-short shutdown from a clean one). ``--burst`` drains the queues and
exits 0, for cron-driven batch runs and tests. A signal that arrives while the process is
still starting (importing the app, opening the backend) is recorded and replayed here, so it
takes the same path (:mod:`workhive._startup_signals`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import click

from workhive._startup_signals import take
from workhive.cli._app import HiveSpec
from workhive.cli._common import CliError, hive_options, run, set_verbose
from workhive.cli._lifeline import watch_supervisor
from workhive.cli._supervisor import Supervisor
from workhive.hive import Hive
from workhive.middleware.logs import LogMiddleware
from workhive.middleware.prometheus import PrometheusMetrics, start_metrics_server
from workhive.worker import Worker

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

logger = logging.getLogger("workhive.cli")


@click.command("worker")
@click.option("--queues", "-Q", metavar="A,B", help="Only these queues (default: all the "
              "app's task queues and subscriber groups).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Handlers run at once.")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Grace period for running handlers after the first signal.")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="How long a fetched message is ours before another worker may take it.")
@click.option("--burst", is_flag=True, help="Run what is ready now and its retries, then exit "
              "(tasks delayed into the future stay queued).")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes under one supervisor (for CPU-bound handlers).")
@click.option("--metrics-port", type=click.IntRange(min=1, max=65535), metavar="PORT",
              help="Serve Prometheus metrics on http://HOST:PORT/metrics (needs "
              "'workhive[prometheus]'). With --processes N, worker process i serves PORT+i "
              "(i = $WORKHIVE_WORKER_INDEX, 0..N-1): scrape all N ports.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="Address the metrics endpoint listens on (0.0.0.0 for every interface).")
@hive_options
@click.pass_context
def worker_command(
    ctx: click.Context,
    processes: int,
    queues: str | None,
    concurrency: int | None,
    shutdown_timeout: float | None,
    lease: float | None,
    burst: bool,
    metrics_port: int | None,
    metrics_host: str,
    app: str | None,
    backend: str | None,
    config: str | None,
    verbose: bool,
) -> None:
    """Run workers for --app until SIGTERM/SIGINT (or, with --burst, until idle)."""
    set_verbose(ctx, verbose, quiet_level=logging.INFO)
    watch_supervisor()
    spec = HiveSpec(app, backend, config)
    spec.require_app("workhive worker")
    if processes > 1:
        spec.build().check_runnable()  # fail here, once, not in every child
        if metrics_port is not None and metrics_port + processes - 1 > 65535:
            raise CliError(f"--metrics-port {metrics_port} with --processes {processes} needs "
                           f"ports up to {metrics_port + processes - 1}; the highest is 65535")
        child_args = [f"--{name.replace('_', '-')}={value}" for name, value in (
            ("queues", queues), ("concurrency", concurrency),
            ("shutdown_timeout", shutdown_timeout), ("lease", lease), ("app", app),
            ("backend", backend), ("config", config), ("metrics_port", metrics_port),
            ("metrics_host", metrics_host if metrics_port is not None else None))
            if value is not None]
        child_args += [flag for flag, on in (("--burst", burst), ("-v", verbose)) if on]
        sys.exit(Supervisor(child_args, processes, burst=burst).run())
    logger.info("Setting up task registrations...")
    hive = spec.build()
    if not hive.config.worker.enabled:
        logger.warning("Workers are disabled (worker.enabled is false in %s); exiting",
                       hive.config.source)
        return
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    if queues is not None and not names:
        raise CliError("--queues needs at least one queue name")
    if not hive.tasks and not hive.subscribers and not hive.services:
        raise CliError(f"--app {app!r} registers no tasks or subscribers (feature flags off?); "
                       "there is nothing to run")
    hive.check_runnable()
    metrics_server = None
    if metrics_port is not None:
        # before hive.worker(): the worker builds its chains from hive.middleware
        metrics_server = serve_metrics(hive, metrics_port, metrics_host)
    logger.info("Registering all tasks with worker server...")
    worker = hive.worker(queues=names, concurrency=concurrency,
                         shutdown_timeout=shutdown_timeout, lease=lease)
    try:
        forced = run(serve(hive, worker, burst=burst))
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
    if forced:
        # Unfinished tasks are already released; a sync handler still sleeping in a pool
        # thread cannot be cancelled, and a normal exit would join that thread. "Stop now"
        # means now, so skip interpreter shutdown.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def serve_metrics(hive: Hive, port: int, host: str) -> WSGIServer:
    """Add :class:`PrometheusMetrics` to the hive's chain and serve its registry.

    The layer goes right after ``LogMiddleware`` (outermost when there is none): outside
    ``Retries``, so it counts what the worker will do with each message rather than the raw
    exception. An app that already put one in its own chain keeps it, and its registry is the
    one served. Under ``--processes`` the supervisor sets ``WORKHIVE_WORKER_INDEX`` per child
    and child *i* listens on ``port + i``, so the children do not fight over one port.
    """
    existing = next((m for m in hive.middleware if isinstance(m, PrometheusMetrics)), None)
    if existing is None:
        existing = PrometheusMetrics()
        first_log = next((i for i, m in enumerate(hive.middleware)
                          if isinstance(m, LogMiddleware)), -1)
        hive.middleware.insert(first_log + 1, existing)
    index = os.environ.get("WORKHIVE_WORKER_INDEX", "0")
    if not index.isdigit():
        raise CliError(f"$WORKHIVE_WORKER_INDEX must be a worker number, got {index!r}")
    port += int(index)
    server = start_metrics_server(port, host, existing.registry)
    logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return server


async def serve(hive: Hive, worker: Worker, *, burst: bool) -> bool:
    """Run ``worker`` with signal handling; True when a second signal forced the stop."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def on_signal(signum: int) -> None:
        seen.append(signum)
        name = signal.Signals(signum).name
        if len(seen) == 1:
            logger.info("Received %s: finishing running tasks (up to %.0fs); send it again to "
                        "stop now", name, worker.shutdown_timeout)
            worker.stop()
        else:
            logger.warning("Received %s again: stopping now, unfinished tasks go back to the "
                           "queue", name)
            worker.stop(force=True)

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        # not available off the main thread or on Windows: the worker still runs
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    for early in take():  # sent while we were starting up: same path, now
        on_signal(early)
    try:
        # burst runs what is ready now (and the retries of what it ran); tasks delayed into the
        # future (a 24 h purge) are left for the next run instead of keeping the process alive
        await worker.run(until_idle=burst, wait_delayed=False)
    finally:
        try:
            await hive.close()
        finally:  # after close: a signal while closing must not kill us mid-way
            for signum in installed:
                loop.remove_signal_handler(signum)
    return len(seen) >= 2
