"""The rabbitmq backend against a real server: queueing, delays, priorities, settlements."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aio_pika
import pytest

from workhive._envelope import Envelope, decode, encode, make_envelope
from workhive.backend import Delivery, Settlement
from workhive.backends.rabbitmq import RabbitMQBackend
from workhive.backends.rabbitmq.topology import MAX_DELAY
from workhive.errors import BackendError

pytestmark = [pytest.mark.rabbitmq, pytest.mark.integration]


async def fetch_one(backend: RabbitMQBackend, queue: str = "default",
                    wait: float = 5.0) -> Delivery:
    got = await backend.fetch([queue], 1, lease=30, wait=wait)
    assert len(got) == 1, f"nothing fetched from {queue!r} within {wait}s"
    return got[0]


async def test_enqueue_fetch_ack(backend: RabbitMQBackend,
                                 make: Callable[..., RabbitMQBackend]) -> None:
    envs = [make_envelope("t", {"i": i}) for i in range(3)]
    results = await backend.enqueue(envs)
    assert [r.id for r in results] == [e.id for e in envs]
    assert not any(r.duplicate for r in results)
    got = await backend.fetch(["default"], 10, lease=30, wait=2)
    assert [decode(d.body).id for d in got] == [e.id for e in envs]  # FIFO in a band
    assert {d.queue for d in got} == {"default"}
    (stat,) = await backend.stats()
    assert (stat.queue, stat.ready, stat.in_flight, stat.delayed) == ("default", 0, 3, 0)
    await backend.settle([Settlement(d, "ack") for d in got])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.in_flight) == (0, 0)
    other = make()  # acked means gone for everyone
    assert await other.fetch(["default"], 10, lease=30, wait=0.3) == []


async def test_other_queues_are_separate(backend: RabbitMQBackend) -> None:
    await backend.enqueue([make_envelope("a", None, queue="emails"),
                           make_envelope("b", None)])
    got = await backend.fetch(["emails"], 10, lease=30, wait=2)
    assert [(d.queue, decode(d.body).name) for d in got] == [("emails", "a")]
    got = await backend.fetch(["default"], 10, lease=30, wait=2)
    assert [(d.queue, decode(d.body).name) for d in got] == [("default", "b")]


async def test_retry_publishes_the_new_body_then_acks(backend: RabbitMQBackend) -> None:
    env = make_envelope("t", {"n": 1})
    await backend.enqueue([env])
    first = await fetch_one(backend)
    nxt = Envelope(id=env.id, name="t", payload={"n": 2}, attempt=1)
    due = time.time() + 1.0
    await backend.settle([Settlement(first, "retry", body=encode(nxt), eta=due)])
    assert await backend.fetch(["default"], 10, lease=30, wait=0.5) == []  # not early
    (stat,) = await backend.stats()
    assert stat.delayed == 1 and stat.in_flight == 0  # the old delivery was acked
    second = await fetch_one(backend, wait=3)
    arrived = time.time()
    assert arrived >= due
    assert arrived - due < 1.5
    again = decode(second.body)
    assert (again.attempt, again.payload) == (1, {"n": 2})
    await backend.settle([Settlement(second, "ack")])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.delayed, stat.in_flight) == (0, 0, 0)


async def test_retry_without_delay_goes_straight_back(backend: RabbitMQBackend) -> None:
    await backend.enqueue([make_envelope("t", None)])
    first = await fetch_one(backend)
    await backend.settle([Settlement(first, "retry", body=first.body, eta=0.0)])
    second = await fetch_one(backend, wait=1)
    assert decode(second.body).id == decode(first.body).id


async def test_delays_arrive_in_due_order_never_early(backend: RabbitMQBackend) -> None:
    now = time.time()
    delays = [3.0, 1.0, 2.0, 0.0]
    envs = [make_envelope("t", {"d": d}, eta=now + d if d else None) for d in delays]
    await backend.enqueue(envs)
    (stat,) = await backend.stats()
    assert stat.delayed == 3
    seen: list[tuple[float, float]] = []
    while len(seen) < 4:
        d = await fetch_one(backend, wait=6)
        env = decode(d.body)
        seen.append((env.payload["d"], time.time() - now))
        await backend.settle([Settlement(d, "ack")])
    assert [d for d, _ in seen] == [0.0, 1.0, 2.0, 3.0]
    for delay, at in seen:
        assert at >= delay, f"{delay}s delay arrived early at {at:.3f}s"
        assert at - delay < 1.5, f"{delay}s delay arrived {at - delay:.3f}s late"


async def test_delay_longer_than_the_levels_is_refused(backend: RabbitMQBackend) -> None:
    env = make_envelope("t", None, eta=time.time() + MAX_DELAY + 10)
    with pytest.raises(BackendError, match="delays are limited"):
        await backend.enqueue([env])


async def test_priority_bands_higher_first_fifo_within(backend: RabbitMQBackend) -> None:
    prios = [1, 5, 3, 9, 0]
    await backend.enqueue([make_envelope("t", {"p": p}, priority=p) for p in prios])
    order = []
    for _ in prios:  # concurrency 1: one at a time, acked before the next
        d = await fetch_one(backend)
        order.append(decode(d.body).priority)
        await backend.settle([Settlement(d, "ack")])
    assert order == [5, 3, 9, 1, 0]  # 3 bands: 5, 3, 9 share the top band


async def test_priority_order_in_one_batch(make: Callable[..., RabbitMQBackend]) -> None:
    producer = make()
    await producer.enqueue([make_envelope("t", None, priority=p) for p in [0, 2, 1, 0, 2]])
    consumer = make()
    got = await consumer.fetch(["default"], 10, lease=30, wait=2)
    while len(got) < 5:
        got += await consumer.fetch(["default"], 10, lease=30, wait=2)
    assert [decode(d.body).priority for d in got] == [2, 2, 1, 0, 0]


async def test_release_comes_back(backend: RabbitMQBackend) -> None:
    env = make_envelope("t", None)
    await backend.enqueue([env])
    first = await fetch_one(backend)
    await backend.settle([Settlement(first, "release")])
    second = await fetch_one(backend, wait=2)
    assert second.body == first.body
    await backend.settle([Settlement(second, "ack")])


async def test_dead_parks_the_message_with_its_reason(backend: RabbitMQBackend,
                                                      url: str) -> None:
    env = make_envelope("t", {"x": 1})
    await backend.enqueue([env])
    d = await fetch_one(backend)
    await backend.settle([Settlement(d, "dead", reason="boom: bad input", envelope=env)])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.in_flight) == (0, 0)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(backend.names.dead, passive=True)
        parked = await queue.get(no_ack=True, timeout=5)
    assert parked.body == d.body
    headers = parked.headers
    assert headers["reason"] == "boom: bad input"
    assert headers["queue"] == "default"
    assert headers["id"] == env.id
    failed_at = float(str(headers["failed_at"]))
    assert abs(failed_at - time.time()) < 30


async def test_settling_twice_is_harmless(backend: RabbitMQBackend) -> None:
    """The worker retries a whole batch after a failure: nothing is acked or published twice
    (a double ack would be a channel error that requeues everything held)."""
    await backend.enqueue([make_envelope("t", {"i": i}) for i in range(3)])
    got = await backend.fetch(["default"], 3, lease=30, wait=2)
    while len(got) < 3:
        got += await backend.fetch(["default"], 3, lease=30, wait=2)
    batch = [Settlement(got[0], "ack"), Settlement(got[1], "retry", body=got[1].body),
             Settlement(got[2], "release")]
    await backend.settle(batch)
    await backend.settle(batch)
    back = await backend.fetch(["default"], 10, lease=30, wait=2)
    while len(back) < 2:
        more = await backend.fetch(["default"], 10, lease=30, wait=2)
        assert more, "retry / release did not come back"
        back += more
    assert sorted(d.body for d in back) == sorted([got[1].body, got[2].body])
    await backend.settle([Settlement(d, "ack") for d in back])
    assert await backend.fetch(["default"], 10, lease=30, wait=0.5) == []


async def test_foreign_bytes_come_out_as_a_delivery(backend: RabbitMQBackend,
                                                    url: str) -> None:
    await backend.enqueue([make_envelope("t", None)])  # declares the queues
    d = await fetch_one(backend)
    await backend.settle([Settlement(d, "ack")])
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"\xffnot an envelope"),
                                               routing_key=backend.names.physical("default", 0))
    d = await fetch_one(backend)
    assert (d.queue, d.body) == ("default", b"\xffnot an envelope")
    await backend.settle([Settlement(d, "dead", reason="malformed")])


async def test_events_fan_out_by_pattern(backend: RabbitMQBackend) -> None:
    await backend.bind("users.*", "mailer")
    await backend.bind("users.#", "audit")
    for name in ["users.created", "users.created.eu", "orders.placed"]:
        assert await backend.publish(make_envelope(name, {"n": name}, kind="event")) is None
    got: dict[str, list[str]] = {}
    for queue in ["@mailer", "@audit"]:
        deliveries = await backend.fetch([queue], 10, lease=30, wait=2)
        await asyncio.sleep(0.2)  # anything else would have arrived by now
        deliveries += await backend.fetch([queue], 10, lease=30, wait=0)
        got[queue] = sorted(decode(d.body).name for d in deliveries)
        assert {d.queue for d in deliveries} == {queue}
        await backend.settle([Settlement(d, "ack") for d in deliveries])
    assert got == {"@mailer": ["users.created"],
                   "@audit": ["users.created", "users.created.eu"]}


async def test_stats_counts_delayed_for_until_idle(backend: RabbitMQBackend) -> None:
    """A delayed message is counted until it is ready, including while it hops levels."""
    now = time.time()
    await backend.enqueue([make_envelope("t", None, eta=now + 2)])
    idle_seen = False
    while time.time() < now + 4:
        (stat,) = await backend.stats()
        if not (stat.ready or stat.delayed or stat.in_flight):
            idle_seen = True
            break
        await asyncio.sleep(0.05)
    assert not idle_seen, "stats looked idle while a delayed message was in transit"


async def test_delay_levels_are_declared_on_demand_and_counted_by_others(
    make: Callable[..., RabbitMQBackend], url: str,
) -> None:
    """Each quorum queue costs the broker file handles, so only the levels a delay needs
    exist; a process that never declared them still counts what they hold."""
    producer = make()
    await producer.enqueue([make_envelope("t", None, eta=time.time() + 3)])  # 3 s: levels 0, 1
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for level in (0, 1):
            await channel.declare_queue(producer.names.levels[level], passive=True)
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await channel.declare_queue(producer.names.levels[2], passive=True)
    watcher = make()
    await watcher.fetch(["default"], 1, lease=30, wait=0)  # declares the queue, not the levels
    (stat,) = await watcher.stats()
    assert stat.delayed == 1
    (stat,) = await watcher.stats()  # the probe channel closed cleanly; ask again
    assert stat.delayed == 1


async def test_a_fresh_process_counts_the_default_queue(
    make: Callable[..., RabbitMQBackend],
) -> None:
    """``workhive status`` runs in a process that declared nothing; AMQP cannot list queues,
    so ``default`` is probed (and absent until someone declares it)."""
    assert await make().stats() == []
    await make().enqueue([make_envelope("t", i) for i in range(2)])
    (stat,) = await make().stats()
    assert (stat.queue, stat.ready) == ("default", 2)


async def test_wipe_deletes_the_topology(make: Callable[..., RabbitMQBackend],
                                         url: str) -> None:
    backend = make()
    await backend.enqueue([make_envelope("t", None, eta=time.time() + 5)])
    await backend.wipe()
    connection = await aio_pika.connect(url)
    async with connection:
        for name in (backend.names.physical("default", 0), backend.names.levels[0]):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelClosed):
                await channel.declare_queue(name, passive=True)
    await backend.enqueue([make_envelope("t", None)])  # usable again: redeclares on demand
    assert await backend.fetch(["default"], 1, lease=30, wait=2)
