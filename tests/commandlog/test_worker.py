"""CommandWorker: replay, checkpoints, transactions, poison messages, periodic work."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from tests.commandlog.commands import CreatePost, DeletePost
from workhive.commandlog import (
    AppContext,
    CommandWorker,
    Executor,
    Message,
    MessageLog,
    UnknownCommandError,
    WorkerContext,
)


@dataclass
class Posts:
    titles: dict[str, str] = field(default_factory=dict)
    side_effects: list[int] = field(default_factory=list)
    replayed: int = 0


def on_create(ctx: WorkerContext[Posts], cmd: CreatePost, msg: Message) -> None:
    ctx.state.titles[cmd.post_id] = cmd.title
    if ctx.replaying:
        ctx.state.replayed += 1
        return
    ctx.state.side_effects.append(msg.id)


async def on_delete(ctx: WorkerContext[Posts], cmd: DeletePost, msg: Message) -> None:
    ctx.state.titles.pop(cmd.post_id, None)


def make_worker(name: str = "posts") -> CommandWorker[Posts]:
    worker = CommandWorker(name, "keeps post titles", state=Posts())
    worker.on_command(CreatePost, on_create)
    worker.on_command("post/delete", on_delete)
    return worker


async def drain(worker: CommandWorker[Posts]) -> None:
    while await worker.work():
        pass


async def test_work_then_replay_rebuilds_state_without_side_effects(log: MessageLog) -> None:
    ex = Executor(log)
    ctx = AppContext(log, ex)
    await ex.execute(CreatePost("1", "one"))
    await ex.execute(CreatePost("2", "two"))
    await ex.execute(DeletePost("1"))
    worker = make_worker()
    await worker.start(ctx)
    await drain(worker)
    assert worker.state.titles == {"2": "two"} and worker.state.side_effects == [1, 2]
    await worker.stop(ctx)
    assert await log.get_checkpoint("posts") == 3

    await ex.execute(CreatePost("3", "three"))
    again = make_worker()
    await again.start(ctx)  # replays 1..3 only
    assert again.state.titles == {"2": "two"}
    assert again.state.replayed == 2 and again.state.side_effects == []
    await drain(again)
    assert again.state.side_effects == [4]
    info = again.info()
    assert (info.last_processed_id, info.checkpoint, info.processed) == (4, 4, 4)
    assert info.commands == ["post/create", "post/delete"]


async def test_no_replay_starts_at_checkpoint(log: MessageLog) -> None:
    ex = Executor(log)
    await ex.execute(CreatePost("1", "one"))
    await log.save_checkpoint("posts", 1)
    worker = CommandWorker("posts", state=Posts(), replay=False)
    worker.on_command(CreatePost, on_create)
    await worker.start(AppContext(log, ex))
    assert worker.state.titles == {} and worker.last_processed_id == 1


async def test_poison_message_and_handler_error_are_skipped_and_reported(
    log: MessageLog, caplog: pytest.LogCaptureFixture
) -> None:
    ex = Executor(log)
    worker = CommandWorker("fragile", state=Posts())
    calls: list[int] = []

    def handler(ctx: WorkerContext[Posts], cmd: CreatePost, msg: Message) -> None:
        calls.append(msg.id)
        if cmd.title == "explode":
            raise RuntimeError("handler bug")

    worker.on_command(CreatePost, handler)
    await worker.start(AppContext(log, ex))
    await ex.execute(CreatePost("1", "fine"))
    await log.append("post/create", b'{"post_id": 7}')  # poison: wrong type, missing title
    await log.append("post/create", b"\xff not json")  # poison: not JSON at all
    await ex.execute(CreatePost("2", "explode"))
    await ex.execute(CreatePost("3", "after"))
    await log.append("from/the-future", b"{}")  # not ours: ignored
    with caplog.at_level(logging.ERROR):
        await drain(worker)
    assert calls == [1, 4, 5]
    info = worker.info()
    assert info.failed == 3 and info.last_processed_id == 6
    assert [(f.message_id, f.command) for f in info.recent_failures] == [
        (2, "post/create"),
        (3, "post/create"),
        (4, "post/create"),
    ]
    assert "message 2 (post/create) cannot be decoded (poison message)" in caplog.text
    assert "message 4 (post/create) handler failed" in caplog.text
    assert await log.get_checkpoint("fragile") == 6


async def test_transaction_saves_checkpoint_with_handler_writes(log: MessageLog) -> None:
    ex = Executor(log)
    worker = CommandWorker("tx", state=Posts(), batch_size=10)
    seen_checkpoints: list[int] = []

    async def handler(ctx: WorkerContext[Posts], cmd: CreatePost, msg: Message) -> None:
        if ctx.replaying:
            return
        async with ctx.transaction():
            await ctx.execute(DeletePost(cmd.post_id))  # appended inside the same transaction
        seen_checkpoints.append(await log.get_checkpoint("tx"))

    worker.on_command(CreatePost, handler)
    await worker.start(AppContext(log, ex))
    await ex.execute(CreatePost("1", "one"))
    await ex.execute(CreatePost("2", "two"))
    await drain(worker)
    assert seen_checkpoints == [1, 2]
    names = [m.name for m in await log.read_after(0)]
    assert names == ["post/create", "post/create", "post/delete", "post/delete"]
    caused = [m.metadata for m in await log.read_after(2)]
    assert caused == [{"worker": "tx", "caused_by": "1"}, {"worker": "tx", "caused_by": "2"}]


async def test_replay_refuses_side_effects(log: MessageLog) -> None:
    ex = Executor(log)
    await ex.execute(CreatePost("1", "one"))
    await log.save_checkpoint("careless", 1)
    results: list[object] = []

    async def careless(ctx: WorkerContext[None], cmd: CreatePost, msg: Message) -> None:
        results.append(await ctx.execute(DeletePost(cmd.post_id)))
        async with ctx.transaction():
            results.append("wrote")

    worker: CommandWorker[None] = CommandWorker("careless")
    worker.on_command(CreatePost, careless)
    await worker.start(AppContext(log, ex))
    assert results == [None]  # execute was a no-op, the transaction raised ReplayError
    assert worker.info().recent_failures[0].replaying
    assert "ReplayError" in worker.info().recent_failures[0].error
    assert await log.head() == 1


async def test_periodic_work_runs_and_errors_do_not_stop_it(log: MessageLog) -> None:
    ex = Executor(log)
    ticks: list[int] = []
    worker: CommandWorker[None] = CommandWorker("ticker")

    async def tick(ctx: WorkerContext[None]) -> None:
        ticks.append(1)
        if len(ticks) == 1:
            raise RuntimeError("first tick fails")

    worker.every(0.001, tick)
    await worker.start(AppContext(log, ex))
    await worker.work()
    while len(ticks) < 3:
        await asyncio.sleep(0.002)
        await worker.work()
    assert (worker.next_wakeup() or 0.0) >= 0.0


async def test_unknown_string_route_fails_at_start(log: MessageLog) -> None:
    worker: CommandWorker[None] = CommandWorker("w")
    worker.on_command("never/registered", lambda ctx, cmd, msg: None)
    with pytest.raises(UnknownCommandError):
        await worker.start(AppContext(log, Executor(log)))
