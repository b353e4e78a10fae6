"""``stats`` never loses a task that moves while it reads: ``run_until_idle`` stops on a
snapshot with nothing ready, running or delayed, so one that misses a task coming due ends the
run while that task is still to come.

A due task moves from the delay stream (forwarder) or from its schedule (2.12+) to its task
subject between two of the reads ``stats`` makes. The test makes that happen at a chosen point:
it lets the first read of ``stats`` (the real request, on the real server) return, then waits
until the task has moved, then lets ``stats`` go on. Nothing is faked: only the timing of a real
move is pinned to the moment a race would otherwise need luck to hit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from workhive._envelope import make_envelope
from workhive.backends.nats import NatsBackend

Make = Callable[..., NatsBackend]


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


async def _stored(b: NatsBackend, stream: str, root: str) -> int:
    info = await b.js.stream_info(stream, subjects_filter=root + ">")
    return sum((info.state.subjects or {}).values())


async def test_stats_count_a_task_the_forwarder_moves_meanwhile(
        make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    await _count_while_moving(make, "forwarder", monkeypatch)


async def test_stats_count_a_task_its_schedule_moves_meanwhile(
        make_private: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    await _count_while_moving(make_private, "schedules", monkeypatch)


async def _count_while_moving(make: Make, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    producer, watcher, mover = make(), make(), make()
    for b in (producer, watcher, mover):
        await b.open()
    n = producer.names
    if producer.schedules != (server == "schedules"):
        pytest.skip(f"this server does not take the {server} path")
    # forwarder: due at once, but no forwarder runs until ``mover`` fetches, so it waits in
    # the delay stream; schedules: the server moves it at its due time
    lead = 0.05 if server == "forwarder" else 2.0
    await producer.enqueue([make_envelope("t", None, queue="due", eta=time.time() + lead)])
    read_first: list[Any] = []
    real = watcher.js.consumers_info

    async def then_move(stream: str, *args: Any, **kwargs: Any) -> Any:
        answer = await real(stream, *args, **kwargs)
        if not read_first:
            read_first.append(answer)
            assert await _stored(mover, n.tasks, n.task_root) == 0, \
                "the task moved before stats began, so this run checked nothing"
            if server == "forwarder":
                await mover.fetch(["elsewhere"], 1, lease=10, wait=0)  # starts its forwarder

            async def moved() -> bool:
                return (await _stored(mover, n.tasks, n.task_root) == 1
                        and await _stored(mover, n.delay, n.delay_root) == 0
                        and await _stored(mover, n.tasks, n.schedule_root) == 0)

            await _until(moved, "the due task to reach its task subject")
        return answer

    monkeypatch.setattr(watcher.js, "consumers_info", then_move)
    stats = {s.queue: s for s in await watcher.stats()}
    assert read_first, "stats made no consumer read"
    stat = stats.get("due")
    assert stat is not None and stat.ready + stat.in_flight + stat.delayed >= 1, stat
