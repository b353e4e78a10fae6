"""The ``kafka`` backend: band topics, delay-tier topics, consumer groups per queue.

Why it looks like this (details in ``docs/kafka.md``):

* **Transport only.** Kafka moves messages durably but has no key-value store, so unique keys,
  cron claims, rate-limit counters, heartbeats and dead-letter browsing come from a coordination
  store that :class:`workhive.backends.composite.Composite` wraps around this backend. Without
  one, dead letters are produced to ``P.dead`` with the reason in headers.
* **Session leases.** A delivery is held by its consumer-group member; a worker that dies loses
  its partitions after ``session_timeout`` and the next owner starts at the committed offset.
  The poll loop keeps polling with paused partitions, so no handler duration trips
  ``max_poll_interval`` (hence no ``max_hold``).
* **At-least-once with concurrency inside a partition**: :mod:`.offsets` commits only below the
  lowest unfinished offset; :mod:`.consumer` commits off the settle path, coalesced.
* **Settling** (:mod:`.settling`): retry / dead produce the next record (acknowledged by the
  broker), then finish the old one; **release** puts the record back in the local buffer.
* **Ordering keys**: the record key is the ordering key (one key, one partition) and the
  ``wh-key`` header marks it, so the consumer runs one record of a key at a time and retries
  it in place; unkeyed records are keyed by message id and spread over the partitions.
* This module is the contract's surface (lifecycle, produce, fetch); settling and ``stats``
  (:mod:`.stats`) live beside it so each stays readable on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from workhive._envelope import Envelope, encode
from workhive.backend import (
    Capability,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    band_of,
    event_group,
    event_queue,
)
from workhive.backends.kafka import settling, topics
from workhive.backends.kafka.consumer import HOLD, QueueConsumer
from workhive.backends.kafka.forwarder import Forwarder, delayed_headers, route
from workhive.backends.kafka.names import H_KEY, H_NAME, H_TS, Names
from workhive.backends.kafka.probe import Probe
from workhive.backends.kafka.settings import DRIVER_ERRORS, KafkaSettings
from workhive.backends.kafka.stats import queue_stats

logger = logging.getLogger("workhive.backends.kafka")

#: a queue consumer buffers this many times the first fetch's ``limit`` (within the bounds):
#: enough that the poll loop refills it while the worker drains it (see :mod:`.consumer`)
BUFFER_FACTOR = 20
BUFFER_MIN, BUFFER_MAX = 500, 5000


class KafkaBackend:
    """Durable tasks and events on Kafka / Redpanda (aiokafka). Build it with
    :meth:`from_url`; one instance serves any number of coroutines of one process."""

    name = "kafka"

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.features = Features(
            frozenset({Capability.QUEUE, Capability.DELAY, Capability.PRIORITY,
                       Capability.EVENTS}),
            lease="session", max_hold=None, priority_bands=settings.priority_bands,
            delay_resolution=1.0, ordered_keys=True)
        self.names = Names(settings.topic, settings.group, settings.priority_bands)
        self._producer: AIOKafkaProducer | None = None
        self._topics = topics.Topics(settings)
        self._probe = Probe(settings)
        self._lock = asyncio.Lock()
        self._consumers: dict[str, QueueConsumer] = {}
        self._forwarder: Forwarder | None = None
        self._patterns: dict[str, set[str]] = {}  # subscriber group -> patterns bound here
        self._known: set[str] = set()  # workhive queues this instance used (for stats)
        self._arrived = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaBackend:
        """``kafka://user:password@host:9092,host2:9092?topic=app`` plus options (see
        :class:`~workhive.backends.kafka.settings.KafkaSettings`)."""
        return cls(KafkaSettings.from_url(url, **options))

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.features.capabilities

    def __repr__(self) -> str:
        return (f"KafkaBackend({self.settings.redacted_url!r}, topic={self.settings.topic!r}, "
                f"group={self.settings.group!r})")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the producer and create the events, dead and delay-tier topics."""
        async with self._lock:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(acks="all", enable_idempotence=False, linger_ms=2,
                                        request_timeout_ms=15_000, **self.settings.client_kwargs())
            try:
                await producer.start()
                await self._topics.ensure(self.names.base_topics(), partitions=1,
                                          wide=[self.names.events])
            except DRIVER_ERRORS as exc:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await producer.stop()
                await self._topics.close()
                raise self.settings.error(exc, "connect") from None
            self._producer = producer

    async def close(self) -> None:
        """Commit finished offsets and leave every group: unfinished records go to the next
        member from the committed offset."""
        async with self._lock:
            consumers, self._consumers = list(self._consumers.values()), {}
            forwarder, self._forwarder = self._forwarder, None
            producer, self._producer = self._producer, None
            for consumer in consumers:
                await consumer.stop()
            if forwarder is not None:
                await forwarder.stop()
            with contextlib.suppress(*DRIVER_ERRORS):
                await self._probe.close()
            with contextlib.suppress(*DRIVER_ERRORS):
                if producer is not None:
                    await producer.stop()
            await self._topics.close()

    async def _ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            await self.open()
        assert self._producer is not None
        return self._producer

    async def _ensure(self, queue: str) -> None:
        self._known.add(queue)
        group = event_group(queue)
        wanted = [self.names.group_topic(group)] if group else self.names.topics_of(queue)
        await self._topics.ensure(wanted, partitions=self.settings.partitions)

    # -- producing ------------------------------------------------------------------------

    async def _send(self, topic: str, body: bytes, key: bytes | None, headers: list[Any],
                    delay: float) -> Any:
        """Queue one record (into the delay tiers when ``delay > 0``); the ack future."""
        producer = await self._ready()
        headers = [*headers, (H_TS, str(time.time_ns()).encode())]
        if delay > 0:
            now = time.time()
            tier, _ = route(self.names, now + delay, topic, now)
            return await producer.send(tier, body, key=key,
                                       headers=delayed_headers(headers, now + delay, topic))
        return await producer.send(topic, body, key=key, headers=headers)

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Produce each envelope to its band topic (or a delay tier); wait for every ack."""
        try:
            await self._ready()
            now = time.time()
            futures = []
            for env in envelopes:
                if env.queue not in self._known:
                    await self._ensure(env.queue)
                band = band_of(env.priority, self.names.bands_of(env.queue))
                topic = (self.names.group_topic(env.queue[1:]) if env.queue.startswith("@")
                         else self.names.band_topic(env.queue, band))
                delay = env.eta - now if env.eta is not None else 0.0
                if env.ordering_key is None:
                    key, headers = env.id.encode(), []
                else:  # one key, one partition (while the partition count stays)
                    key = env.ordering_key.encode()
                    headers = [(H_KEY, key)]
                futures.append(await self._send(topic, encode(env), key, headers, delay))
            await asyncio.gather(*futures)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, "enqueue") from None
        return [EnqueueResult(env.id) for env in envelopes]

    async def bind(self, pattern: str, group: str) -> None:
        """Remember the pattern for this process's consumer of ``@group``; the first bind of a
        group makes its consumer group start at the current end of the events topic, so it
        receives every event published from now on, whether or not a worker is running."""
        queue = event_queue(group)
        self._patterns.setdefault(group, set()).add(pattern)
        try:
            await self._ready()
            await self._ensure(queue)
            await self._probe.start_at_end(self.names.consumer_group(queue),
                                           [self.names.events])
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, f"bind {pattern!r} for {group!r}") from None

    async def publish(self, envelope: Envelope) -> int | None:
        """Produce the event once to the events topic; each group's consumer filters it."""
        try:
            future = await self._send(self.names.events, encode(envelope),
                                      envelope.id.encode(), [(H_NAME, envelope.name.encode())],
                                      0.0)
            await future
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, "publish") from None
        return None

    # -- consuming ------------------------------------------------------------------------

    async def _start(self, queues: Sequence[str], limit: int) -> None:
        await self._ready()
        capacity = max(BUFFER_MIN, min(BUFFER_MAX, BUFFER_FACTOR * limit))
        for queue in queues:
            if queue in self._consumers:
                continue
            await self._ensure(queue)
            consumer = QueueConsumer(self.settings, self.names, queue, capacity,
                                     self._patterns_of(queue), self._arrived)
            consumer.start()
            self._consumers[queue] = consumer
        if self._forwarder is None:
            assert self._producer is not None
            forwarder = Forwarder(self.settings, self.names, self._producer)
            forwarder.start()
            self._forwarder = forwarder

    def _patterns_of(self, queue: str) -> Callable[[], set[str] | None]:
        """What a queue's consumer filters events by: the patterns bound in this process
        (None: a task queue, or a group never bound here, which then gets every event)."""
        group = event_group(queue)
        return lambda: self._patterns.get(group) if group else None

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Up to ``limit`` buffered deliveries, highest band first; waits up to ``wait`` s.

        ``lease`` is ignored: a delivery is held as long as this member owns its partition.
        """
        if limit <= 0 or not queues:
            return []
        start = time.monotonic()
        for queue in queues:
            broken = self._consumers.get(queue)
            if broken is not None and broken.broken:
                del self._consumers[queue]
                await broken.stop()
                if broken.error is not None:  # else it left the group while nobody fetched
                    raise self.settings.error(broken.error, "consume")
        if any(q not in self._consumers for q in queues):
            try:
                await self._start(queues, limit)
            except DRIVER_ERRORS as exc:
                raise self.settings.error(exc, "consume") from None
        deadline, hold_until = start + max(wait, 0.0), start + HOLD
        while True:
            self._arrived.clear()
            out: list[Delivery] = []
            holding = False
            for queue in queues:
                got, hold = self._consumers[queue].take(limit - len(out), hold_until)
                out += got
                holding = holding or hold
                if len(out) >= limit:
                    break
            if out:
                return out
            failing = [c.error for c in self._consumers.values() if c.error is not None]
            if failing and not holding:
                raise self.settings.error(failing[0], "fetch")
            now = time.monotonic()
            fresh = max((c.fresh_until for c in self._consumers.values()), default=0.0)
            remaining = (max(deadline, hold_until, fresh)
                         if holding else deadline) - now
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.02) if holding else remaining):
                    await self._arrived.wait()

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Produce retries and dead letters (acknowledged), then finish / release, in order
        (see :mod:`.settling`). Commits happen in each consumer's committer task."""
        await settling.settle(settlements, self.names, self._send_copy, self.settings)

    async def _send_copy(self, copy: settling.Copy) -> Any:
        return await self._send(copy.topic, copy.body, copy.key, copy.headers, copy.delay)

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Nothing to do: a delivery is held for as long as this member owns its partition."""
        return None

    # -- inspection -----------------------------------------------------------------------

    async def stats(self) -> list[QueueStats]:
        """Per workhive queue used by this instance (see :func:`.stats.queue_stats`)."""
        try:
            await self._ready()
            return await queue_stats(self._probe, self.names, sorted(self._known),
                                     self._consumers)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, "stats") from None
