"""Prometheus metrics per task and queue, for scraping from outside the process.

:class:`~workhive.middleware.metrics.Metrics` keeps per-process counters for the worker summary;
this layer exports the same outcomes (plus durations, queue wait and in-progress counts) as
Prometheus series, so dashboards and alerts can see every worker process::

    workhive_tasks_total{task,queue,outcome}      succeeded | retried | deferred | dead | skipped
    workhive_task_duration_seconds{task,queue}    histogram, one observation per outcome
    workhive_task_queue_wait_seconds{task,queue}  histogram, first attempt only
    workhive_tasks_in_progress{task,queue}        gauge

A message dead-lettered before any handler ran (malformed bytes, no handler for its name, a
payload its handler's type refuses) counts as ``outcome="dead"`` too, with no duration: one
alert on ``workhive_tasks_total{outcome="dead"}`` sees every dead letter. Malformed bytes have no
name and count under ``task="(malformed)"``.

:class:`WorkerMetrics` adds what belongs to the process rather than to a task: the worker's
identity, whether its broker answers, and the queue depths from its last probe::

    workhive_worker_info{worker_id,backend,version}  always 1
    workhive_broker_up                                1 when the last probe reached the broker
    workhive_queue_messages{queue,state}              ready | delayed | in_flight | dead

Place it outside :class:`~workhive.middleware.retry.Retries` (``workhive worker --metrics-port``
puts it right after ``Logs``) so it sees what the worker will do with the message: a
failure with retries left arrives here as ``Retry``, one without as ``Reject``.

``prometheus_client`` is an optional dependency (``pip install 'workhive[prometheus]'``); it is
imported when a :class:`PrometheusMetrics` is created, never when this module is imported, so
the CLI can import this module unconditionally.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from workhive._context import TaskContext
from workhive.backend import QueueStats
from workhive.errors import ConfigError, Reject, Retry, Skip
from workhive.middleware.base import CallNext, Middleware

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import WSGIApplication

    from prometheus_client import CollectorRegistry, Counter
    from prometheus_client.metrics_core import Metric

#: 1 ms to 5 min: sub-millisecond tasks are not worth telling apart, and a handler running
#: longer than five minutes is a batch job whose exact length a histogram cannot help with.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)
#: Queue wait runs longer than handlers do when a backlog builds up, so it goes on to an hour.
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (*DURATION_BUCKETS, 600.0, 1800.0, 3600.0)

OUTCOMES = ("succeeded", "retried", "deferred", "dead", "skipped")

#: The ``task`` label of a dead letter whose bytes did not decode: it has no name.
MALFORMED_TASK = "(malformed)"

#: The ``state`` label values of ``workhive_queue_messages``, as :class:`QueueStats` counts them.
QUEUE_STATES = ("ready", "delayed", "in_flight", "dead")

_INSTALL_HINT = "pip install 'workhive[prometheus]'"


def _missing(exc: ImportError) -> ConfigError:
    """The error for a missing optional dependency: say how to get it, not just what failed."""
    error = ConfigError(f"Prometheus metrics need the prometheus-client package: {_INSTALL_HINT}")
    error.__cause__ = exc
    return error


class _Series:
    """The labelled children of one (task, queue), resolved once.

    ``metric.labels(...)`` takes a lock and hashes the label tuple on every call; a worker
    running thousands of messages a second should pay that once per task, not per message.
    Creating all five outcome children up front also exports them at 0, so ``rate()`` and
    ``increase()`` work from the first scrape instead of from the first failure.
    """

    __slots__ = ("dead", "deferred", "duration", "in_progress", "retried", "skipped",
                 "succeeded", "wait")

    def __init__(self, metrics: PrometheusMetrics, task: str, queue: str) -> None:
        total = metrics.tasks_total
        self.succeeded = total.labels(task, queue, "succeeded")
        self.retried = total.labels(task, queue, "retried")
        self.deferred = total.labels(task, queue, "deferred")
        self.dead = total.labels(task, queue, "dead")
        self.skipped = total.labels(task, queue, "skipped")
        self.duration = metrics.task_duration.labels(task, queue)
        self.wait = metrics.queue_wait.labels(task, queue)
        self.in_progress = metrics.in_progress.labels(task, queue)


class PrometheusMetrics(Middleware):
    """Export task outcomes, durations, queue wait and in-progress counts to Prometheus.

    ``registry``: where the metrics are registered; ``None`` means prometheus_client's global
    ``REGISTRY`` (what ``start_http_server`` serves by default, next to the process metrics).
    Tests pass a fresh ``CollectorRegistry`` so instances do not clash: registering the same
    names twice in one registry raises ``ValueError``.

    Outcomes mirror :class:`~workhive.middleware.metrics.Metrics`: ``Retry`` counts as
    ``retried`` (``deferred`` when ``count=False``, e.g. a rate limit), ``Skip`` as ``skipped``,
    ``Reject`` — and any other exception, which only gets here when no ``Retries`` layer sits
    inside this one — as ``dead``. An attempt cancelled at shutdown (the message is released,
    not settled) counts as no outcome and no duration, so the duration histogram's count always
    equals the sum of ``tasks_total`` for that task and queue.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        namespace: str = "workhive",
        *,
        duration_buckets: Sequence[float] = DURATION_BUCKETS,
        queue_wait_buckets: Sequence[float] = QUEUE_WAIT_BUCKETS,
    ) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise _missing(exc) from exc
        self.registry: CollectorRegistry = prom.REGISTRY if registry is None else registry
        common: dict[str, Any] = {"namespace": namespace, "registry": self.registry}
        self.tasks_total = prom.Counter(
            "tasks", "Task attempts by outcome: succeeded, retried, deferred (retry not "
            "counted against max_retries), dead (dead-lettered) or skipped.",
            ["task", "queue", "outcome"], **common)
        self.task_duration = prom.Histogram(
            "task_duration_seconds", "Time one attempt spent inside the middleware chain "
            "(handler, timeouts, rate-limit checks).",
            ["task", "queue"], buckets=tuple(duration_buckets), **common)
        self.queue_wait = prom.Histogram(
            "task_queue_wait_seconds", "Time from enqueue (or the scheduled eta, when later) "
            "to the start of the first attempt.",
            ["task", "queue"], buckets=tuple(queue_wait_buckets), **common)
        self.in_progress = prom.Gauge(
            "tasks_in_progress", "Attempts running now in this process.",
            ["task", "queue"], **common)
        self._series: dict[tuple[str, str], _Series] = {}

    def _new_series(self, task: str, queue: str) -> _Series:
        series = self._series[(task, queue)] = _Series(self, task, queue)
        return series

    def count_dead_before_handler(self, task: str | None, queue: str) -> None:
        """Count a message the worker dead-lettered before any middleware saw it.

        ``task`` is the envelope's name (None: the bytes did not decode). Only the ``dead``
        child is touched, never the duration or wait histograms: nothing ran.
        """
        self.tasks_total.labels(task or MALFORMED_TASK, queue, "dead").inc()

    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        env = ctx.envelope
        series = self._series.get((env.name, env.queue)) or self._new_series(env.name, env.queue)
        if env.attempt == 0 and env.enqueued_at:
            # Measured from when the message became ready: a task scheduled for later (delay=,
            # eta=) was not waiting before its eta, and counting that would make every delayed
            # task look like a backlog. Producer and worker wall clocks may disagree a little;
            # a negative wait is skew, not information. A message deferred with
            # Retry(count=False) or released at shutdown keeps attempt 0 (its envelope is
            # unchanged), so its next start is observed again, measured from the same origin.
            ready_at = max(env.enqueued_at, env.eta or 0.0)
            series.wait.observe(max(0.0, time.time() - ready_at))
        series.in_progress.inc()
        started = time.perf_counter()
        outcome: Counter | None = None  # stays None when cancelled: released, not settled
        try:
            await call_next(ctx)
        except Retry as signal:
            outcome = series.retried if signal.count else series.deferred
            raise
        except Skip:
            outcome = series.skipped
            raise
        except (Reject, Exception):
            outcome = series.dead
            raise
        else:
            outcome = series.succeeded
        finally:
            series.in_progress.dec()
            if outcome is not None:
                series.duration.observe(time.perf_counter() - started)
                outcome.inc()


class WorkerMetrics:
    """The process's own series, read from the last probe: a scrape never calls the broker.

    ``worker_id``/``backend``/``version`` label ``workhive_worker_info`` (always 1: join it onto
    other series by ``instance``, or count workers with ``count(workhive_worker_info)``). The
    worker's probe (:func:`workhive._health.probe_forever`) calls :meth:`update` with fresh
    queue stats and :meth:`broker_down` when the broker did not answer; until the first answer
    ``workhive_broker_up`` is 0 and no queue is reported. A queue that disappears from the stats
    disappears from the series. Every worker process reports every queue its backend counts:
    aggregate with ``max by (queue, state)``, not ``sum``.
    """

    def __init__(self, registry: CollectorRegistry, *, worker_id: str, backend: str,
                 version: str, namespace: str = "workhive") -> None:
        try:
            import prometheus_client  # noqa: F401  (fail here, not at the first scrape)
        except ImportError as exc:
            raise _missing(exc) from exc
        self.namespace = namespace
        self.info = (worker_id, backend, version)
        self.stats: list[QueueStats] = []
        self.broker_up = False
        registry.register(self)  # a collector: it has collect()

    def update(self, stats: Iterable[QueueStats]) -> None:
        self.stats, self.broker_up = list(stats), True

    def broker_down(self) -> None:
        self.broker_up = False

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        ns = self.namespace
        info = GaugeMetricFamily(f"{ns}_worker_info", "This worker process: always 1.",
                                 labels=["worker_id", "backend", "version"])
        info.add_metric(list(self.info), 1)
        yield info
        yield GaugeMetricFamily(f"{ns}_broker_up", "1 when the worker's last probe reached "
                                "the broker, else 0.", value=1 if self.broker_up else 0)
        depth = GaugeMetricFamily(f"{ns}_queue_messages", "Messages per queue and state, from "
                                  "the backend's stats at the worker's last probe.",
                                  labels=["queue", "state"])
        for stat in self.stats:
            for state in QUEUE_STATES:
                depth.add_metric([stat.queue, state], getattr(stat, state))
        yield depth


def metrics_app(registry: CollectorRegistry) -> WSGIApplication:
    """The WSGI app serving ``registry`` in the Prometheus text format (for a server that also
    answers other paths, like the worker's health endpoints)."""
    try:
        import prometheus_client as prom
    except ImportError as exc:
        raise _missing(exc) from exc
    app: WSGIApplication = prom.make_wsgi_app(registry)
    return app


def start_metrics_server(port: int, host: str = "127.0.0.1",
                         registry: CollectorRegistry | None = None) -> WSGIServer:
    """Serve ``/metrics`` for ``registry`` (default: the global one) on a daemon thread.

    Returns the WSGI server (``.shutdown()`` stops it). A port already in use is a
    :class:`ConfigError` naming the address, not a bare ``OSError`` from deep inside wsgiref.
    """
    try:
        import prometheus_client as prom
    except ImportError as exc:
        raise _missing(exc) from exc
    try:
        server, _thread = prom.start_http_server(
            port, addr=host, registry=prom.REGISTRY if registry is None else registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve Prometheus metrics on {host}:{port}: "
                          f"{exc.strerror or exc}") from exc
    return server


__all__ = ["DURATION_BUCKETS", "MALFORMED_TASK", "OUTCOMES", "QUEUE_STATES",
           "QUEUE_WAIT_BUCKETS", "PrometheusMetrics", "WorkerMetrics", "metrics_app",
           "start_metrics_server"]
