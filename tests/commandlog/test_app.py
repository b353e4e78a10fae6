"""App lifecycle: many workers, jittered loops, stop with timeout, start failures."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from workhive.commandlog import (
    App,
    AppContext,
    Command,
    CommandWorker,
    LogWorkerInfo,
    Message,
    MessageLog,
    WorkerContext,
    WorkerError,
    WorkerStartError,
)


def command_types(n: int) -> list[type[Command]]:
    return [
        msgspec.defstruct(  # type: ignore[misc]
            f"Cmd{i}",
            [("value", int)],
            bases=(Command,),
            namespace={"command_name": f"load/cmd-{i}"},
            frozen=True,
        )
        for i in range(n)
    ]


@pytest.mark.slow
async def test_100_workers_x_50_command_types_start_process_and_stop(log: MessageLog) -> None:
    types = command_types(50)
    app = App(log, tick=0.05)
    counts: dict[str, int] = {}

    def handler(ctx: WorkerContext[str], cmd: Any, msg: Message) -> None:
        counts[ctx.state] = counts.get(ctx.state, 0) + cmd.value

    for w in range(100):
        worker = CommandWorker(f"worker-{w}", f"load worker {w}", state=f"worker-{w}")
        for t in types:
            worker.on_command(t, handler)
        app.register_worker(worker)
    await app.start_workers()
    ids = await app.executor.execute_many([t(value=1) for t in types])
    last = ids[-1]
    while any(i.last_processed_id < last for i in app.info()):  # noqa: ASYNC110 - polls worker state
        await asyncio.sleep(0.01)
    assert counts == {f"worker-{w}": 50 for w in range(100)}
    assert await app.stop_workers(timeout=30) == []
    checkpoints = await log.checkpoints()
    assert all(checkpoints[f"worker-{w}"][0] == last for w in range(100))
    await app.close()


class Stubborn:
    """A hand-written LogWorker whose work() ignores cancellation of the stop signal."""

    def __init__(self) -> None:
        self.started = self.stopped = False
        self.release = asyncio.Event()

    async def start(self, ctx: AppContext) -> None:
        self.started = True

    async def work(self) -> int:
        await self.release.wait()
        return 0

    async def stop(self, ctx: AppContext) -> None:
        self.stopped = True

    def info(self) -> LogWorkerInfo:
        return LogWorkerInfo("stubborn", "", self.started, 0, 0, 0, 0, [], [])


async def test_stop_reports_workers_that_did_not_stop(log: MessageLog) -> None:
    app = App(log, tick=0.01)
    stubborn = Stubborn()
    polite: CommandWorker[None] = CommandWorker("polite")
    app.register_worker(stubborn)
    app.register_worker(polite)
    await app.start()
    await asyncio.sleep(0.02)
    assert await app.stop_workers(timeout=0.05) == ["stubborn"]
    assert stubborn.stopped, "a cancelled worker still gets stop()"
    assert not polite.info().running
    await app.close()


async def test_start_failure_stops_the_others(log: MessageLog) -> None:
    app = App(log)
    good: CommandWorker[None] = CommandWorker("good")
    bad: CommandWorker[None] = CommandWorker("bad")
    bad.on_command("no/such-command", lambda ctx, cmd, msg: None)
    app.register_worker(good)
    app.register_worker(bad)
    with pytest.raises(WorkerStartError, match="bad"):
        await app.start_workers()
    assert not good.info().running
    with pytest.raises(WorkerError, match="already registered"):
        app.register_worker(CommandWorker("good"))


async def test_service_interface_and_live_dispatch(log: MessageLog) -> None:
    types = command_types(1)
    seen: list[int] = []
    worker: CommandWorker[None] = CommandWorker("live")
    worker.on_command(types[0], lambda ctx, cmd, msg: seen.append(msg.id))
    app = App(log, tick=30.0)  # a long tick: only the append notification can wake it
    app.register_worker(worker)
    await app.start()
    message_id = await app.executor.execute(types[0](value=1))
    while not seen:  # noqa: ASYNC110 - polls handler output
        await asyncio.sleep(0.005)
    assert seen == [message_id]
    await app.stop(timeout=10)
