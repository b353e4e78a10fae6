"""Summary worker: handlers keep state; the periodic job does the (only) side effect.

Handlers run on replay too, so they only update state. The API call happens in
:func:`process_pending`, which never runs during replay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
import uuid
from dataclasses import dataclass, field

from examples.summarizer.commands import (
    CreatePost,
    FailSummaryGeneration,
    RequestSummaryGeneration,
    SetGeneratedSummary,
)

from workhive.commandlog import CommandWorker, Message, WorkerContext

logger = logging.getLogger(__name__)


class SummaryClient:
    """A tiny JSON-over-HTTP client (stdlib only), called off the event loop."""

    def __init__(self, url: str, api_key: str = "", timeout: float = 30.0) -> None:
        self.url = url
        self.api_key = api_key
        self.timeout = timeout

    def _post(self, request_id: str, content: str) -> str:
        body = json.dumps({"content": content}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Idempotency-Key", request_id)
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return str(json.loads(resp.read())["summary"])

    async def summarize(self, request_id: str, content: str) -> str:
        return await asyncio.to_thread(self._post, request_id, content)


@dataclass
class PendingSummary:
    post_id: str
    content: str
    request_id: str | None = None


@dataclass
class SummaryState:
    client: SummaryClient
    pending: dict[str, PendingSummary] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


Ctx = WorkerContext[SummaryState]


def on_create(ctx: Ctx, cmd: CreatePost, msg: Message) -> None:
    ctx.state.pending[cmd.post_id] = PendingSummary(cmd.post_id, cmd.content)


def on_request(ctx: Ctx, cmd: RequestSummaryGeneration, msg: Message) -> None:
    pending = ctx.state.pending.get(cmd.post_id)
    if pending is not None:
        pending.request_id = cmd.request_id


def on_summary(ctx: Ctx, cmd: SetGeneratedSummary, msg: Message) -> None:
    ctx.state.pending.pop(cmd.post_id, None)
    ctx.state.summaries[cmd.post_id] = cmd.summary


def on_failure(ctx: Ctx, cmd: FailSummaryGeneration, msg: Message) -> None:
    ctx.state.pending.pop(cmd.post_id, None)
    ctx.state.failures[cmd.post_id] = cmd.reason


def _settle(state: SummaryState, post_id: str, summary: str | None, reason: str = "") -> None:
    # Update state at once so the next tick cannot call the API again for this post; the
    # handlers above reach the same state when the commands come back through the log.
    state.pending.pop(post_id, None)
    if summary is not None:
        state.summaries[post_id] = summary
    else:
        state.failures[post_id] = reason


async def process_pending(ctx: Ctx) -> None:
    """Request a summary for each pending post; record the outcome as a command."""
    state = ctx.state
    for post_id, pending in list(state.pending.items()):
        if pending.request_id is None:
            pending.request_id = uuid.uuid4().hex
            await ctx.execute(RequestSummaryGeneration(pending.request_id, post_id))
        else:
            logger.info("retrying in-flight summary request %s", pending.request_id)
        try:
            summary = await state.client.summarize(pending.request_id, pending.content)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("summary for post %s failed: %s", post_id, exc)
            await ctx.execute(FailSummaryGeneration(pending.request_id, post_id, str(exc)))
            _settle(state, post_id, None, str(exc))
            continue
        await ctx.execute(SetGeneratedSummary(pending.request_id, post_id, summary))
        _settle(state, post_id, summary)


def build_worker(client: SummaryClient, interval: float = 1.0) -> CommandWorker[SummaryState]:
    """The Summary Worker: four handlers and one periodic job."""
    worker = CommandWorker("Summary Worker", "summarises new posts", state=SummaryState(client))
    worker.on_command(CreatePost, on_create)
    worker.on_command(RequestSummaryGeneration, on_request)
    worker.on_command(SetGeneratedSummary, on_summary)
    worker.on_command(FailSummaryGeneration, on_failure)
    worker.every(interval, process_pending)
    return worker
