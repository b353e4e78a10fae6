"""Delays and retries through nats-server message schedules (2.12+, a private server) and
through the delay stream and its forwarder (the shared server, older than 2.12); what ``open``
picks, the ``schedules`` option, and an upgrade that leaves tasks in the delay stream."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from workhive import Hive, Module, TaskContext
from workhive._envelope import decode, make_envelope
from workhive._outcome import settlement_for
from workhive.backend import Delivery, Settlement
from workhive.backends.nats import NatsBackend
from workhive.backends.nats.schedule import server_has_schedules
from workhive.errors import BackendError, Retry
from workhive.testing import run_until_idle

Make = Callable[..., NatsBackend]


async def _fetch(b: NatsBackend, queue: str, n: int, timeout: float = 15) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += await b.fetch([queue], n - len(got), lease=10, wait=0.5)
    assert len(got) == n, f"got {len(got)} of {n} before the deadline"
    return got


async def _published_to_delay_stream(b: NatsBackend) -> int:
    """How many messages the delay stream ever stored (its last sequence)."""
    return int((await b.js.stream_info(b.names.delay)).state.last_seq)


def _scheduler(d: Delivery) -> str | None:
    """The schedule a delivered task was stored from (a header the server adds)."""
    return (d.receipt.msg.headers or {}).get("Nats-Scheduler")


async def _old_server(b: NatsBackend) -> None:
    info = await b.js.account_info()
    if server_has_schedules(b.nc, int(getattr(info.api, "level", None) or 0)):
        pytest.skip("the shared nats server has message schedules; this checks an older one")


async def test_a_new_server_gets_schedules_on_the_task_stream(make_private: Make) -> None:
    b = make_private()
    await b.open()
    assert b.schedules
    config = (await b.js.stream_info(b.names.tasks)).config
    assert config.allow_msg_schedules
    assert set(config.subjects or []) == {f"{b.names.prefix}.q.>", f"{b.names.prefix}.s.>"}
    assert config.republish is not None and config.republish.headers_only


async def test_delays_and_retries_run_on_time_through_schedules(make_private: Make) -> None:
    m = Module("s")
    later: dict[int, float] = {}
    attempts: list[float] = []

    @m.task("s:later")
    async def run_later(p: dict[str, int]) -> None:
        later[p["i"]] = time.time()

    @m.task("s:again", max_retries=5)
    async def again(p: dict[str, int], ctx: TaskContext) -> None:
        attempts.append(time.time())
        if ctx.envelope.attempt < 2:
            raise Retry(delay=0.7)

    backend = make_private()
    hive = Hive(backend)
    hive.include(m)
    await hive.open()
    now = time.time()
    etas = {0: now + 1.3, 1: now + 0.4, 2: now + 0.9}
    for i, eta in etas.items():
        await hive.enqueue("s:later", {"i": i}, eta=eta)
    await hive.enqueue("s:again", {})
    await run_until_idle(hive)

    slack = backend.features.delay_resolution + 1.0  # a busy host; never early is exact
    assert sorted(later, key=later.__getitem__) == [1, 2, 0], later
    for i, started in later.items():
        assert etas[i] <= started <= etas[i] + slack, (i, started - etas[i])
    assert len(attempts) == 3, attempts
    for before, after in itertools.pairwise(attempts):
        assert before + 0.7 <= after <= before + 0.7 + slack, attempts
    assert backend.schedules and await _published_to_delay_stream(backend) == 0
    await hive.close()


async def test_a_delay_and_a_retry_are_stored_from_schedules(make_private: Make) -> None:
    b = make_private()
    await b.open()
    env = make_envelope("t", {"k": 1}, queue="sched", eta=time.time() + 0.5)
    await b.enqueue([env])
    (stat,) = [s for s in await b.stats() if s.queue == "sched"]
    assert (stat.ready, stat.delayed) == (0, 1), stat
    (d,) = await _fetch(b, "sched", 1)
    assert (_scheduler(d) or "").startswith(f"{b.names.prefix}.s.q.sched."), d.receipt.msg.headers
    await b.settle([settlement_for(d, decode(d.body), Retry(delay=0.4), time.time())])
    (stat,) = [s for s in await b.stats() if s.queue == "sched"]
    assert (stat.ready, stat.in_flight, stat.delayed) == (0, 0, 1), stat
    (again,) = await _fetch(b, "sched", 1)
    assert _scheduler(again) is not None and decode(again.body).attempt == 1
    await b.settle([Settlement(again, "ack")])
    assert await _published_to_delay_stream(b) == 0
    (stat,) = [s for s in await b.stats() if s.queue == "sched"]
    assert (stat.ready, stat.in_flight, stat.delayed) == (0, 0, 0), stat


async def test_an_older_server_uses_the_delay_stream_and_forwarder(make: Make) -> None:
    b = make()
    await b.open()
    await _old_server(b)
    assert not b.schedules
    assert not (await b.js.stream_info(b.names.tasks)).config.allow_msg_schedules
    eta = time.time() + 0.4
    await b.enqueue([make_envelope("t", None, queue="fwd", eta=eta)])
    (d,) = await _fetch(b, "fwd", 1)
    assert time.time() >= eta and _scheduler(d) is None
    assert await _published_to_delay_stream(b) == 1
    await b.settle([Settlement(d, "ack")])


async def test_schedules_on_is_refused_by_an_older_server(make: Make) -> None:
    probe = make()
    await probe.open()
    await _old_server(probe)
    with pytest.raises(BackendError, match="2.12 or later"):
        await make(schedules="on").open()


async def test_an_upgrade_keeps_every_task_and_off_never_strands_schedules(
        make_private: Make) -> None:
    """A stream made without schedules (as by an older workhive or server) holds a ready task
    and a delayed one in the delay stream; a process with schedules turns them on and still
    gets both; a later ``schedules=off`` process keeps the stream's schedules."""
    old = make_private(schedules="off")
    await old.open()
    assert not old.schedules
    assert not (await old.js.stream_info(old.names.tasks)).config.allow_msg_schedules
    await old.enqueue([make_envelope("t", {"i": 0}, queue="up"),
                       make_envelope("t", {"i": 1}, queue="up", eta=time.time() + 0.3)])
    await old.close()

    new = make_private()
    await new.open()
    assert new.schedules
    await new.enqueue([make_envelope("t", {"i": 2}, queue="up", eta=time.time() + 0.3)])
    later_off = make_private(schedules="off")
    await later_off.open()
    assert not later_off.schedules
    assert (await later_off.js.stream_info(later_off.names.tasks)).config.allow_msg_schedules

    got = await _fetch(new, "up", 3)
    assert sorted(decode(d.body).payload["i"] for d in got) == [0, 1, 2]
    by_schedule = {decode(d.body).payload["i"]: _scheduler(d) is not None for d in got}
    assert by_schedule == {0: False, 1: False, 2: True}
    await new.settle([Settlement(d, "ack") for d in got])
