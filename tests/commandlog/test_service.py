"""A command-log App runs inside a task worker as a service (``hive.add_service``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.commandlog.commands import CreatePost
from workhive import Hive, Module
from workhive.commandlog import App, CommandWorker, open_log


async def test_command_workers_run_beside_task_workers(tmp_path: Path) -> None:
    seen: list[str] = []
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    app = App(log, tick=0.05)
    worker = CommandWorker("posts", "records posts", state=None)

    def on_post(ctx: Any, cmd: CreatePost, msg: Any) -> None:
        seen.append(cmd.post_id)

    worker.on_command(CreatePost, on_post)
    app.register_worker(worker)

    tasks, ran = Module("t"), []

    @tasks.task("t:job")
    async def job() -> None:
        ran.append(1)

    hive = Hive("memory://")
    hive.include(tasks)
    hive.add_service(app)
    await hive.enqueue("t:job")
    runner = hive.worker(cron=False)
    running = asyncio.create_task(runner.run())
    for _ in range(200):
        if app.executor is not None and ran:
            break
        await asyncio.sleep(0.01)
    await app.executor.execute(CreatePost(post_id="p1", title="hello"))
    for _ in range(300):
        if seen:
            break
        await asyncio.sleep(0.01)
    runner.stop()
    await running
    assert seen == ["p1"] and ran == [1]
