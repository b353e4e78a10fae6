"""A worker process's HTTP side: ``/metrics``, ``/healthz`` and ``/readyz``.

``--metrics-port`` serves all three (Prometheus needs ``workhive[prometheus]``); ``--health-port``
serves only the two probes, with the standard library alone, for deployments that want probes
without metrics. Given both, with different ports, each port serves its part; given the same
port twice, one server answers everything. Under ``--processes N`` the supervisor sets
``WORKHIVE_WORKER_INDEX`` per child and child *i* adds *i* to both ports, so the children do
not fight over one port.

The probe loop (:func:`workhive._health.probe_forever`) runs on the worker's event loop once the
backend is open, every ``--probe-interval`` seconds; its answer drives readiness and the
queue-depth gauges alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from workhive import __version__
from workhive._health import (
    Health,
    ProbeListener,
    health_routes,
    probe_forever,
    start_http_server,
    tick_forever,
)
from workhive.cli._common import CliError
from workhive.middleware.logs import Logs
from workhive.middleware.prometheus import PrometheusMetrics, WorkerMetrics, metrics_app

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from workhive.hive import Hive
    from workhive.worker import Worker

logger = logging.getLogger("workhive.cli")

#: Seconds between broker probes unless ``--probe-interval`` says otherwise: readiness follows
#: an outage within about this long, and a scrape sees queue depths at most this old.
DEFAULT_PROBE_INTERVAL = 5.0


def worker_index() -> int:
    """This process's number under ``--processes`` (0 when it runs alone)."""
    index = os.environ.get("WORKHIVE_WORKER_INDEX", "0")
    if not index.isdigit():
        raise CliError(f"$WORKHIVE_WORKER_INDEX must be a worker number, got {index!r}")
    return int(index)


class Endpoints:
    """The servers of one worker process and the health they report.

    Build it before ``hive.worker()`` (the metrics layer must be in the chain the worker
    builds), call :meth:`watch` with the worker, run the worker inside :meth:`running`, and
    :meth:`close` at the end.
    """

    def __init__(self, hive: Hive, *, metrics_port: int | None, health_port: int | None,
                 host: str, probe_interval: float = DEFAULT_PROBE_INTERVAL) -> None:
        self.hive = hive
        self.health = Health()
        self.probe_interval = probe_interval
        self.prometheus = add_prometheus(hive) if metrics_port is not None else None
        self.listeners: list[ProbeListener] = []
        self.servers: list[WSGIServer] = []
        offset = worker_index()
        routes = health_routes(self.health)
        try:
            if self.prometheus is not None and metrics_port is not None:
                port = metrics_port + offset
                self.servers.append(start_http_server(
                    host, port, routes, metrics_app(self.prometheus.registry)))
                logger.info("Prometheus metrics on http://%s:%d/metrics (health: /healthz, "
                            "/readyz)", host, port)
            if health_port is not None and health_port != metrics_port:
                port = health_port + offset
                self.servers.append(start_http_server(host, port, routes))
                logger.info("Health checks on http://%s:%d/healthz and /readyz", host, port)
        except BaseException:
            self.close()
            raise

    def watch(self, worker: Worker) -> None:
        """Export ``worker``'s identity and, from each probe, the queue depths."""
        if self.prometheus is None:
            return
        label = self.hive.config.backend_label(self.hive.backend.name)
        self.listeners.append(WorkerMetrics(self.prometheus.registry, worker_id=worker.id,
                                            backend=label, version=__version__))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Tick for liveness from the start, open the hive, then probe the broker; stop both on
        the way out. Opening here is the worker's own open done early (it is idempotent)."""
        ticker = asyncio.create_task(tick_forever(self.health), name="workhive-liveness")
        tasks = [ticker]
        try:
            await self.hive.open()
            tasks.append(asyncio.create_task(
                probe_forever(self.health, self.hive.backend, self.probe_interval,
                              self.listeners), name="workhive-probe"))
            yield
        finally:
            self.health.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()


def add_prometheus(hive: Hive) -> PrometheusMetrics:
    """The hive's :class:`PrometheusMetrics`, added to its chain when it has none.

    The layer goes right after ``Logs`` (outermost when there is none): outside
    ``Retries``, so it counts what the worker will do with each message rather than the raw
    exception. An app that already put one in its own chain keeps it, and its registry is the
    one served.
    """
    existing = next((m for m in hive.middleware if isinstance(m, PrometheusMetrics)), None)
    if existing is None:
        existing = PrometheusMetrics()
        first_log = next((i for i, m in enumerate(hive.middleware)
                          if isinstance(m, Logs)), -1)
        hive.middleware.insert(first_log + 1, existing)
    return existing
