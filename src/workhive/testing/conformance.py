"""The conformance suite: one set of scenarios every backend must pass against its real server.

A backend joins by supplying a :class:`Harness` — a factory of fresh clients on one isolated
store (same file, same key prefix...) — and its capability set. Scenarios for capabilities the
backend lacks assert the refusal instead. Third-party backends can import and run these::

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
    async def test_conformance(scenario, my_harness):
        await scenario(my_harness)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from workhive._backend import Capability, Settlement, SupportsDeadLetters, SupportsInspect
from workhive._envelope import decode, make_envelope
from workhive.backends import open_backend
from workhive.errors import CapabilityError
from workhive.hive import Hive
from workhive.module import Module
from workhive.testing import run_until_idle


class Harness(Protocol):
    """Fresh backend clients that all see the same isolated store."""

    capabilities: frozenset[Capability]

    def new(self) -> Any:  # returns a Backend
        ...


Scenario = Callable[[Harness], Awaitable[None]]


def _hive(h: Harness, *modules: Module) -> Hive:
    hive = Hive(h.new())
    hive.include(*modules)
    return hive


async def enqueue_consume_ack(h: Harness) -> None:
    m, seen = Module("c"), []

    @m.task("c:work")
    async def work(p: dict[str, int]) -> None:
        seen.append(p["i"])

    hive = _hive(h, m)
    for i in range(25):
        await hive.enqueue("c:work", {"i": i})
    await run_until_idle(hive)
    assert sorted(seen) == list(range(25)), seen
    if isinstance(hive.backend, SupportsInspect):
        (stat,) = [s for s in await hive.backend.stats() if s.queue == "default"]
        assert (stat.ready, stat.in_flight, stat.processed) == (0, 0, 25), stat
    await hive.close()


async def retry_with_backoff(h: Harness) -> None:
    m, starts = Module("r"), []

    @m.task("r:flaky", max_retries=3, retry_backoff=0.2)
    def flaky() -> None:
        starts.append(time.time())
        if len(starts) < 3:
            raise RuntimeError(f"boom {len(starts)}")

    hive = _hive(h, m)
    await hive.enqueue("r:flaky")
    await run_until_idle(hive)
    assert len(starts) == 3, starts
    # equal jitter: at least half of base * 2**attempt between attempts
    assert starts[1] - starts[0] >= 0.1 - 0.01, starts
    assert starts[2] - starts[1] >= 0.2 - 0.01, starts
    await hive.close()


async def dead_letter_and_replay(h: Harness) -> None:
    m, state = Module("d"), {"fail": True, "ran": 0}

    @m.task("d:doomed", max_retries=1, retry_backoff=0.01)
    async def doomed(p: dict[str, Any]) -> None:
        state["ran"] += 1
        if state["fail"]:
            raise ValueError("no good")

    hive = _hive(h, m)
    if Capability.DEAD_LETTER not in h.capabilities:
        return
    await hive.enqueue("d:doomed", {"k": 1})
    await run_until_idle(hive)
    assert isinstance(hive.backend, SupportsDeadLetters)
    dead = await hive.backend.dead_letters()
    assert len(dead) == 1 and "ValueError: no good" in dead[0].reason, dead
    env = decode(dead[0].body)
    assert env.payload == {"k": 1} and env.name == "d:doomed"
    assert [r.attempt for r in env.history] == [0, 1], env.history
    assert "ValueError" in env.history[-1].traceback
    state["fail"] = False
    assert await hive.backend.replay_dead([dead[0].id]) == 1
    await run_until_idle(hive)
    assert state["ran"] == 3 and await hive.backend.dead_letters() == []
    await hive.close()


async def delayed_task(h: Harness) -> None:
    m, started = Module("t"), []

    @m.task("t:later")
    async def later() -> None:
        started.append(time.time())

    hive = _hive(h, m)
    if Capability.DELAY not in h.capabilities:
        try:
            await hive.enqueue("t:later", delay=1)
        except CapabilityError:
            return
        raise AssertionError("delay accepted by a backend without the capability")
    eta = time.time() + 0.6
    await hive.enqueue("t:later", eta=eta)
    assert await hive.backend.fetch(["default"], 10, lease=5, wait=0) == []
    await run_until_idle(hive)
    assert len(started) == 1 and started[0] >= eta - 0.005, (started, eta)
    await hive.close()


async def priority_order(h: Harness) -> None:
    m, order = Module("p"), []

    @m.task("p:job")
    async def job(p: dict[str, int]) -> None:
        order.append(p["priority"])

    hive = _hive(h, m)
    for prio in (1, 5, 3, 9, 0):
        await hive.enqueue("p:job", {"priority": prio}, priority=prio)
    await run_until_idle(hive, concurrency=1)
    assert order == [9, 5, 3, 1, 0], order
    await hive.close()


async def unique_and_idempotency(h: Harness) -> None:
    m, ran = Module("u"), Counter[str]()

    @m.task("u:once", unique=True)
    async def once(p: dict[str, str]) -> None:
        ran[p["k"]] += 1

    hive = _hive(h, m)
    first = await hive.enqueue("u:once", {"k": "a"}, idempotency_key="key-1", unique_key="x")
    again = await hive.enqueue("u:once", {"k": "a"}, idempotency_key="key-1", unique_key="x")
    assert again.duplicate and again.id == first.id, (first, again)
    pending = await hive.enqueue("u:once", {"k": "b"}, unique_key="x")
    assert pending.duplicate and pending.id == first.id, pending
    await run_until_idle(hive)
    after = await hive.enqueue("u:once", {"k": "c"}, unique_key="x")  # lock released on ack
    assert not after.duplicate
    replay = await hive.enqueue("u:once", {"k": "d"}, idempotency_key="key-1", unique_key="y")
    assert replay.duplicate  # idempotency keys outlive completion (24 h window)
    await run_until_idle(hive)
    assert ran == Counter({"a": 1, "c": 1}), ran
    await hive.close()


async def event_fan_out(h: Harness) -> None:
    m, got = Module("e"), Counter[str]()

    @m.subscribe("orders.*", group="billing")
    async def billing(e: dict[str, int]) -> None:
        got[f"billing:{e['n']}"] += 1

    @m.subscribe("orders.created", group="shipping")
    async def shipping(e: dict[str, int]) -> None:
        got[f"shipping:{e['n']}"] += 1

    hive = _hive(h, m)
    await hive.open()  # binds both groups
    copies = [await hive.publish("orders.created", {"n": n}) for n in range(5)]
    assert copies == [2] * 5, copies
    assert await hive.publish("orders.paid", {"n": 99}) == 1  # only billing matches
    await run_until_idle(hive)
    expected = Counter({f"{g}:{n}": 1 for g in ("billing", "shipping") for n in range(5)})
    expected["billing:99"] = 1
    assert got == expected, got
    await hive.close()


async def competing_consumers(h: Harness) -> None:
    m, got = Module("cc"), Counter[int]()

    @m.subscribe("jobs.made", group="pool")
    async def handle(e: dict[str, int]) -> None:
        await asyncio.sleep(0.001)
        got[e["n"]] += 1

    producer = _hive(h, m)
    await producer.open()
    for n in range(60):
        await producer.publish("jobs.made", {"n": n})
    members = [_hive(h, m) for _ in range(2)]
    workers = [x.worker(concurrency=3, cron=False) for x in members]
    await asyncio.gather(*(w.run(until_idle=True) for w in workers))
    assert got == Counter(range(60)), got  # every event exactly once across the group
    assert sum(w.processed for w in workers) == 60
    for hive in (producer, *members):
        await hive.close()


async def cron_once_per_tick(h: Harness) -> None:
    m, ticks = Module("k"), Counter[str]()

    @m.cron("* * * * * *", name="k:every_second")
    async def every_second(p: Any, ctx: Any) -> None:
        ticks[ctx.headers["cron_tick"]] += 1

    hives = [_hive(h, m) for _ in range(3)]
    workers = [x.worker(concurrency=2) for x in hives]
    runs = [asyncio.create_task(w.run()) for w in workers]
    await asyncio.sleep(2.6)
    for w in workers:
        w.stop()
    await asyncio.gather(*runs)
    await run_until_idle(hives[0])
    assert ticks and set(ticks.values()) == {1}, ticks  # each tick ran exactly once
    for hive in hives:
        await hive.close()


async def lease_expiry_redelivers(h: Harness) -> None:
    backend = h.new()
    await backend.open()
    (result,) = await backend.enqueue([make_envelope("l:x", None, queue="leased")])
    (first,) = await backend.fetch(["leased"], 10, lease=0.3, wait=0)
    assert await backend.fetch(["leased"], 10, lease=0.3, wait=0) == []
    await asyncio.sleep(0.45)  # the "worker" holding it died
    (second,) = await backend.fetch(["leased"], 10, lease=5, wait=0.5)
    assert decode(second.body).id == result.id
    await backend.settle([Settlement(first, "ack")])  # stale: must not remove it
    await backend.settle([Settlement(second, "release")])
    (third,) = await backend.fetch(["leased"], 10, lease=5, wait=0.5)
    await backend.settle([Settlement(third, "ack")])
    assert await backend.fetch(["leased"], 10, lease=5, wait=0) == []
    await backend.close()


async def bad_messages_dead_letter(h: Harness) -> None:
    m = Module("b")

    @m.task("b:typed")
    async def typed(p: dict[str, int]) -> None:
        return None

    hive = _hive(h, m)
    await hive.open()
    backend = hive.backend
    await backend.enqueue([make_envelope("b:nobody", {}, queue="default")])
    await backend.enqueue([make_envelope("b:typed", {"x": "not an int"}, queue="default")])
    # corrupt a stored message: settle it back with garbage bytes
    await backend.enqueue([make_envelope("b:typed", {"x": 1}, queue="default")])
    got = await backend.fetch(["default"], 10, lease=5, wait=0.5)
    assert len(got) == 3
    victim = next(d for d in got if decode(d.body).payload == {"x": 1})
    await backend.settle([Settlement(victim, "retry", body=b"\xc1 not msgpack", eta=0.0)]
                         + [Settlement(d, "release") for d in got if d is not victim])
    await run_until_idle(hive)
    if not isinstance(backend, SupportsDeadLetters):
        return
    reasons = sorted(d.reason for d in await backend.dead_letters())
    assert len(reasons) == 3, reasons
    assert any("unknown task 'b:nobody'" in r for r in reasons), reasons
    assert any("invalid payload for task 'b:typed'" in r and "Expected `int`" in r for r in reasons)
    assert any("malformed message" in r for r in reasons), reasons
    await hive.close()


async def refuses_missing_capabilities(h: Harness) -> None:
    """A backend without durable queues refuses to run a worker, loudly."""
    noop = Hive(open_backend("noop://"))
    m = Module("n")

    @m.task("n:t")
    async def t() -> None:
        return None

    noop.include(m)
    try:
        await noop.worker().run(until_idle=True)
    except CapabilityError as exc:
        assert "does not support queue" in str(exc)
    else:
        raise AssertionError("noop backend ran a worker")


SCENARIOS: list[Scenario] = [
    enqueue_consume_ack,
    retry_with_backoff,
    dead_letter_and_replay,
    delayed_task,
    priority_order,
    unique_and_idempotency,
    event_fan_out,
    competing_consumers,
    cron_once_per_tick,
    lease_expiry_redelivers,
    bad_messages_dead_letter,
    refuses_missing_capabilities,
]
