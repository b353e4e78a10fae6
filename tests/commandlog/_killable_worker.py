"""A worker process for the kill -9 test: ``python -m tests.commandlog._killable_worker DB RUNS``.

Each live CreatePost appends the message id to RUNS (before doing anything durable, so a re-run
is visible) and inserts an effect row through ``ctx.transaction()``: the row and the checkpoint
commit together. SIGTERM stops gracefully.

:func:`serve` is the part every killable worker shares (``_killable_broker_worker`` too); each
script passes only its log and the effect it commits with the checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from tests.commandlog.commands import CreatePost
from workhive.commandlog import App, CommandWorker, Message, MessageLog, WorkerContext
from workhive.commandlog.sqlite import SQLiteMessageLog

#: effect(ctx, cmd, msg): what a live CreatePost does after its id is written to RUNS
Effect = Callable[[WorkerContext[None], CreatePost, Message], Awaitable[None]]


async def serve(log: MessageLog, runs_path: str, effect: Effect, description: str) -> None:
    """Run one worker ``effects`` on ``log`` until SIGTERM; print ``ready`` once started."""
    runs = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def handle(ctx: WorkerContext[None], cmd: CreatePost, msg: Message) -> None:
        if ctx.replaying:
            return
        os.write(runs, f"{msg.id}\n".encode())
        await asyncio.sleep(0.002)  # widen the window for the kill to land mid-message
        await effect(ctx, cmd, msg)

    worker: CommandWorker[None] = CommandWorker("effects", description)
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


async def main(db: str, runs_path: str) -> None:
    log = SQLiteMessageLog(db)
    await log.open()
    async with log.transaction() as tx:
        await tx.execute("CREATE TABLE IF NOT EXISTS effects (message_id INTEGER PRIMARY KEY)")

    async def insert_row(ctx: WorkerContext[None], cmd: CreatePost, msg: Message) -> None:
        async with ctx.transaction() as tx:
            await tx.execute("INSERT INTO effects (message_id) VALUES (?)", msg.id)

    await serve(log, runs_path, insert_row, "writes one row per post")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
