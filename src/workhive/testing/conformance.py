"""The conformance suite: one set of scenarios every backend must pass against its real server.

It comes with a pytest plugin (:mod:`workhive.testing.plugin`, registered when workhive is
installed). A backend joins by supplying a ``harness`` fixture — a :class:`Harness` that hands
out fresh clients on one isolated store (same file, same key prefix, same vhost) — and one test;
the plugin parametrises it over every scenario::

    # conftest.py of a third-party backend
    @pytest.fixture
    def harness():
        return Harness(lambda: MyBackend.from_url(URL))   # or Harness(t, coordination=c)

    # test_conformance.py
    async def test_conformance(conformance_scenario, harness):
        await conformance_scenario(harness)

What a backend declares in its :class:`~workhive.backend.Features` decides what is checked: a
scenario for a feature the backend lacks asserts the refusal (a clear ``CapabilityError``)
instead of passing silently. Lost-worker recovery is checked for timed leases (expiry) and for
session leases (a client that goes away without settling). Retry and dead-letter may be
"publish, then ack": the scenarios run without crashes, so they expect every attempt exactly
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from workhive._envelope import decode, encode, make_envelope
from workhive._task import RateLimit
from workhive._tracking import CancelsOnArrival
from workhive.backend import (
    Backend,
    Capability,
    Coordination,
    DeadLetter,
    Features,
    Settlement,
    SupportsCancel,
    SupportsDeadLetters,
    SupportsStats,
    band_of,
    require,
)
from workhive.backends.composite import Composite
from workhive.errors import CapabilityError, TaskCancelled, TaskFailed
from workhive.hive import Hive
from workhive.module import Module
from workhive.results import ResultHandle
from workhive.testing import run_until_idle


class Harness:
    """Fresh backend clients that all see the same isolated store.

    ``factory`` builds a transport client; ``coordination`` (optional) builds a client of the
    coordination store, and each :meth:`new` then returns a :class:`Composite` of the two.
    """

    def __init__(self, factory: Callable[[], Backend],
                 coordination: Callable[[], Backend] | None = None) -> None:
        self.factory = factory
        self.coordination = coordination
        self.made: list[Backend] = []
        self.features: Features = self.new().features

    def new(self) -> Backend:
        backend = self.factory()
        if self.coordination is not None:
            backend = Composite(backend, self.coordination())
        self.made.append(backend)
        return backend

    def has(self, capability: Capability) -> bool:
        return self.features.has(capability)

    async def close_all(self) -> None:
        """Close every client handed out (a failed scenario leaves its clients open)."""
        for backend in self.made:
            with contextlib.suppress(Exception):
                await backend.close()


Scenario = Callable[[Harness], Awaitable[None]]


def _hive(h: Harness, *modules: Module) -> Hive:
    hive = Hive(h.new())
    hive.include(*modules)
    return hive


async def _refused(what: str, attempt: Callable[[], Any]) -> None:
    """Assert that ``attempt`` (sync or async) raises CapabilityError."""
    try:
        result = attempt()
        if asyncio.iscoroutine(result):
            await result
    except CapabilityError:
        return
    raise AssertionError(f"{what} was accepted by a backend that does not declare it")


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
    if isinstance(hive.backend, SupportsStats):
        (stat,) = [s for s in await hive.backend.stats() if s.queue == "default"]
        assert (stat.ready, stat.in_flight) == (0, 0), stat
        if not isinstance(hive.backend, Composite):  # brokers do not keep running totals
            assert stat.processed == 25, stat
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
    if not h.has(Capability.DEAD_LETTER):
        await _refused("dead-letter browsing",
                       lambda: require(hive.backend, Capability.DEAD_LETTER, "dlq list"))
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
    """Never early; at most the declared resolution late (plus a generous scheduling margin)."""
    m, started = Module("t"), []

    @m.task("t:later")
    async def later(p: dict[str, int]) -> None:
        started.append((p["n"], time.time()))

    hive = _hive(h, m)
    if not h.has(Capability.DELAY):
        await _refused("delay", lambda: hive.enqueue("t:later", {"n": 0}, delay=1))
        return
    now = time.time()
    etas = {0: now + 2.6, 1: now + 0.6, 2: now + 1.6}  # 1 s apart: distinct at 1 s resolution
    for n, eta in etas.items():
        await hive.enqueue("t:later", {"n": n}, eta=eta)
    early = await hive.backend.fetch(["default"], 10, lease=5, wait=0)
    # nothing is due yet, unless enqueueing took longer than the first delay (a loaded
    # machine): then only what is due may come, and it goes back for the worker to run
    for d in early:
        assert (decode(d.body).eta or 0.0) <= time.time(), "a delayed task came out early"
    await hive.backend.settle([Settlement(d, "release") for d in early])
    deadline = time.monotonic() + 30
    while len(started) < len(etas) and time.monotonic() < deadline:
        await run_until_idle(hive)  # what this checks is timing; idleness has its own scenarios
    assert [n for n, _ in started] == [1, 2, 0], started
    slack = h.features.delay_resolution + 2.0
    for n, at in started:
        assert etas[n] - 0.005 <= at <= etas[n] + slack, (n, at, etas[n])
    await hive.close()


async def priority_order(h: Harness) -> None:
    """Higher band first, FIFO within a band (a backlog waiting before the worker starts)."""
    m, order = Module("p"), []

    @m.task("p:job")
    async def job(p: dict[str, int]) -> None:
        order.append(p["priority"])

    hive = _hive(h, m)
    priorities = [1, 5, 3, 9, 0]
    if not h.has(Capability.PRIORITY):
        await _refused("priority", lambda: hive.enqueue("p:job", {"priority": 5}, priority=5))
        return
    for prio in priorities:
        await hive.enqueue("p:job", {"priority": prio}, priority=prio)
    await run_until_idle(hive, concurrency=1)
    bands = h.features.priority_bands
    expected = sorted(priorities, key=lambda p: -band_of(p, bands))  # stable: FIFO in a band
    assert order == expected, (order, expected)
    await hive.close()


async def unique_and_idempotency(h: Harness) -> None:
    m, ran = Module("u"), Counter[str]()

    @m.task("u:once", unique=True)
    async def once(p: dict[str, str]) -> None:
        ran[p["k"]] += 1

    if not h.has(Capability.UNIQUE):
        await _refused("unique tasks", lambda: _hive(h, m))
        return
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

    @m.subscribe("audit.#", group="audit")
    async def audit(e: dict[str, int]) -> None:
        got[f"audit:{e['n']}"] += 1

    if not h.has(Capability.EVENTS):
        await _refused("durable subscriber groups", lambda: _hive(h, m).open())
        return
    hive = _hive(h, m)
    await hive.open()  # binds every group
    copies = [await hive.publish("orders.created", {"n": n}) for n in range(5)]
    assert copies in ([2] * 5, [None] * 5), copies  # None: the broker fans out and does not say
    assert await hive.publish("orders.paid", {"n": 99}) in (1, None)  # only billing matches
    assert await hive.publish("orders.paid.late", {"n": 98}) in (0, None)  # '*' is one word
    assert await hive.publish("audit", {"n": 97}) in (1, None)  # '#' is zero or more words
    assert await hive.publish("audit.eu.login", {"n": 96}) in (1, None)
    await run_until_idle(hive)
    expected = Counter({f"{g}:{n}": 1 for g in ("billing", "shipping") for n in range(5)})
    expected.update({"billing:99": 1, "audit:97": 1, "audit:96": 1})
    assert got == expected, got
    await hive.close()


async def competing_consumers(h: Harness) -> None:
    m, got = Module("cc"), Counter[int]()

    @m.subscribe("jobs.made", group="pool")
    async def handle(e: dict[str, int]) -> None:
        await asyncio.sleep(0.001)
        got[e["n"]] += 1

    if not h.has(Capability.EVENTS):
        return  # refusal checked by event_fan_out
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

    if not h.has(Capability.CRON):
        await _refused("cron", lambda: _hive(h, m))
        return
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


async def rate_limits_are_shared(h: Harness) -> None:
    """A window limit holds across two clients: the counters live in the store."""
    m = Module("rl")

    @m.task("rl:t", rate_limit=RateLimit(3, 3600, on_limit="reject"))
    async def t() -> None:
        return None

    if not h.has(Capability.COUNTERS):
        await _refused("rate limits", lambda: _hive(h, m))
        return
    hives = [_hive(h, m) for _ in range(2)]
    for hive in hives:
        for _ in range(3):
            await hive.enqueue("rl:t")
    await run_until_idle(hives[0])
    await run_until_idle(hives[1])
    if isinstance(hives[0].backend, SupportsDeadLetters):
        dead = await hives[0].backend.dead_letters()
        assert len(dead) == 3 and all("rate limit" in d.reason for d in dead), dead
    for hive in hives:
        await hive.close()


async def lost_worker_redelivers(h: Harness) -> None:
    """A delivery nobody settles comes back: after its lease (timed), or when its consumer's
    session ends (session). Settling a lost delivery is a no-op."""
    lease = h.features.lease
    if lease == "none":
        return
    backend = h.new()
    await backend.open()
    (result,) = await backend.enqueue([make_envelope("l:x", None, queue="leased")])
    (first,) = await backend.fetch(["leased"], 10, lease=0.3, wait=5)
    if lease == "timed":
        assert await backend.fetch(["leased"], 10, lease=0.3, wait=0) == []
        await asyncio.sleep(0.45)  # the "worker" holding it died
        other = backend
    else:
        await backend.close()  # the worker's connection dies without settling
        other = h.new()
        await other.open()
    (second,) = await other.fetch(["leased"], 10, lease=5, wait=5)
    assert decode(second.body).id == result.id
    if lease == "timed":
        await backend.settle([Settlement(first, "ack")])  # stale: must not remove it
    await other.settle([Settlement(second, "release")])
    (third,) = await other.fetch(["leased"], 10, lease=5, wait=5)
    await other.settle([Settlement(third, "ack")])
    assert await other.fetch(["leased"], 10, lease=5, wait=0.3) == []
    await other.close()


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
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        got += await backend.fetch(["default"], 10, lease=5, wait=0.5)
    assert len(got) == 3, got
    victim = next(d for d in got if decode(d.body).payload == {"x": 1})
    await backend.settle([Settlement(victim, "retry", body=b"\xc1 not msgpack", eta=0.0)]
                         + [Settlement(d, "release") for d in got if d is not victim])
    await run_until_idle(hive)
    if not isinstance(backend, SupportsDeadLetters):
        return  # the queue kept flowing; the letters are parked where the backend keeps them
    reasons = sorted(d.reason for d in await backend.dead_letters())
    assert len(reasons) == 3, reasons
    assert any("unknown task 'b:nobody'" in r for r in reasons), reasons
    assert any("invalid payload for task 'b:typed'" in r and "Expected `int`" in r for r in reasons)
    assert any("malformed message" in r for r in reasons), reasons
    await hive.close()


async def refuses_missing_capabilities(h: Harness) -> None:
    """Whatever the backend does not declare is refused at registration or enqueue."""
    hive = Hive(h.new())
    m = Module("n")

    @m.task("n:t")
    async def t() -> None:
        return None

    hive.include(m)
    checks: dict[Capability, Callable[[], Any]] = {
        Capability.DELAY: lambda: hive.enqueue("n:t", delay=5),
        Capability.PRIORITY: lambda: hive.enqueue("n:t", priority=3),
        Capability.UNIQUE: lambda: hive.enqueue("n:t", idempotency_key="k"),
        Capability.ORDERED_KEYS: lambda: hive.enqueue("n:t", ordering_key="k"),
        Capability.EVENTS: lambda: _bind(hive),
        Capability.QUEUE: lambda: hive.worker().run(until_idle=True),
        Capability.DEAD_LETTER: lambda: require(hive.backend, Capability.DEAD_LETTER, "dlq"),
    }
    for capability, attempt in checks.items():
        if not h.has(capability):
            await _refused(capability.value, attempt)
    hold = h.features.max_hold
    if hold is not None:
        slow = Module("slow")
        slow.task("slow:t", timeout=hold + 1)(t)
        await _refused(f"a task timeout above max_hold ({hold:g}s)", lambda: hive.include(slow))
    await hive.close()


async def coordination_store(h: Harness) -> None:
    """Key claims and kept dead letters, the two things a store does for a transport without
    one (a :class:`Composite` checks its store through the same calls)."""
    a, b = h.new(), h.new()
    if not isinstance(a, Coordination) or not isinstance(b, Coordination):
        return  # a transport without a store: what needs one is refused (see above)
    await a.open()
    await b.open()
    tag = f"{time.time_ns()}"  # stores may outlive a run (external servers): fresh keys
    # one owner per key, seen by every client; a late release by another frees nothing
    assert await a.claim_key(f"k{tag}", "a", 60) == "a"
    assert await b.claim_key(f"k{tag}", "b", 60) == "a"
    await b.release_key(f"k{tag}", "b")
    assert await b.claim_key(f"k{tag}", "b", 60) == "a"
    await a.release_key(f"k{tag}", "a")
    assert await b.claim_key(f"k{tag}", "b", 60) == "b"
    await a.release_key(f"never{tag}", "a")  # releasing what nobody holds is fine
    # a ttl runs out; no ttl holds until released
    assert await a.claim_key(f"brief{tag}", "a", 0.3) == "a"
    assert await a.claim_key(f"held{tag}", "a", None) == "a"
    await asyncio.sleep(0.6)
    assert await b.claim_key(f"brief{tag}", "b", 0.3) == "b"
    assert await b.claim_key(f"held{tag}", "b", None) == "a"
    # dead letters kept for a transport: listed, counted, purged by id, kept once per id
    queue = f"kept{tag}"

    def letter(i: int, reason: str = "boom") -> DeadLetter:
        body = encode(make_envelope("t", i, queue=queue))
        return DeadLetter(f"{tag}-{i}", queue, body, reason, 1_700_000_000.0 + i)

    await a.keep_dead([letter(1), letter(2)])
    await b.keep_dead([letter(1, "again"), letter(3)])
    mine = await b.dead_letters(queue=queue)
    assert [(d.id, d.reason) for d in mine] == [(f"{tag}-1", "boom"), (f"{tag}-2", "boom"),
                                                (f"{tag}-3", "boom")], mine
    assert decode(mine[0].body).payload == 1 and mine[0].failed_at == 1_700_000_001.0
    assert [d.id for d in await b.dead_letters(queue=queue, limit=1, offset=1)] == [f"{tag}-2"]
    assert {s.queue: s.dead for s in await a.stats()}.get(queue) == 3
    assert await a.purge_dead(ids=[f"{tag}-1", f"{tag}-3"]) == 2
    assert [d.id for d in await b.dead_letters(queue=queue)] == [f"{tag}-2"]
    await a.purge_dead(queue=queue)
    await a.close()
    await b.close()


async def results_cancel_progress(h: Harness) -> None:
    """Results (value, failure, ttl), progress and cancellation (waiting, delayed, running) on
    a backend that declares them; a clear refusal where it does not."""
    m, started, ran = Module("rc"), asyncio.Event(), []

    @m.task("rc:double")
    def double(p: dict[str, int]) -> int:
        ran.append(p["n"])
        return p["n"] * 2

    @m.task("rc:fail", max_retries=0)
    def fail() -> None:
        raise LookupError("no such row")

    @m.task("rc:slow", max_retries=3)
    async def slow(p: dict[str, int], ctx: Any) -> None:
        await ctx.progress(0.5, "half way")
        started.set()
        await asyncio.sleep(120)
        ran.append(p["n"])

    hive = _hive(h, m)
    results, cancel = h.has(Capability.RESULTS), h.has(Capability.CANCEL)
    if not results:
        await _refused("store_result", lambda: hive.enqueue("rc:double", {"n": 1},
                                                            store_result=True))
        await _refused("reading a result", lambda: hive.handle("x").status())
    if not cancel:
        await _refused("cancel", lambda: hive.cancel("x"))
    if results:
        ok = await hive.enqueue("rc:double", {"n": 21}, store_result=True)
        bad = await hive.enqueue("rc:fail", store_result=True)
        brief = await hive.enqueue("rc:double", {"n": 1}, result_ttl=0.5)
        await run_until_idle(hive)
        assert await hive.handle(ok.id).result(timeout=30) == 42
        try:
            await hive.handle(bad.id).result(timeout=30)
            raise AssertionError("a failed task's result did not raise TaskFailed")
        except TaskFailed as exc:
            assert exc.remote_type == "LookupError", exc.remote_type
            assert "no such row" in exc.remote_message and "LookupError" in exc.remote_traceback
        deadline = time.monotonic() + 30
        while (await hive.handle(brief.id).status()).state != "pending":
            assert time.monotonic() < deadline, "a result outlived its ttl"
            await asyncio.sleep(0.1)
    if cancel:
        ran.clear()
        # a broker cannot take one waiting message out of its queue: its cancel flags the task
        # (False) and the worker that receives it drops it unrun; other backends delete it (True)
        on_arrival = isinstance(hive.backend, CancelsOnArrival) and hive.backend.cancel_on_arrival
        keep = results or None
        waiting = await hive.enqueue("rc:double", {"n": 1}, store_result=keep)
        later = await hive.enqueue("rc:double", {"n": 2}, delay=60, store_result=keep) if h.has(
            Capability.DELAY) else waiting
        ranked = await hive.enqueue("rc:double", {"n": 3}, priority=5, store_result=keep) if \
            h.has(Capability.PRIORITY) else waiting
        keyed = await hive.enqueue("rc:double", {"n": 4}, unique_key="u", store_result=keep) if \
            h.has(Capability.UNIQUE) else waiting
        sent = {waiting.id, later.id, ranked.id, keyed.id}
        for task_id in sent:
            assert await hive.cancel(task_id) is not on_arrival, (task_id, on_arrival)
        if h.has(Capability.UNIQUE) and not on_arrival:  # a deleted task frees its unique key
            assert not (await hive.enqueue("rc:double", {"n": 5}, unique_key="u")).duplicate
        await run_until_idle(hive, wait_delayed=False)
        not_due: set[str] = set()  # flagged, and dropped only when it comes due
        if on_arrival:
            if h.has(Capability.DELAY):
                not_due = {later.id}
                assert isinstance(hive.backend, SupportsCancel)
                assert await hive.backend.cancelled([later.id]) == not_due
            if h.has(Capability.UNIQUE):  # a task dropped on arrival frees its unique key
                assert not (await hive.enqueue("rc:double", {"n": 5}, unique_key="u")).duplicate
                await run_until_idle(hive, wait_delayed=False)
        assert ran == ([5] if h.has(Capability.UNIQUE) else []), ran
        if results:
            for task_id in sent - not_due:
                state = (await hive.handle(task_id).status()).state
                assert state == "cancelled", (task_id, state)
        running = await hive.enqueue("rc:slow", {"n": 6}, store_result=results or None)
        worker = hive.worker(cron=False, cancel_poll=0.05)
        # idle: with nothing delayed left but the flagged task that is not due yet
        task = asyncio.create_task(worker.run(until_idle=True, wait_delayed=not not_due))
        await asyncio.wait_for(started.wait(), 30)
        if results:
            status = await hive.handle(running.id).status()
            assert (status.state, status.progress, status.message) == (
                "running", 0.5, "half way"), status
        assert await hive.cancel(running.id) is False  # running: its worker is told
        await asyncio.wait_for(task, 30)
        assert ran == [5] if h.has(Capability.UNIQUE) else ran == [], ran  # never retried
        if results:
            try:
                await ResultHandle(hive, running.id).result(timeout=30)
                raise AssertionError("a cancelled task's result did not say so")
            except TaskCancelled:
                pass
        if isinstance(hive.backend, SupportsDeadLetters):
            dead = [d.id for d in await hive.backend.dead_letters()]
            assert not any(d.startswith(t) for d in dead for t in {running.id, *sent}), \
                "cancelled, dead-lettered"
    await hive.close()


async def _bind(hive: Hive) -> None:
    from workhive.backend import events_of

    await events_of(hive.backend, "bind").bind("x.*", "g")


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
    rate_limits_are_shared,
    lost_worker_redelivers,
    bad_messages_dead_letter,
    refuses_missing_capabilities,
    coordination_store,
    results_cancel_progress,
]


__all__ = ["SCENARIOS", "Harness", "Scenario"]
