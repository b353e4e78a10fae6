"""The kafka backend against Tansu: queueing, delays, priorities, settlements, offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from workhive._envelope import Envelope, decode, encode, make_envelope
from workhive.backend import Delivery, Settlement
from workhive.backends.kafka import KafkaBackend

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


async def fetch_n(backend: KafkaBackend, n: int, queue: str = "default",
                  wait: float = 10.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + wait
    while len(got) < n and time.monotonic() < deadline:
        got += await backend.fetch([queue], n - len(got), lease=30, wait=0.5)
    assert len(got) == n, f"fetched {len(got)} of {n} from {queue!r} within {wait}s"
    return got


async def test_enqueue_fetch_ack(backend: KafkaBackend,
                                 make: Callable[..., KafkaBackend]) -> None:
    envs = [make_envelope("t", {"i": i}) for i in range(5)]
    results = await backend.enqueue(envs)
    assert [r.id for r in results] == [e.id for e in envs]
    got = await fetch_n(backend, 5)
    assert [decode(d.body).id for d in got] == [e.id for e in envs]  # FIFO in a band
    (stat,) = await backend.stats()
    assert (stat.queue, stat.ready, stat.in_flight, stat.delayed) == ("default", 0, 5, 0)
    await backend.settle([Settlement(d, "ack") for d in got])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.in_flight) == (0, 0)
    await backend.close()
    other = make()  # committed means gone for the group
    assert await other.fetch(["default"], 10, lease=30, wait=2.5) == []


async def test_offsets_never_pass_a_running_task(make: Callable[..., KafkaBackend]) -> None:
    """One slow task holds offset 0 while later ones finish; the member dies; the next member
    starts at the slow one again (and re-runs the finished ones behind it: at-least-once)."""
    first = make(partitions=1)
    envs = [make_envelope("t", {"i": i}) for i in range(6)]
    await first.enqueue(envs)
    got = await fetch_n(first, 6)
    slow, rest = got[0], got[1:]
    assert decode(slow.body).id == envs[0].id
    await first.settle([Settlement(d, "ack") for d in rest])
    (stat,) = await first.stats()
    assert stat.in_flight == 1  # the slow one is still running
    await first.close()  # the worker dies with the slow task unfinished
    second = make(partitions=1)
    again = await fetch_n(second, 6, wait=15)
    assert decode(again[0].body).id == envs[0].id
    await second.settle([Settlement(d, "ack") for d in again])
    (stat,) = await second.stats()
    assert (stat.ready, stat.in_flight) == (0, 0)


async def test_release_comes_back_to_the_same_member(backend: KafkaBackend) -> None:
    await backend.enqueue([make_envelope("t", None)])
    (first,) = await fetch_n(backend, 1)
    await backend.settle([Settlement(first, "release")])
    (second,) = await fetch_n(backend, 1, wait=2)
    assert second.body == first.body
    await backend.settle([Settlement(second, "ack")])
    assert await backend.fetch(["default"], 5, lease=30, wait=0.3) == []


async def test_retry_publishes_then_acks_and_is_never_early(backend: KafkaBackend) -> None:
    env = make_envelope("t", {"n": 1})
    await backend.enqueue([env])
    (first,) = await fetch_n(backend, 1)
    nxt = Envelope(id=env.id, name="t", payload={"n": 2}, attempt=1)
    due = time.time() + 1.5
    await backend.settle([Settlement(first, "retry", body=encode(nxt), eta=due)])
    (stat,) = await backend.stats()
    assert stat.delayed == 1 and stat.in_flight == 0  # published, and the old one finished
    (second,) = await fetch_n(backend, 1, wait=10)
    arrived = time.time()
    assert arrived >= due
    assert arrived - due < 3.0
    again = decode(second.body)
    assert (again.attempt, again.payload) == (1, {"n": 2})
    await backend.settle([Settlement(second, "ack")])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.delayed, stat.in_flight) == (0, 0, 0)


async def test_delays_come_out_in_due_order(backend: KafkaBackend) -> None:
    now = time.time()
    etas = {"c": now + 2.2, "a": now + 0.4, "b": now + 1.2, "d": now + 6.5}
    await backend.enqueue([make_envelope(n, None, eta=eta) for n, eta in etas.items()])
    seen: list[tuple[str, float]] = []
    while len(seen) < 4:
        for d in await fetch_n(backend, 1, wait=15):
            seen.append((decode(d.body).name, time.time()))
            await backend.settle([Settlement(d, "ack")])
    assert [n for n, _ in seen] == ["a", "b", "c", "d"]
    for name, at in seen:
        assert etas[name] <= at <= etas[name] + 3.0, (name, at - etas[name])


async def test_priority_bands_highest_first(backend: KafkaBackend) -> None:
    prios = [0, 2, 1, 2, 0, 1]
    await backend.enqueue([make_envelope("p", {"i": i}, priority=p)
                           for i, p in enumerate(prios)])
    got = await fetch_n(backend, 6)
    order = [decode(d.body).payload["i"] for d in got]
    assert order == [1, 3, 2, 5, 0, 4]  # band 2, 1, 0; FIFO within a band


async def test_two_members_share_partitions(make: Callable[..., KafkaBackend]) -> None:
    a, b = make(partitions=4), make(partitions=4)
    envs = [make_envelope("t", {"i": i}) for i in range(200)]
    await a.enqueue(envs)
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def run(name: str, member: KafkaBackend) -> None:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 6:
            got = await member.fetch(["default"], 10, lease=30, wait=0.2)
            if got:
                idle_since = time.monotonic()
                seen[name] += [decode(d.body).id for d in got]
                await asyncio.sleep(0.05)  # slow enough that the other member joins in time
                await member.settle([Settlement(d, "ack") for d in got])

    await asyncio.gather(run("a", a), run("b", b))
    assert sorted(set(seen["a"]) | set(seen["b"])) == sorted(e.id for e in envs)
    assert seen["a"] and seen["b"], {k: len(v) for k, v in seen.items()}
