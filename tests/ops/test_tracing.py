"""OpenTelemetry: the trace context rides in the envelope headers from ``enqueue`` to the
handler, so a task's span is a child of the span that enqueued it. Spans are exported in-process
with the SDK's in-memory exporter; the provider is passed explicitly, never set globally."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from workhive import Hive, Module, TaskContext
from workhive.backends.memory import MemoryBackend
from workhive.middleware.otel import Tracing, instrument
from workhive.testing import run_until_idle


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider, spans
    provider.shutdown()


def by_name(spans: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


@pytest.mark.sqlite
async def test_task_span_is_a_child_of_the_enqueuing_span(
        tmp_path: Path, exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, spans = exporter
    m, seen = Module("tr"), dict[str, Any]()

    @m.task("tr:parent")
    async def parent(p: dict[str, Any], ctx: TaskContext) -> None:
        seen["headers"] = dict(ctx.headers)
        seen["active"] = trace.get_current_span().get_span_context().span_id
        await ctx.enqueue("tr:child", {})  # enqueued from inside the task: its grandchild

    @m.task("tr:child")
    async def child() -> None: ...

    hive = Hive(f"sqlite:///{tmp_path / 'q.db'}")
    hive.include(m)
    assert instrument(hive, provider) is instrument(hive, provider)  # idempotent
    assert sum(isinstance(mw, Tracing) for mw in hive.middleware) == 1
    assert isinstance(hive.middleware[0], Tracing)

    with provider.get_tracer("web").start_as_current_span("POST /signup") as request:
        await hive.enqueue("tr:parent", {"user": 7})
    await run_until_idle(hive)
    await hive.close()

    found = by_name(spans)
    (web,) = found["POST /signup"]
    (task,) = found["process tr:parent"]
    (follow_up,) = found["process tr:child"]
    assert web.context is not None and task.context is not None
    assert task.parent is not None and task.parent.span_id == web.context.span_id
    assert task.context.trace_id == web.context.trace_id == request.get_span_context().trace_id
    assert follow_up.parent is not None and follow_up.parent.span_id == task.context.span_id
    assert seen["active"] == task.context.span_id  # the handler runs inside the task span
    assert seen["headers"]["traceparent"].split("-")[1] == f"{web.context.trace_id:032x}"
    assert task.kind is SpanKind.CONSUMER
    assert task.attributes is not None
    assert task.attributes["messaging.system"] == "workhive"
    assert task.attributes["messaging.destination.name"] == "default"
    assert task.attributes["workhive.task.name"] == "tr:parent"
    assert task.attributes["workhive.outcome"] == "succeeded"


@pytest.mark.memory
async def test_failed_attempts_are_error_spans_under_the_same_parent(
        exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, spans = exporter
    m = Module("tf")

    @m.task("tf:flaky", max_retries=1, retry_backoff=0.01)
    async def flaky(p: dict[str, Any], ctx: TaskContext) -> None:
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    hive = Hive("memory://")
    hive.include(m)
    instrument(hive, provider)
    with provider.get_tracer("web").start_as_current_span("POST /sync") as request:
        await hive.enqueue("tf:flaky", {})
    await run_until_idle(hive)
    await hive.close()

    attempts = {(s.attributes or {}).get("workhive.attempt"): s
                for s in by_name(spans)["process tf:flaky"]}
    assert {n: (s.attributes or {}).get("workhive.outcome") for n, s in attempts.items()} == {
        0: "retried", 1: "dead"}
    for span in attempts.values():  # a retry keeps the headers: every attempt hangs off the request
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.status.status_code is StatusCode.ERROR
        assert span.events and span.events[0].name == "exception"


@pytest.mark.memory
async def test_no_active_span_adds_no_headers_and_callers_headers_win(
        exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, _spans = exporter
    m = Module("th")

    @m.task("th:x")
    async def x() -> None: ...

    hive = Hive("memory://")
    hive.include(m)
    instrument(hive, provider)
    plain = hive.build("th:x")
    assert plain is not None and plain.headers == {}
    with provider.get_tracer("web").start_as_current_span("request"):
        mine = hive.build("th:x", headers={"traceparent": "mine", "tenant": "a"})
        theirs = hive.build("th:x")
    assert mine is not None and mine.headers == {"traceparent": "mine", "tenant": "a"}
    assert theirs is not None and theirs.headers["traceparent"].startswith("00-")


@pytest.mark.memory
async def test_event_handler_span_is_a_child_of_the_publishing_span(
        exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, spans = exporter
    m = Module("te")

    @m.subscribe("users.created", group="mailer")
    async def welcome(p: dict[str, Any]) -> None: ...

    hive = Hive("memory://ops-events")
    hive.include(m)
    instrument(hive, provider)
    try:
        await hive.open()
        with provider.get_tracer("web").start_as_current_span("POST /users") as request:
            await hive.publish("users.created", {"id": 7})
        await run_until_idle(hive)
    finally:
        await hive.close()
        MemoryBackend._instances.pop("ops-events", None)
    (span,) = by_name(spans)["process users.created"]
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert (span.attributes or {}).get("messaging.consumer.group.name") == "mailer"
