"""Transport behaviour of the nats backend on the real server: delays, bands, leases, release,
dead letters, malformed messages and stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from workhive import Hive, Module
from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement, band_of
from workhive.backends.nats import NatsBackend
from workhive.backends.nats.naming import Names
from workhive.errors import BackendUnavailable
from workhive.testing import run_until_idle


async def _fetch_all(b: NatsBackend, queue: str, n: int, timeout: float = 10) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += await b.fetch([queue], n - len(got), lease=10, wait=0.5)
    return got


async def test_delays_come_due_in_order_never_early(backend: NatsBackend) -> None:
    now = time.time()
    offsets = [1.2, 0.4, 0.9, 0.2, 0.6, 1.5]
    envs = [make_envelope("t", {"i": i}, queue="later", eta=now + off)
            for i, off in enumerate(offsets)]
    await backend.enqueue(envs)  # published together, in no particular due order
    assert await backend.fetch(["later"], 10, lease=10, wait=0) == []
    seen: list[tuple[int, float]] = []
    deadline = time.monotonic() + 10
    while len(seen) < len(envs) and time.monotonic() < deadline:
        for d in await backend.fetch(["later"], 10, lease=10, wait=0.5):
            seen.append((decode(d.body).payload["i"], time.time()))
            await backend.settle([Settlement(d, "ack")])
    assert [i for i, _ in seen] == sorted(range(len(offsets)), key=lambda i: offsets[i])
    for i, at in seen:
        assert now + offsets[i] <= at <= now + offsets[i] + 0.5, (i, at - now, offsets[i])


async def test_priority_bands_highest_first_fifo_within(make: Callable[..., NatsBackend],
                                                        ) -> None:
    b = make(priority_bands=3)
    await b.open()
    assert b.features.priority_bands == 3
    prios = [0, 1, -4, 2, 9, 1, 0]
    await b.enqueue([make_envelope("t", {"i": i}, queue="p", priority=p)
                     for i, p in enumerate(prios)])
    order = []
    for _ in prios:
        (d,) = await b.fetch(["p"], 1, lease=10, wait=2)
        order.append(decode(d.body).payload["i"])
        await b.settle([Settlement(d, "ack")])
    assert order == [3, 4, 1, 5, 0, 2, 6], order  # bands 2, 1, 0; FIFO inside each


async def test_lease_expiry_redelivers_and_extend_keeps_it(make: Callable[..., NatsBackend],
                                                           ) -> None:
    a, b = make(), make()
    await a.open()
    await b.open()
    await a.enqueue([make_envelope("t", None, queue="lease")])
    (held,) = await a.fetch(["lease"], 1, lease=1.0, wait=5)
    for _ in range(6):  # 2.4 s, well past the 1 s lease, kept alive by in_progress
        await asyncio.sleep(0.4)
        await a.extend([held], 1.0)
        assert await b.fetch(["lease"], 1, lease=1.0, wait=0) == []
    (again,) = await b.fetch(["lease"], 1, lease=1.0, wait=3)  # a stopped extending
    assert decode(again.body).id == decode(held.body).id
    await a.settle([Settlement(held, "ack")])  # stale: ignored
    await b.settle([Settlement(again, "ack")])
    assert await b.fetch(["lease"], 1, lease=1.0, wait=0.5) == []


async def test_release_gives_it_back_at_once(backend: NatsBackend) -> None:
    await backend.enqueue([make_envelope("t", None, queue="rel")])
    (d,) = await backend.fetch(["rel"], 1, lease=10, wait=5)
    started = time.monotonic()
    await backend.settle([Settlement(d, "release")])
    (again,) = await backend.fetch(["rel"], 1, lease=10, wait=5)
    assert time.monotonic() - started < 1.0
    assert again.body == d.body
    await backend.settle([Settlement(again, "ack")])


async def test_dead_letters_list_replay_purge(backend: NatsBackend) -> None:
    envs = [make_envelope("t", {"i": i}, queue="qa" if i < 3 else "qb") for i in range(5)]
    await backend.enqueue(envs)
    got = await _fetch_all(backend, "qa", 3) + await _fetch_all(backend, "qb", 2)
    await backend.settle([Settlement(d, "dead", reason=f"bad {decode(d.body).payload['i']}",
                                     envelope=decode(d.body)) for d in got])
    letters = await backend.dead_letters()
    assert [d.reason for d in letters] == [f"bad {i}" for i in range(5)]
    assert [d.id for d in await backend.dead_letters("qa", limit=2, offset=1)] == \
        [envs[1].id, envs[2].id]
    stats = {s.queue: s for s in await backend.stats()}
    assert (stats["qa"].dead, stats["qb"].dead, stats["qa"].failed) == (3, 2, 3)
    assert await backend.replay_dead([envs[0].id]) == 1
    (d,) = await _fetch_all(backend, "qa", 1)
    replayed = decode(d.body)
    assert replayed.payload == {"i": 0} and replayed.id != envs[0].id and replayed.attempt == 0
    await backend.settle([Settlement(d, "ack")])
    assert await backend.purge_dead([envs[1].id]) == 1
    assert await backend.purge_dead(queue="qb") == 2
    assert [d.id for d in await backend.dead_letters()] == [envs[2].id]
    assert await backend.purge_dead() == 1 and await backend.dead_letters() == []


async def test_malformed_bytes_on_a_task_subject_are_dead_lettered(backend: NatsBackend) -> None:
    m, ran = Module("m"), []

    @m.task("m:ok")
    async def ok() -> None:
        ran.append(1)

    hive = Hive(backend)
    hive.include(m)
    await hive.open()
    await hive.enqueue("m:ok")
    await backend.js.publish(backend.names.task_subject("default", 0), b"\xc1 garbage")
    await run_until_idle(hive)
    (letter,) = await backend.dead_letters()
    assert "malformed message" in letter.reason and letter.body == b"\xc1 garbage"
    assert ran == [1]


async def test_stats_count_ready_delayed_in_flight(backend: NatsBackend) -> None:
    now = time.time()
    await backend.enqueue([make_envelope("t", None, queue="st") for _ in range(4)]
                          + [make_envelope("t", None, queue="st", eta=now + 60)])
    (d,) = await backend.fetch(["st"], 1, lease=10, wait=5)
    (stat,) = [s for s in await backend.stats() if s.queue == "st"]
    assert (stat.ready, stat.in_flight, stat.delayed) == (3, 1, 1), stat
    await backend.settle([Settlement(d, "ack")])
    (stat,) = [s for s in await backend.stats() if s.queue == "st"]
    assert (stat.ready, stat.in_flight, stat.processed) == (3, 0, 1), stat


async def test_odd_queue_names_round_trip(backend: NatsBackend) -> None:
    for queue in ("with space", "dots.in.it", "@group", "ünï"):
        await backend.enqueue([make_envelope("t", None, queue=queue)])
        (d,) = await backend.fetch([queue], 1, lease=10, wait=5)
        assert d.queue == queue
        await backend.settle([Settlement(d, "ack")])
    assert {"with space", "dots.in.it", "@group", "ünï"} <= {s.queue for s in
                                                              await backend.stats()}


async def test_acks_are_confirmed_or_the_settle_fails(backend: NatsBackend) -> None:
    """Acks of one settle go out together and the settle returns only when the server answered
    each; an ack nobody can take (its consumer is gone) fails the settle, not silently."""
    await backend.enqueue([make_envelope("t", {"i": i}, queue="ackq") for i in range(3)])
    got = await _fetch_all(backend, "ackq", 3)
    await backend.settle([Settlement(d, "ack") for d in got[:2]])
    (stat,) = [s for s in await backend.stats() if s.queue == "ackq"]
    assert (stat.ready, stat.in_flight, stat.processed) == (0, 1, 2), stat
    band = band_of(0, backend.settings.priority_bands)
    await backend.js.delete_consumer(backend.names.tasks, Names.task_consumer("ackq", band))
    with pytest.raises(BackendUnavailable):
        await backend.settle([Settlement(got[2], "ack")])
    assert not got[2].receipt.acked
