"""``workhive worker``: run a hive's handlers until told to stop.

Signals: the first SIGTERM/SIGINT stops fetching and lets running handlers
finish within ``--shutdown-timeout`` (the rest go back to the queue), and the process exits 0;
a second signal stops at once (running handlers are cancelled and released, exit code 1, so a
supervisor can tell a cut-short shutdown from a clean one). ``--burst`` drains the queues and
exits 0, for cron-driven batch runs and tests. A signal that arrives while the process is
still starting (importing the app, opening the backend) is recorded and replayed here, so it
takes the same path (:mod:`workhive._startup_signals`).

On the ``disable`` (noop) backend background work is switched off on purpose: the worker logs
that, stays up doing nothing until a signal (``--burst``: exits at once), and exits 0, so the
same deployment runs whether tasks are enabled or not (its health checks, if asked for, answer
live and ready; there are no metrics).

``--metrics-port`` / ``--health-port`` serve ``/metrics``, ``/healthz`` and ``/readyz``
(:mod:`workhive.cli._endpoints`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import click

from workhive._startup_signals import take
from workhive.cli._app import HiveSpec
from workhive.cli._common import LOG_FORMAT_KEY, CliError, hive_options, run, set_verbose
from workhive.cli._endpoints import DEFAULT_PROBE_INTERVAL, Endpoints
from workhive.cli._lifeline import watch_supervisor
from workhive.cli._supervisor import Supervisor
from workhive.hive import Hive
from workhive.worker import Worker

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
              "'workhive[prometheus]'), and the health checks /healthz and /readyz. With "
              "--processes N, worker process i serves PORT+i (i = $WORKHIVE_WORKER_INDEX, "
              "0..N-1): scrape all N ports.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="Address the metrics and health endpoints listen on (0.0.0.0 for every "
              "interface).")
@click.option("--health-port", type=click.IntRange(min=1, max=65535), metavar="PORT",
              help="Serve only the health checks, /healthz (liveness) and /readyz (readiness), "
              "on http://HOST:PORT; needs no extra package. --metrics-port serves them too. "
              "With --processes N, process i serves PORT+i.")
@click.option("--probe-interval", type=click.FloatRange(min=0.05), metavar="SECONDS",
              default=DEFAULT_PROBE_INTERVAL, show_default=True,
              help="How often a worker with --metrics-port or --health-port asks the broker "
              "for its queue depths; readiness follows the last answer.")
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
    health_port: int | None,
    probe_interval: float,
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
    logger.info("Setting up task registrations...")
    hive = spec.build()
    if not hive.config.worker.enabled:
        file, key = hive.config.where("worker.enabled")
        logger.warning("Workers are disabled (%s is false in %s); exiting", key, file)
        return
    if processes > 1 and not is_disabled(hive):
        hive.check_runnable()  # fail here, once, not in every child
        for option, port in (("--metrics-port", metrics_port), ("--health-port", health_port)):
            if port is not None and port + processes - 1 > 65535:
                raise CliError(f"{option} {port} with --processes {processes} needs ports up "
                               f"to {port + processes - 1}; the highest is 65535")
        serving = metrics_port is not None or health_port is not None
        child_args = [f"--{name.replace('_', '-')}={value}" for name, value in (
            ("queues", queues), ("concurrency", concurrency),
            ("shutdown_timeout", shutdown_timeout), ("lease", lease), ("app", app),
            ("backend", backend), ("config", config), ("metrics_port", metrics_port),
            ("health_port", health_port),
            ("metrics_host", metrics_host if serving else None),
            ("probe_interval", probe_interval if serving else None),
            ("log_format", ctx.meta.get(LOG_FORMAT_KEY)))
            if value is not None]
        child_args += [flag for flag, on in (("--burst", burst), ("-v", verbose)) if on]
        sys.exit(Supervisor(child_args, processes, burst=burst).run())
    if is_disabled(hive):
        if metrics_port is not None:
            logger.info("No metrics endpoint: tasks are disabled, there is nothing to measure")
        probes = None
        if metrics_port is not None or health_port is not None:
            probes = Endpoints(hive, metrics_port=None, host=metrics_host,
                               health_port=metrics_port if health_port is None else health_port)
        logger.info("Registering all tasks with worker server...")
        try:
            run(idle(hive, burst=burst, endpoints=probes))
        finally:
            if probes is not None:
                probes.close()
        return
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    if queues is not None and not names:
        raise CliError("--queues needs at least one queue name")
    if not hive.tasks and not hive.subscribers and not hive.services:
        raise CliError(f"--app {app!r} registers no tasks or subscribers (feature flags off?); "
                       "there is nothing to run")
    hive.check_runnable()
    endpoints = None
    if metrics_port is not None or health_port is not None:
        # before hive.worker(): the worker builds its chains from hive.middleware
        endpoints = Endpoints(hive, metrics_port=metrics_port, health_port=health_port,
                              host=metrics_host, probe_interval=probe_interval)
    try:
        logger.info("Registering all tasks with worker server...")
        worker = hive.worker(queues=names, concurrency=concurrency,
                             shutdown_timeout=shutdown_timeout, lease=lease)
        if endpoints is not None:
            endpoints.watch(worker)
        forced = run(serve(hive, worker, burst=burst, endpoints=endpoints))
    finally:
        if endpoints is not None:
            endpoints.close()
    if forced:
        # Unfinished tasks are already released; a sync handler still sleeping in a pool
        # thread cannot be cancelled, and a normal exit would join that thread. "Stop now"
        # means now, so skip interpreter shutdown.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def is_disabled(hive: Hive) -> bool:
    """True on the ``disable`` (noop) backend: tasks are accepted and dropped, none run."""
    return hive.backend.name == "noop"


async def idle(hive: Hive, *, burst: bool, endpoints: Endpoints | None = None) -> None:
    """The worker of a disabled app: say so, then wait for SIGTERM/SIGINT (burst: return)."""
    label = hive.config.backend_label(hive.backend.name)
    await hive.open()
    try:
        async with endpoints.running() if endpoints else contextlib.nullcontext():
            logger.info("Worker server running (backend: %s): background tasks are disabled; "
                        "enqueued tasks are dropped and nothing runs here", label)
            if not burst:
                await _until_signal()
    finally:
        await hive.close()
    logger.info("Worker stopped (backend: %s, tasks disabled)", label)


async def _until_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        logger.info("Received %s: stopping", signal.Signals(signum).name)
        stop.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    for early in take():  # sent while we were starting up
        on_signal(early)
    try:
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def serve(hive: Hive, worker: Worker, *, burst: bool,
                endpoints: Endpoints | None = None) -> bool:
    """Run ``worker`` with signal handling; True when a second signal forced the stop.

    With ``endpoints``, liveness ticks from the start and readiness turns false at the first
    signal (a shutting-down worker takes no new work)."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def on_signal(signum: int) -> None:
        seen.append(signum)
        name = signal.Signals(signum).name
        if endpoints is not None:
            endpoints.health.stopping = True
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
        async with endpoints.running() if endpoints else contextlib.nullcontext():
            await worker.run(until_idle=burst, wait_delayed=False)
    finally:
        try:
            await hive.close()
        finally:  # after close: a signal while closing must not kill us mid-way
            for signum in installed:
                loop.remove_signal_handler(signum)
    return len(seen) >= 2
