"""Registration, producer validation, flags, capabilities and handler typing on memory://."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest

import workhive
from workhive import (
    Capability,
    CapabilityError,
    ConfigError,
    Hive,
    Module,
    RateLimit,
    RegistryError,
    TaskContext,
    UnknownTaskError,
    ValidationError,
)
from workhive.backend import Features
from workhive.backends.memory import MemoryBackend
from workhive.testing import run_until_idle


class StructPayload(msgspec.Struct):
    user_id: int


@dataclasses.dataclass
class DataclassPayload:
    user_id: int


class TypedDictPayload(TypedDict):
    user_id: int


class PydanticPayload(pydantic.BaseModel):
    user_id: int


def test_public_api_is_pinned() -> None:
    assert set(workhive.__all__) == {
        "AttemptRecord", "Backend", "BackendError", "BackendUnavailable", "Capability",
        "CapabilityError", "ConfigError", "DeadLetter", "Delivery", "EnqueueResult", "Envelope",
        "Hive", "HiveConfig", "Module", "QueueStats", "RateLimit", "Reject", "RegistryError",
        "Retry", "SerializationError", "Settlement", "Skip", "TaskContext", "TaskError",
        "TaskTimeout", "UnknownTaskError", "ValidationError", "Worker", "WorkhiveError",
        "__version__", "load_config", "Cancelled", "ResultHandle", "ResultTimeout",
        "TaskCancelled", "TaskFailed", "TaskHandle", "TaskStatus",
    }


@pytest.mark.parametrize("kind", [StructPayload, DataclassPayload, TypedDictPayload,
                                  PydanticPayload])
async def test_payload_types(kind: Any) -> None:
    m, got = Module("p"), []

    async def t(p, ctx: TaskContext) -> None:  # type: ignore[no-untyped-def]
        got.append(p)

    t.__annotations__["p"] = kind  # a real (not postponed) annotation, as at module level
    m.task("p:t")(t)

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("p:t", {"user_id": 5})
    with pytest.raises(ValidationError, match=r"invalid payload for task 'p:t'.*user_id"):
        await hive.enqueue("p:t", {"user_id": "five"})
    await run_until_idle(hive)
    (value,) = got
    assert isinstance(value, dict if kind is TypedDictPayload else kind)


async def test_sync_handler_runs_in_thread() -> None:
    import threading

    m, threads = Module("s"), []

    @m.task()
    def blocking(p: dict[str, Any]) -> None:
        threads.append(threading.current_thread().name)

    hive = Hive("memory://")
    hive.include(m)
    await hive.enqueue("s:blocking", {})
    await run_until_idle(hive)
    assert threads and threads[0].startswith("workhive")


async def test_unknown_task_needs_explicit_queue() -> None:
    hive = Hive("memory://")
    with pytest.raises(UnknownTaskError, match="unknown task 'nope'.*pass queue="):
        await hive.enqueue("nope", {})
    result = await hive.enqueue("remote:task", {"a": 1}, queue="remote")
    assert result.id and not result.duplicate


def test_registry_errors() -> None:
    m = Module("r")

    @m.task("r:a")
    def a() -> None: ...

    with pytest.raises(RegistryError, match="declared twice"):
        m.task("r:a")(a)
    with pytest.raises(RegistryError, match="takes 3 parameters"):
        m.task("r:b")(lambda x, y, z: None)
    with pytest.raises(RegistryError, match="invalid cron expression"):
        m.cron("61 * * * *")
    with pytest.raises(RegistryError, match="max_retries must be >= 0"):
        m.task("r:c", max_retries=-1)
    odd = Module("o")
    odd.task("o:x", colour="blue")(a)
    with pytest.raises(RegistryError, match=r"unknown option\(s\) \['colour'\]"):
        Hive("memory://").include(odd)
    with pytest.raises(RegistryError, match="limit >= 1"):
        RateLimit(0, 10)


async def test_feature_flags_gate_registration() -> None:
    m, ran = Module("f"), []

    @m.task("f:on", flag="on")
    async def on() -> None:
        ran.append("on")

    @m.task("f:off", flag="off")
    async def off() -> None:
        ran.append("off")

    @m.task("f:unset", flag="unset")
    async def unset() -> None:
        ran.append("unset")

    hive = Hive("memory://", flags={"on": True, "off": False})
    hive.include(m)
    assert set(hive.tasks) == {"f:on"} and hive.disabled == {"f:off": "off", "f:unset": "unset"}
    await hive.enqueue("f:on")
    dropped = await hive.enqueue("f:off")
    assert dropped.id == ""
    with pytest.raises(ConfigError, match="'unset'"):  # a test must not silently skip a task
        await run_until_idle(hive)
    hive.flags["unset"] = False
    await run_until_idle(hive)
    assert ran == ["on"]


class QueueOnly(MemoryBackend):
    """A backend that only has plain queues: no events, counters, cron, delay or unique."""

    name = "queue-only"
    features = Features(frozenset({Capability.QUEUE}))
    publish = None  # type: ignore[assignment]


async def test_capabilities_are_refused_clearly() -> None:
    m = Module("c")

    @m.task("c:t", rate_limit=RateLimit(1, 60))
    async def t() -> None: ...

    with pytest.raises(CapabilityError, match="'queue-only' backend does not support counters"):
        Hive(QueueOnly()).include(m)
    unique = Module("unique")
    unique.task("unique:t", unique=True)(t)
    with pytest.raises(CapabilityError, match="does not support unique.*coordination="):
        Hive(QueueOnly()).include(unique)
    urgent = Module("urgent")
    urgent.task("urgent:t", priority=5)(t)
    with pytest.raises(CapabilityError, match="does not support priority"):
        Hive(QueueOnly()).include(urgent)
    plain = Module("plain")
    plain.task("plain:t")(t)
    hive = Hive(QueueOnly())
    hive.include(plain)
    with pytest.raises(CapabilityError, match="does not support events"):
        await hive.publish("x.y", {})
    with pytest.raises(CapabilityError, match="does not support delay"):
        await hive.enqueue("plain:t", delay=3)
    with pytest.raises(CapabilityError, match="does not support unique"):
        await hive.enqueue("plain:t", idempotency_key="k")
    with pytest.raises(CapabilityError, match="does not support priority"):
        await hive.enqueue("plain:t", priority=1)
    sub = Module("s")
    sub.subscribe("x.*", group="g")(t)
    with pytest.raises(CapabilityError, match="'queue-only' backend does not support events"):
        Hive(QueueOnly()).include(sub)
    cron = Module("k")
    cron.cron("* * * * *")(t)
    with pytest.raises(CapabilityError, match="does not support cron"):
        Hive(QueueOnly()).include(cron)


async def test_noop_accepts_and_drops() -> None:
    m = Module("n")

    @m.task("n:t")
    async def t() -> None: ...

    @m.subscribe("a.*", group="g")
    async def s() -> None: ...

    @m.cron("* * * * *", publish="tick")
    def tick() -> None: ...

    hive = Hive("noop://")
    hive.include(m)  # an app with background work switched off still declares everything
    result = await hive.enqueue("n:t", delay=5)
    assert result.id
    assert await hive.publish("a.b", {}) == 0
    assert hive.backend.accepted == 2  # type: ignore[attr-defined]
    with pytest.raises(CapabilityError, match="'noop' backend does not support queue"):
        await hive.worker().run()


async def test_module_included_after_open_still_gets_events() -> None:
    early, late, got = Module("early"), Module("late"), []

    @early.task("early:t")
    async def t() -> None: ...

    @late.subscribe("things.*", group="late")
    async def on_thing(e: dict[str, int]) -> None:
        got.append(e["n"])

    hive = Hive("memory://")
    hive.include(early)
    await hive.open()
    hive.include(late)  # after open: bound when the worker starts
    worker = hive.worker(cron=False)
    running = asyncio.create_task(worker.run())
    for _ in range(100):
        if await hive.publish("things.made", {"n": 1}):
            break
        await asyncio.sleep(0.01)
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    worker.stop()
    await running
    assert got == [1]
