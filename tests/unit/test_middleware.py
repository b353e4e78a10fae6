"""Timeouts, signals and rate limits through the real worker on memory://."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workhive import Hive, Module, RateLimit, Reject, Retry, Skip, TaskContext
from workhive._envelope import decode
from workhive.backend import SupportsDeadLetters
from workhive.middleware import Middleware, backoff_delay
from workhive.middleware.base import CallNext
from workhive.testing import run_until_idle


async def dead(hive: Hive) -> list[Any]:
    assert isinstance(hive.backend, SupportsDeadLetters)
    return await hive.backend.dead_letters()


async def test_timeout_counts_as_failure_then_dead_letters() -> None:
    m, attempts = Module("t"), []

    @m.task("t:slow", timeout=0.05, max_retries=1, retry_backoff=0.01)
    async def slow() -> None:
        attempts.append(1)
        await asyncio.sleep(5)

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("t:slow")
    await run_until_idle(hive)
    (letter,) = await dead(hive)
    assert len(attempts) == 2
    assert "TaskTimeout: t:slow timed out after 0.05s (after 2 attempts)" in letter.reason


async def test_signals() -> None:
    m, runs = Module("s"), []

    @m.task("s:retry_once", max_retries=1)
    async def retry_once(p: Any, ctx: TaskContext) -> None:
        runs.append(("retry", ctx.attempt))
        if ctx.attempt == 0:
            raise Retry(0.01, reason="not yet")  # explicit retry, with its own delay

    @m.task("s:retry_forever", max_retries=2)
    async def retry_forever() -> None:
        runs.append(("forever", 0))
        raise Retry(0.01, reason="still not ready")

    @m.task("s:reject")
    async def reject() -> None:
        runs.append(("reject", 0))
        raise Reject("bad input, never retry")

    @m.task("s:skip")
    async def skip() -> None:
        runs.append(("skip", 0))
        raise Skip()

    hive = Hive("memory://")
    hive.include(m)
    for name in ("s:retry_once", "s:reject", "s:skip", "s:retry_forever"):
        await hive.enqueue(name)
    await run_until_idle(hive)
    assert sorted(runs) == [("forever", 0)] * 3 + [
        ("reject", 0), ("retry", 0), ("retry", 1), ("skip", 0)]
    reasons = sorted(d.reason for d in await dead(hive))
    assert reasons == ["bad input, never retry",
                       "still not ready (no retries left after 3 attempts)"]


async def test_rate_limit_defers_without_counting_attempts() -> None:
    m, ran = Module("r"), []

    @m.task("r:mail", max_retries=0, rate_limit=RateLimit(2, 60, key="user_id"))
    async def mail(p: dict[str, int]) -> None:
        ran.append(p["user_id"])

    hive = Hive("memory://")
    hive.include(m)
    for user in (1, 1, 1, 2):
        await hive.enqueue("r:mail", {"user_id": user})
    await run_until_idle(hive, wait_delayed=False, concurrency=1)
    assert sorted(ran) == [1, 1, 2]
    stats = {s.queue: s for s in await hive.backend.stats()}  # type: ignore[attr-defined]
    assert stats["default"].delayed == 1 and stats["default"].dead == 0


async def test_rate_limit_reject() -> None:
    m = Module("r")

    @m.task("r:delete", rate_limit=RateLimit(1, 3600, on_limit="reject"))
    async def delete() -> None: ...

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("r:delete")
    await hive.enqueue("r:delete")
    await run_until_idle(hive)
    (letter,) = await dead(hive)
    assert "rate limit 1/3600s reached for rl:r:delete" in letter.reason
    assert decode(letter.body).attempt == 1


async def test_custom_middleware_sees_every_attempt() -> None:
    seen: list[tuple[str, int]] = []

    class Audit(Middleware):
        async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
            seen.append((ctx.name, ctx.attempt))
            await call_next(ctx)

    from workhive.middleware import default_middleware

    m = Module("a")

    @m.task("a:t")
    async def t() -> None: ...

    hive = Hive("memory://", middleware=[Audit(), *default_middleware()])
    hive.include(m)
    await hive.enqueue("a:t")
    await run_until_idle(hive)
    assert seen == [("a:t", 0)]


@pytest.mark.parametrize("attempt", [0, 3, 10, 50])
def test_backoff_is_bounded_and_jittered(attempt: int) -> None:
    delays = {backoff_delay(attempt, 1.0, 60.0) for _ in range(50)}
    ceiling = min(60.0, 2.0**attempt)
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(delays) > 1


async def test_run_until_idle_times_out_clearly() -> None:
    m = Module("x")

    @m.task("x:forever")
    async def forever() -> None:
        raise Retry(0.01, count=False, reason="again")

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("x:forever")
    from workhive import WorkhiveError

    with pytest.raises(WorkhiveError, match="queues still busy after 0.3s"):
        await run_until_idle(hive, timeout=0.3)


async def test_subscribers_can_be_rate_limited() -> None:
    m, got = Module("e"), []

    @m.subscribe("alerts.*", group="pager", rate_limit=RateLimit(1, 3600, on_limit="reject"))
    async def page(e: dict[str, int]) -> None:
        got.append(e["n"])

    hive = Hive("memory://")
    hive.include(m)
    await hive.open()
    for n in range(3):
        await hive.publish("alerts.fire", {"n": n})
    await run_until_idle(hive)
    assert len(got) == 1
    assert len(await dead(hive)) == 2


async def test_idle_without_waiting_for_delayed_still_waits_for_own_retries() -> None:
    m, runs = Module("b"), []

    @m.task("b:flaky", max_retries=2, retry_backoff=0.05)
    async def flaky() -> None:
        runs.append("flaky")
        if len(runs) < 2:
            raise RuntimeError("once")

    @m.task("b:tomorrow")
    async def tomorrow() -> None:
        runs.append("tomorrow")

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("b:tomorrow", delay=86_400)
    await hive.enqueue("b:flaky")
    await run_until_idle(hive, wait_delayed=False)  # what `workhive worker --burst` does
    assert runs == ["flaky", "flaky"]
    stats = {s.queue: s for s in await hive.backend.stats()}  # type: ignore[attr-defined]
    assert stats["default"].delayed == 1  # tomorrow's task is left for tomorrow


async def test_cancelling_run_releases_running_tasks() -> None:
    m, started = Module("c"), asyncio.Event()

    @m.task("c:slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("c:slow")
    running = asyncio.create_task(hive.worker(cron=False).run())
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    stats = {s.queue: s for s in await hive.backend.stats()}  # type: ignore[attr-defined]
    assert (stats["default"].ready, stats["default"].in_flight) == (1, 0)  # given back
