"""A worker process for the broker-log kill -9 tests:
``python -m tests.commandlog._killable_broker_worker URL RUNS``.

Each live CreatePost appends the message id to RUNS (before anything durable, so a re-run is
visible), then executes a follow-up DeletePost inside ``ctx.transaction()``: a broker log
publishes it when the block exits and saves the checkpoint after it. SIGTERM stops gracefully.
"""

from __future__ import annotations

import asyncio
import sys

from tests.commandlog._killable_worker import serve
from tests.commandlog.commands import CreatePost, DeletePost
from workhive.commandlog import Message, WorkerContext, open_log


async def follow_up(ctx: WorkerContext[None], cmd: CreatePost, msg: Message) -> None:
    async with ctx.transaction():
        await ctx.execute(DeletePost(cmd.post_id))


if __name__ == "__main__":
    asyncio.run(serve(open_log(sys.argv[1]), sys.argv[2], follow_up, "follows each post up"))
