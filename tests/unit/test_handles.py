"""Typed task handles, results, cancel, progress, retry policy by exception, eta as datetime.

On the memory backend (the conformance suite runs results / cancel / progress on every backend
that declares them)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from workhive import Hive, Module, TaskContext
from workhive.backend import Capability, DeadLetter, SupportsDeadLetters
from workhive.backends.memory import MemoryBackend
from workhive.errors import (
    CapabilityError,
    RegistryError,
    ResultTimeout,
    TaskCancelled,
    TaskFailed,
    ValidationError,
)
from workhive.handles import TaskHandle
from workhive.results import ResultHandle
from workhive.testing import run_until_idle


@dataclasses.dataclass
class Order:
    order_id: int


@dataclasses.dataclass
class Receipt:
    order_id: int
    total: float


def _hive(*modules: Module) -> Hive:
    hive = Hive(MemoryBackend())
    hive.include(*modules)
    return hive


async def _dead(hive: Hive) -> list[DeadLetter]:
    assert isinstance(hive.backend, SupportsDeadLetters)
    return await hive.backend.dead_letters()


# -- handles -------------------------------------------------------------------------------


async def test_handle_is_still_the_function_and_enqueues_itself() -> None:
    m = Module("shop")

    @m.task(store_result=True)
    async def charge(p: Order, ctx: TaskContext) -> Receipt:
        return Receipt(p.order_id, 9.5)

    @m.task()
    def plain(p: dict[str, int]) -> int:
        return p["n"] * 2

    assert isinstance(charge, TaskHandle) and charge.name == "shop:charge"
    assert charge.__name__ == "charge" and plain({"n": 4}) == 8  # a direct call, as before
    hive = _hive(m)
    run = await charge.enqueue(Order(7))
    assert isinstance(run, ResultHandle) and run.id and not run.duplicate
    assert (await run.status()).state == "pending"
    await run_until_idle(hive)
    assert await run.result(timeout=5) == Receipt(7, 9.5)  # converted to the declared type
    status = await run.status()
    assert status.state == "succeeded" and status.value == {"order_id": 7, "total": 9.5}
    # string names keep working, and hive.handle follows them
    sent = await hive.enqueue("shop:charge", {"order_id": 8})
    await run_until_idle(hive)
    assert await hive.handle(sent.id).result(timeout=5) == {"order_id": 8, "total": 9.5}
    await hive.close()


async def test_handle_needs_one_hive_or_hive_argument() -> None:
    m = Module("two")

    @m.task()
    async def job(p: dict[str, int]) -> None:
        return None

    with pytest.raises(RegistryError, match="not in any hive"):
        await job.enqueue({"n": 1})
    first, second = _hive(m), _hive(m)
    with pytest.raises(RegistryError, match="included in 2 hives; pass hive="):
        await job.enqueue({"n": 1})
    run = await job.enqueue({"n": 1}, hive=second)
    assert run.hive is second and run.id
    await first.close()
    await second.close()


def test_enqueue_sync_with_eta_datetime() -> None:
    m = Module("s")

    @m.task(store_result=True)
    def double(p: dict[str, int]) -> int:
        return p["n"] * 2

    hive = _hive(m)
    when = datetime.now(UTC) + timedelta(hours=1)
    run = double.enqueue_sync({"n": 2}, eta=when)
    assert run.status().state == "pending"
    with pytest.raises(ValidationError, match="eta must be a timezone-aware datetime"):
        double.enqueue_sync({"n": 2}, eta=datetime(2030, 1, 1))
    with pytest.raises(ValidationError, match="eta"):
        hive.sync().enqueue("s:double", {"n": 1}, eta=datetime(2030, 1, 1))
    assert run.cancel() is True  # delayed: deleted, and its record says so
    assert run.status().state == "cancelled"
    with pytest.raises(TaskCancelled):
        run.result(timeout=1)


# -- results ---------------------------------------------------------------------------------


async def test_failure_is_reraised_with_the_remote_traceback() -> None:
    m = Module("f")

    @m.task(max_retries=1, retry_backoff=0.01, store_result=True)
    def boom(p: dict[str, int]) -> None:
        raise KeyError(f"missing {p['n']}")

    hive = _hive(m)
    run = await boom.enqueue({"n": 3})
    await run_until_idle(hive)
    with pytest.raises(TaskFailed) as info:
        await run.result(timeout=5)
    err = info.value
    assert err.remote_type == "KeyError" and "missing 3" in err.remote_message
    assert "raise KeyError" in err.remote_traceback and err.task_id == run.id
    assert (await run.status()).attempt == 1  # the second, last attempt
    await hive.close()


async def test_results_only_when_asked_and_expire_after_ttl() -> None:
    m = Module("t")

    @m.task()
    def quiet() -> int:
        return 1

    hive = _hive(m)
    silent = await quiet.enqueue(None)
    brief = await quiet.enqueue(None, result_ttl=0.3)
    await run_until_idle(hive)
    assert (await silent.status()).state == "pending"  # nobody asked: nothing kept
    assert await brief.result(timeout=5) == 1
    deadline = time.monotonic() + 10
    while (await brief.status()).state != "pending":  # gone once its ttl ran out
        assert time.monotonic() < deadline, "the result outlived its ttl"
        await asyncio.sleep(0.1)
    with pytest.raises(ResultTimeout):
        await brief.result(timeout=0.2)
    with pytest.raises(ValidationError, match="result_ttl"):
        await quiet.enqueue(None, result_ttl=0)
    await hive.close()


async def test_backend_without_results_refuses_clearly(tmp_path: object) -> None:
    class NoResults(MemoryBackend):
        features = dataclasses.replace(MemoryBackend.features, results=False, cancel=False)

    assert not NoResults.features.has(Capability.RESULTS)
    m = Module("n")

    @m.task()
    def t() -> None:
        return None

    hive = Hive(NoResults())
    hive.include(m)
    with pytest.raises(CapabilityError, match="results.*coordination store"):
        await t.enqueue(None, store_result=True)
    with pytest.raises(CapabilityError, match="does not support cancel"):
        await hive.cancel("x")
    keeper = Module("k")
    keeper.task(store_result=True)(t)
    with pytest.raises(CapabilityError, match="store_result of task k:t"):
        hive.include(keeper)


def test_every_capability_spelling_claims_no_results_or_cancel() -> None:
    from workhive.backend import Features

    everything = Features(frozenset(Capability))
    assert not everything.has(Capability.RESULTS) and not everything.has(Capability.CANCEL)
    assert Features(frozenset(), results=True, cancel=True).has(Capability.CANCEL)


# -- retry policy ----------------------------------------------------------------------------


async def test_retry_on_and_dont_retry_on() -> None:
    m, attempts = Module("p"), {"only": 0, "never": 0, "other": 0}

    @m.task(max_retries=3, retry_backoff=0.01, retry_on=TimeoutError)
    def only(p: dict[str, str]) -> None:
        attempts["only"] += 1
        raise (TimeoutError if attempts["only"] < 3 else ValueError)("x")

    @m.task(max_retries=3, retry_backoff=0.01, dont_retry_on=(ValueError,))
    def never() -> None:
        attempts["never"] += 1
        raise ValueError("bad input")

    @m.task(max_retries=1, retry_backoff=0.01, dont_retry_on=(ValueError,))
    def other() -> None:
        attempts["other"] += 1
        raise OSError("flaky")

    hive = _hive(m)
    for task in (only, never, other):
        await hive.enqueue(task.name, {} if task is only else None)
    await run_until_idle(hive)
    assert attempts == {"only": 3, "never": 1, "other": 2}
    reasons = sorted(d.reason for d in await _dead(hive))
    assert any("ValueError: x (not retried: ValueError is not in retry_on)" in r
               for r in reasons), reasons
    assert any("ValueError: bad input (not retried: ValueError is in dont_retry_on)" in r
               for r in reasons), reasons
    assert any("OSError: flaky (after 2 attempts)" in r for r in reasons), reasons
    with pytest.raises(RegistryError, match="retry_on takes exception classes"):
        m.task("p:bad", retry_on=("TimeoutError",))  # type: ignore[arg-type]
    await hive.close()


# -- cancel and progress ---------------------------------------------------------------------


async def test_cancel_pending_and_running_async_task() -> None:
    m, started, finished = Module("c"), asyncio.Event(), []

    @m.task(store_result=True, max_retries=5, timeout=60)  # a cancel is not a timeout
    async def slow(p: dict[str, int], ctx: TaskContext) -> None:
        await ctx.progress(0.25, "a quarter")
        started.set()
        await asyncio.sleep(60)
        finished.append(p["n"])

    hive = _hive(m)
    waiting = await slow.enqueue({"n": 1})
    assert await waiting.cancel() is True
    assert (await waiting.status()).state == "cancelled"
    running = await slow.enqueue({"n": 2})
    worker = hive.worker(cron=False, cancel_poll=0.05)
    task = asyncio.create_task(worker.run(until_idle=True))
    await started.wait()
    status = await running.status()
    assert (status.state, status.progress, status.message) == ("running", 0.25, "a quarter")
    # what the heartbeat carries to `workhive status`
    assert worker._tracker.snapshot() == {running.id: ["c:slow", 0.25, "a quarter"]}
    assert await hive.cancel(running.id) is False  # running: flagged for its worker
    with pytest.raises(TaskCancelled):
        await running.result(timeout=10)
    await asyncio.wait_for(task, 30)
    assert finished == [] and await _dead(hive) == []  # not retried, not a dead letter
    await hive.close()


async def test_sync_handler_sees_ctx_cancelled() -> None:
    m, started, stop_seen = Module("s"), threading.Event(), threading.Event()

    @m.task(store_result=True)
    def loop_until_cancelled(p: None, ctx: TaskContext) -> str:
        started.set()
        deadline = time.monotonic() + 30
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        stop_seen.set()
        return "stopped"

    hive = _hive(m)
    run = await loop_until_cancelled.enqueue(None)
    worker = hive.worker(cron=False, cancel_poll=0.05)
    task = asyncio.create_task(worker.run(until_idle=True))
    await asyncio.get_running_loop().run_in_executor(None, started.wait)
    assert await run.cancel() is False
    with pytest.raises(TaskCancelled):
        await run.result(timeout=10)
    assert stop_seen.is_set()
    await asyncio.wait_for(task, 30)
    await hive.close()


async def test_progress_is_checked() -> None:
    m, errors = Module("g"), []

    @m.task()
    async def report(p: None, ctx: TaskContext) -> None:
        for bad in (1.5, -0.1, True, "half"):
            try:
                await ctx.progress(bad)  # type: ignore[arg-type]
            except ValidationError as exc:
                errors.append(str(exc))

    hive = _hive(m)
    await report.enqueue(None)
    await run_until_idle(hive)
    assert len(errors) == 4 and all("progress must be a number from 0 to 1" in e for e in errors)
    await hive.close()


async def test_a_handler_that_swallows_the_cancellation_still_ends_cancelled() -> None:
    m, started = Module("w"), asyncio.Event()

    @m.task(store_result=True, timeout=60)
    async def stubborn(p: None) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "partial"  # not the way to do it, but it must not wedge the worker
        return "done"

    hive = _hive(m)
    run = await stubborn.enqueue(None)
    worker = hive.worker(cron=False, cancel_poll=0.05)
    task = asyncio.create_task(worker.run(until_idle=True))
    await started.wait()
    await run.cancel()
    with pytest.raises(TaskCancelled):
        await run.result(timeout=10)
    await asyncio.wait_for(task, 30)
    await hive.close()
