"""OpenTelemetry tracing: a task's span is a child of the span that enqueued it.

::

    from workhive.middleware.otel import instrument

    hive = Hive(...)
    instrument(hive)        # in the producer (web app) and in the worker alike

:func:`instrument` does two things. On the producer side it adds a header injector to the hive
(:attr:`Hive.header_injectors <workhive.hive.Hive.header_injectors>`), so every
``enqueue``/``publish`` writes the active trace context into the message headers with the
globally configured propagator (W3C ``traceparent``/``tracestate`` and ``baggage`` by default).
On the worker side it puts :class:`Tracing` outermost in the middleware chain: each attempt runs
in a ``CONSUMER`` span whose parent is the context extracted from those headers, so the trace
of a web request shows the tasks it enqueued, and the tasks those tasks enqueued.

Every attempt is its own span (a retry keeps the original headers, so all attempts are siblings
under the producer's span). The span is named ``process <task name>`` and carries the messaging
attributes (``messaging.system`` = ``workhive``, ``messaging.destination.name`` = queue,
``messaging.message.id``) plus ``workhive.task.name``, ``workhive.attempt`` and
``workhive.outcome`` (succeeded, retried, deferred, skipped, dead, released). An attempt that
fails, will be retried or is dead-lettered has status ``ERROR`` with the reason.

Spans go wherever the application's ``TracerProvider`` sends them: configure the SDK and an
exporter as for any other library. Needs ``pip install 'workhive[otel]'``; nothing imports this
module unless you do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from workhive._context import TaskContext
from workhive.errors import ConfigError, Reject, Retry, Skip
from workhive.middleware.base import CallNext, Middleware

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError("OpenTelemetry tracing needs the opentelemetry-api package: "
                      "pip install 'workhive[otel]'") from exc

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

TRACER_NAME = "workhive"


class TracedHive(Protocol):
    """What :func:`instrument` changes on a :class:`~workhive.hive.Hive` (a protocol, so the
    middleware layer does not import the hive above it)."""

    middleware: list[Middleware]
    header_injectors: list[Callable[[dict[str, str]], None]]


def inject_trace_context(headers: dict[str, str]) -> None:
    """Write the active trace context into ``headers`` (a hive header injector).

    Writes nothing when no span is active, so untraced producers send no extra headers.
    """
    propagate.inject(headers)


class Tracing(Middleware):
    """Run each attempt in a span that continues the producer's trace (see the module doc).

    ``tracer_provider``: where spans go; ``None`` means the globally configured provider.
    Place it outermost (:func:`instrument` does), so the span covers the whole chain, logs
    emitted inside it carry its context, and it sees what the worker will do with the message.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        from workhive import __version__

        self.tracer = trace.get_tracer(TRACER_NAME, __version__,
                                       tracer_provider=tracer_provider)

    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        env = ctx.envelope
        parent = propagate.extract(env.headers)
        attributes: dict[str, str | int] = {
            "messaging.system": "workhive",
            "messaging.operation.type": "process",
            "messaging.destination.name": env.queue,
            "messaging.message.id": env.id,
            "workhive.task.name": env.name,
            "workhive.attempt": env.attempt,
        }
        if env.kind == "event":
            attributes["messaging.consumer.group.name"] = env.group or ctx.delivery.queue
        with self.tracer.start_as_current_span(
                f"process {env.name}", context=parent, kind=SpanKind.CONSUMER,
                attributes=attributes, record_exception=False,
                set_status_on_exception=False) as span:
            try:
                await call_next(ctx)
            except Retry as signal:
                if signal.count:
                    _failed(span, "retried", signal.reason, signal.__cause__ or signal)
                else:
                    span.set_attribute("workhive.outcome", "deferred")
                raise
            except Skip:
                span.set_attribute("workhive.outcome", "skipped")
                raise
            except Reject as signal:
                _failed(span, "dead", signal.reason, signal.__cause__ or signal)
                raise
            except asyncio.CancelledError:  # shutdown: the message goes back to the queue
                span.set_attribute("workhive.outcome", "released")
                raise
            except Exception as exc:  # no Retries layer inside: the worker dead-letters it
                _failed(span, "dead", f"{type(exc).__name__}: {exc}", exc)
                raise
            span.set_attribute("workhive.outcome", "succeeded")


def _failed(span: Span, outcome: str, reason: str, error: BaseException) -> None:
    span.set_attribute("workhive.outcome", outcome)
    if isinstance(error, Exception):
        span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, reason))


def instrument(hive: TracedHive, tracer_provider: TracerProvider | None = None) -> Tracing:
    """Trace ``hive``'s messages end to end: inject on enqueue/publish, extract in the worker.

    Idempotent: a hive already instrumented keeps its one :class:`Tracing` layer and injector.
    Call it before the worker starts (the worker builds its chains from ``hive.middleware``).
    """
    existing = next((m for m in hive.middleware if isinstance(m, Tracing)), None)
    if existing is None:
        existing = Tracing(tracer_provider)
        hive.middleware.insert(0, existing)
    if inject_trace_context not in hive.header_injectors:
        hive.header_injectors.append(inject_trace_context)
    return existing


__all__ = ["TRACER_NAME", "Tracing", "inject_trace_context", "instrument"]
