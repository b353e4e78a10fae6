"""The ``rabbitmq`` backend: quorum queues per priority band, TTL-level delays, topic events.

Why it looks like this (details in ``docs/rabbitmq.md``):

* **Transport only.** RabbitMQ moves messages durably but has no key-value store, so unique
  keys, cron claims, rate-limit counters, heartbeats and dead-letter browsing come from a
  coordination store that :class:`workhive.backends.composite.Composite` wraps around this
  backend. Without one, dead letters are parked in the ``X.v1.dead`` queue.
* **Session leases.** A delivery is held by the consumer's channel until it is acked; a worker
  that dies (connection closed) gives its messages back at once, so ``extend`` does nothing.
  RabbitMQ's ``consumer_timeout`` (server-wide, 30 min by default) is the longest a delivery
  may stay unacked: :attr:`Features.max_hold`.
* **Priorities** are separate quorum queues per band (quorum queues have no
  ``x-max-priority``), drained highest band first by :mod:`.consumer`.
* **Delays** use binary TTL levels (:mod:`.topology`): never early, at most about 1 s late.
* **Retry / dead** publish the next message with a publisher confirm, then ack the delivery;
  a crash in between runs that attempt once more, never loses it.

This module holds that transport. The connection, the band consumers and the topology declared
so far belong to one :class:`~workhive.backends.rabbitmq.broker.Broker`; queue counts and
``wipe`` are a part of their own built on it (:mod:`~workhive.backends.rabbitmq.admin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence, Set
from typing import Any

from workhive._envelope import Envelope, encode
from workhive.backend import (
    Capability,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    band_of,
    event_queue,
    to_amqp,
)
from workhive.backends.rabbitmq import topology
from workhive.backends.rabbitmq.admin import RabbitMQAdmin
from workhive.backends.rabbitmq.broker import Broker
from workhive.backends.rabbitmq.connection import DRIVER_ERRORS, Outgoing
from workhive.backends.rabbitmq.consumer import STARTUP_WAIT, BandConsumer, Receipt
from workhive.backends.rabbitmq.settings import RabbitMQSettings
from workhive.errors import BackendError

#: without a capacity from the worker (:meth:`set_capacity`), each consumer's prefetch is this
#: many times the first fetch's ``limit`` (the worker fetches half its free slots at a time)
PREFETCH_FACTOR = 2
PREFETCH_CAP = 1000


class RabbitMQBackend:
    """Durable tasks and events on RabbitMQ (aio-pika RobustConnection). Build it with
    :meth:`from_url`; one instance serves any number of coroutines of one process.

    The transport (enqueue, fetch, settle, events) is here; the connection and declared
    topology are the :class:`Broker`'s, and ``stats`` and ``wipe`` hand the call to the
    admin part built on it."""

    name = "rabbitmq"

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.settings = settings
        self.features = Features(
            frozenset({Capability.QUEUE, Capability.DELAY, Capability.PRIORITY,
                       Capability.EVENTS}),
            lease="session",
            max_hold=settings.consumer_timeout,
            priority_bands=settings.priority_bands,
            delay_resolution=1.0,
        )
        broker = self._broker = Broker(settings)
        self.names = broker.names
        self._conn = broker.conn  # one Connection for the instance's life (reopened in place)
        self._admin = RabbitMQAdmin(broker)
        self._capacity: int | None = None  # the worker's concurrency, when it said

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RabbitMQBackend:
        """``amqp://user:password@host:5672/vhost?exchange=app`` plus options (see
        :class:`~workhive.backends.rabbitmq.settings.RabbitMQSettings`)."""
        return cls(RabbitMQSettings.from_url(url, **options))

    def __repr__(self) -> str:
        return (f"RabbitMQBackend({self.settings.redacted_url!r}, "
                f"exchange={self.settings.exchange!r})")

    def set_capacity(self, slots: int) -> None:
        """The worker's concurrency: every band consumer's prefetch window (set before the
        first fetch; RobustChannel restores one qos per channel, so it is fixed then)."""
        self._capacity = max(1, min(slots, 1000))

    async def open(self) -> None:
        """Connect and declare the exchanges (queues come on first use). Idempotent."""
        await self._broker.open()

    async def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues now."""
        await self._broker.close()

    # -- producing ------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Publish each envelope to its band queue (or into the delay levels), confirmed."""
        try:
            now = time.time()
            batch: list[Outgoing] = []
            for env in envelopes:
                await self._broker.ensure(env.queue)
                band = band_of(env.priority, self.names.bands_of(env.queue))
                delay = env.eta - now if env.eta is not None else 0.0
                physical = self.names.physical(env.queue, band)
                batch.append(await self._broker.outgoing(physical, encode(env), env.id, delay))
            await self._conn.publish(batch)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, "enqueue") from None
        return [EnqueueResult(env.id) for env in envelopes]

    async def bind(self, pattern: str, group: str) -> None:
        """Declare the group's quorum queue and bind it to the events exchange."""
        queue = event_queue(group)
        try:
            await self._broker.ensure(queue)
            channel = await self._conn.channel()
            await channel.queue_bind(self.names.physical(queue, 0), self.names.events,
                                     routing_key=to_amqp(pattern))
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, f"bind {pattern!r} for {group!r}") from None

    async def publish(self, envelope: Envelope) -> int | None:
        """Publish the event once; the topic exchange copies it to every bound group."""
        if not envelope.name or len(envelope.name.encode()) > 255:
            raise BackendError(f"rabbitmq event names must be 1..255 bytes: {envelope.name!r}")
        try:
            await self._broker.ensure_exchanges()
            await self._conn.publish(
                [Outgoing(self.names.events, envelope.name, encode(envelope), envelope.id)],
                mandatory=False)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, "publish") from None
        return None

    # -- consuming ------------------------------------------------------------------------

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Up to ``limit`` buffered deliveries, highest band first; waits up to ``wait`` s.

        ``lease`` is ignored: leases last as long as the connection (session leases).
        """
        if limit <= 0 or not queues:
            return []
        bands = {q: self.names.bands_of(q) for q in queues}
        missing = self._broker.consumers.missing(queues, bands)
        if missing:
            try:
                await self._start(missing, limit)
            except DRIVER_ERRORS as exc:
                raise self.settings.error(exc, "consume") from None
        consumers = self._broker.consumers
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            consumers.arrived.clear()
            out, hold = consumers.take(queues, bands, limit)
            if out:
                return out
            remaining = max(deadline, hold) - time.monotonic()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await consumers.arrived.wait()

    async def _start(self, missing: list[tuple[str, int]], limit: int) -> None:
        """Declare and consume the band queues not consumed yet; the first call fixes the
        prefetch of every consumer (RobustChannel restores one qos per channel)."""
        for queue in dict.fromkeys(q for q, _ in missing):
            await self._broker.ensure(queue)
        channel = self._conn.consumer
        if channel is None:
            raise BackendError("rabbitmq backend is closed")
        if self._broker.consumers.prefetch is None:
            # the worker's concurrency, and at least two per consumer: a band then holds its
            # next message while one runs, which keeps band order without waiting on the broker
            prefetch = max(self._capacity or 1, min(PREFETCH_CAP, PREFETCH_FACTOR * limit))
            await channel.set_qos(prefetch_count=prefetch)
            self._broker.consumers.prefetch = prefetch
        for queue, band in missing:
            physical = self.names.physical(queue, band)
            declared = await channel.declare_queue(physical, durable=True,
                                                   arguments=topology.QUORUM)
            consumer = BandConsumer(self._broker.consumers, queue, band, physical)
            if declared.declaration_result.message_count:
                consumer.expect_until = time.monotonic() + STARTUP_WAIT
            consumer.tag = await declared.consume(consumer)
            consumer.source = declared
            self._broker.consumers.by_key[(queue, band)] = consumer  # only once it really consumes

    async def stop_consuming(self, queues: Set[str]) -> None:
        """Cancel the band consumers of ``queues`` (paused: the worker's
        :class:`~workhive.pauses.PauseWatch` says which) and requeue what they had buffered,
        so a paused queue's messages wait in RabbitMQ, none held unacked for the pause."""
        try:
            await self._broker.consumers.cancel(queues)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, "stop consuming paused queues") from None

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Publish retries and dead letters (confirmed), then ack / nack, in order.

        A delivery from a channel that has since been replaced is skipped: the broker requeued
        it when the old channel died. A settlement repeated after a failed call (the worker
        retries whole batches) neither publishes nor acks twice.
        """
        live: list[tuple[Settlement, Receipt]] = []
        seen: set[int] = set()
        for s in settlements:
            r = s.delivery.receipt
            if not isinstance(r, Receipt) or r.done or id(r) in seen:
                continue
            seen.add(id(r))
            if r.stale:
                r.done = True
                continue
            live.append((s, r))
        error: BackendError | None = None
        copies: list[tuple[Receipt, Outgoing]] = []
        try:
            for s, r in live:
                if s.action in ("retry", "dead") and not r.published:
                    copies.append((r, await self._copy(s, r)))
        except DRIVER_ERRORS as exc:
            error, copies = self.settings.error(exc, "settle"), []
        if copies:
            try:
                await self._conn.publish([c for _, c in copies])
                for r, _ in copies:
                    r.published = True
            except BackendError as exc:
                error = exc  # nothing of this batch is acked that was not published
        acks: list[Receipt] = []
        for s, r in live:
            if (s.action in ("retry", "dead") and not r.published) or r.stale:
                continue
            if s.action != "release":
                acks.append(r)
                continue
            try:
                await r.channel.basic_nack(r.tag, requeue=True, wait=False)
            except DRIVER_ERRORS:
                r.done = True  # the channel died under us: the broker has it back
                continue
            r.consumer.settled(r)
        await self._broker.consumers.ack(acks)
        if error is not None:
            raise error

    async def _copy(self, s: Settlement, r: Receipt) -> Outgoing:
        """The message a retry / dead settlement publishes before the ack."""
        body = s.body or s.delivery.body
        mid = f"{s.envelope.id if s.envelope else r.message.message_id}:{s.action}"
        if s.action == "retry":
            delay = s.eta - time.time()
            return await self._broker.outgoing(r.consumer.physical, body, mid, delay)
        await self._broker.ensure_dead()
        headers = {"reason": s.reason, "queue": s.delivery.queue,
                   "failed_at": f"{time.time():.3f}"}  # str: pamqp sends floats as 32-bit
        if s.envelope is not None:
            headers["id"] = s.envelope.id
        return Outgoing("", self.names.dead, body, mid, headers)

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Nothing to do: a delivery is held for as long as the connection lives."""
        return None

    # -- admin: each method hands the call to :class:`RabbitMQAdmin` -----------------------

    async def stats(self) -> list[QueueStats]:
        """Ready, in-flight and delayed counts (see :meth:`RabbitMQAdmin.stats`)."""
        return await self._admin.stats()

    async def wipe(self, queues: Sequence[str] = ()) -> None:
        """Delete this prefix's topology and queues (see :meth:`RabbitMQAdmin.wipe`)."""
        await self._admin.wipe(queues)
