"""A worker process for the broker-log kill -9 tests:
``python -m tests.commandlog._killable_broker_worker URL RUNS``.

Each live CreatePost appends the message id to RUNS (before anything durable, so a re-run is
visible), then executes a follow-up DeletePost inside ``ctx.transaction()``: a broker log
publishes it when the block exits and saves the checkpoint after it. SIGTERM stops gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from tests.commandlog.commands import CreatePost, DeletePost
from workhive.commandlog import App, CommandWorker, Message, WorkerContext, open_log


async def main(url: str, runs_path: str) -> None:
    log = open_log(url)
    runs = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def handle(ctx: WorkerContext[None], cmd: CreatePost, msg: Message) -> None:
        if ctx.replaying:
            return
        os.write(runs, f"{msg.id}\n".encode())
        await asyncio.sleep(0.002)  # widen the window for the kill to land mid-message
        async with ctx.transaction():
            await ctx.execute(DeletePost(cmd.post_id))

    worker: CommandWorker[None] = CommandWorker("effects", "follows each post up")
    worker.on_command(CreatePost, handle)
    app = App(log, tick=0.05)
    app.register_worker(worker)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await app.start()
    print("ready", flush=True)
    await stop.wait()
    await app.stop(timeout=10)
    os.close(runs)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
