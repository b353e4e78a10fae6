"""The seed-002 summarizer: handlers as plain functions, then against a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from examples.summarizer import (
    CreatePost,
    FailSummaryGeneration,
    RequestSummaryGeneration,
    SetGeneratedSummary,
    SummaryClient,
    build_worker,
)
from examples.summarizer.worker import on_create, on_failure, on_request, on_summary

from workhive.commandlog import App, Message, MessageLog
from workhive.commandlog.sqlite import SQLiteMessageLog

MSG = Message(1, "", b"", 0.0)


def test_handlers_as_plain_functions() -> None:
    ctx = build_worker(SummaryClient("http://unused")).ctx
    on_create(ctx, CreatePost("p1", "hello world"), MSG)
    on_create(ctx, CreatePost("p2", "second"), MSG)
    assert set(ctx.state.pending) == {"p1", "p2"}
    on_request(ctx, RequestSummaryGeneration("r1", "p1"), MSG)
    assert ctx.state.pending["p1"].request_id == "r1"
    on_summary(ctx, SetGeneratedSummary("r1", "p1", "hi"), MSG)
    on_failure(ctx, FailSummaryGeneration("r2", "p2", "503"), MSG)
    assert ctx.state.pending == {}
    assert ctx.state.summaries == {"p1": "hi"} and ctx.state.failures == {"p2": "503"}


class SummaryService:
    """A real HTTP server on loopback that records each call's Idempotency-Key and content."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.calls.append((self.headers["Idempotency-Key"], body["content"]))
                if body["content"].startswith("fail"):
                    self.send_response(503)
                    self.end_headers()
                    return
                out = json.dumps({"summary": body["content"][:5]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/summarize"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def service() -> Iterator[SummaryService]:
    svc = SummaryService()
    svc.thread.start()
    yield svc
    svc.server.shutdown()
    svc.server.server_close()
    svc.thread.join()


async def run_until(app: App, predicate: object) -> None:
    assert callable(predicate)
    while not predicate():  # noqa: ASYNC110 - polls worker state
        await asyncio.sleep(0.01)


async def test_summarizer_end_to_end_and_restart_without_duplicate_calls(
    log: MessageLog, service: SummaryService
) -> None:
    client = SummaryClient(service.url, timeout=10)
    worker = build_worker(client, interval=0.02)
    app = App(log, tick=0.05)
    app.register_worker(worker)
    await app.start()
    for i, text in enumerate(["alpha post", "beta post", "fail please"]):
        await app.executor.execute(CreatePost(f"p{i}", text))
    await run_until(app, lambda: len(worker.state.summaries) + len(worker.state.failures) == 3)
    # The periodic job settles its state before the outcome commands come back through the
    # log; stop only once the worker has read them, so the checkpoint covers them.
    head = await log.head()
    await run_until(app, lambda: worker.last_processed_id >= head)
    await app.stop_workers(timeout=10)
    assert worker.state.summaries == {"p0": "alpha", "p1": "beta "}
    assert list(worker.state.failures) == ["p2"]
    assert len(service.calls) == 3
    names = [m.name for m in await log.read_after(0)]
    assert names.count("posts/request-summary-generation") == 3
    assert names.count("posts/set-generated-summary") == 2
    assert names.count("posts/fail-summary-generation") == 1

    # Restart: replay rebuilds the state, nothing is requested again.
    again = build_worker(client, interval=0.02)
    app2 = App(log, tick=0.05)
    app2.register_worker(again)
    await app2.start()
    assert again.state.summaries == worker.state.summaries and again.state.pending == {}
    await app2.executor.execute(CreatePost("p3", "gamma post"))
    await run_until(app2, lambda: "p3" in again.state.summaries)
    await app2.stop_workers(timeout=10)
    assert [content for _, content in service.calls] == [
        "alpha post",
        "beta post",
        "fail please",
        "gamma post",
    ]


async def test_in_flight_request_is_retried_once_with_the_same_key(
    tmp_path: Path, service: SummaryService
) -> None:
    """The process died after recording the request but before the result."""
    log = SQLiteMessageLog(str(tmp_path / "s.db"))
    app = App(log, tick=0.05)
    worker = build_worker(SummaryClient(service.url, timeout=10), interval=0.02)
    app.register_worker(worker)
    await log.open()
    await app.executor.execute(CreatePost("p1", "interrupted"))
    await app.executor.execute(RequestSummaryGeneration("req-1", "p1"))
    await log.save_checkpoint("Summary Worker", 2)  # it had processed both before dying
    await app.start()
    await run_until(app, lambda: "p1" in worker.state.summaries)
    await app.close(timeout=10)
    assert service.calls == [("req-1", "interrupted")]
