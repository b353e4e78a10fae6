"""A worker process for the kill -9 test: ``python -m tests.commandlog._killable_worker DB RUNS``.

Each live CreatePost appends the message id to RUNS (before doing anything durable, so a re-run
is visible) and inserts an effect row through ``ctx.transaction()``: the row and the checkpoint
commit together. SIGTERM stops gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from tests.commandlog.commands import CreatePost
from workhive.commandlog import App, CommandWorker, Message, WorkerContext
from workhive.commandlog.sqlite import SQLiteMessageLog


async def main(db: str, runs_path: str) -> None:
    log = SQLiteMessageLog(db)
    await log.open()
    async with log.transaction() as tx:
        await tx.execute("CREATE TABLE IF NOT EXISTS effects (message_id INTEGER PRIMARY KEY)")
    runs = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def handle(ctx: WorkerContext[None], cmd: CreatePost, msg: Message) -> None:
        if ctx.replaying:
            return
        os.write(runs, f"{msg.id}\n".encode())
        await asyncio.sleep(0.002)  # widen the window for the kill to land mid-message
        async with ctx.transaction() as tx:
            await tx.execute("INSERT INTO effects (message_id) VALUES (?)", msg.id)

    worker: CommandWorker[None] = CommandWorker("effects", "writes one row per post")
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
