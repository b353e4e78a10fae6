"""Band consumers and the local buffer that turns AMQP pushes into workhive's ``fetch``.

Why it looks like this: RabbitMQ pushes; workhive pulls a batch sized to the worker's free
slots. Each (workhive queue, band) quorum queue gets one ``basic.consume`` whose prefetch
window bounds what the process holds; deliveries land in a per-band buffer, and ``fetch`` takes
from the highest band first. Quorum queues ignore message priorities and refuse global qos, so
this is the only way to get priority order out of them.

The buffer can invert priorities in one case: a higher band whose prefetch window was full has
just been acked, and its next message is still on the wire while a lower band's message is
already here. :class:`BandConsumer` therefore records an *expectation* (the broker will send
one more) with a short deadline, and :meth:`Consumers.take` hands out nothing below an
expecting band until the message arrives or the deadline passes. A consumer that starts on a
queue with a backlog (the declare said ``message_count > 0``) expects the same way, which
makes priority order hold for a backlog that exists before the worker starts, even at
concurrency 1.

A delivery belongs to the AMQP channel it came on. When RobustConnection replaces the channel
(reconnect), every delivery of the old one is *stale*: the broker has already requeued it, so
it is dropped from the buffer and settling it does nothing.

A paused queue's band consumers are *cancelled* (:meth:`Consumers.cancel`), not merely left
out of ``take``: what they buffered is requeued, and whatever the broker still sends them
before it confirms the cancel goes straight back. Held unacked instead, a pause longer than
RabbitMQ's ``consumer_timeout`` would make the broker close the channel, and every delivery on
it (other queues' running tasks too) would run again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator, Sequence, Set

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelInvalidStateError

from workhive.backend import Delivery

#: how long a band whose full window was just acked is waited for before lower bands go out
WINDOW_WAIT = 0.02
#: how long a new consumer on a queue with a backlog is waited for
STARTUP_WAIT = 0.25


class Receipt:
    """``Delivery.receipt``: the message, the channel it came on, and what was done to it
    (``published``: the retry/dead copy is confirmed, so a repeated settle must not publish
    again; ``done``: acked, nacked or found stale)."""

    __slots__ = ("channel", "consumer", "done", "message", "published", "tag")

    def __init__(self, consumer: BandConsumer, message: AbstractIncomingMessage,
                 channel: AbstractChannel) -> None:
        self.consumer = consumer
        self.message = message
        self.channel = channel
        self.tag: int = message.delivery_tag or 0
        self.published = False
        self.done = False

    @property
    def stale(self) -> bool:
        return self.channel.is_closed or self.channel is not self.consumer.channel

    def __repr__(self) -> str:
        return f"Receipt({self.consumer.physical!r}, tag={self.tag})"


class BandConsumer:
    """One ``basic.consume`` on one band queue: its buffer and what it holds unsettled."""

    __slots__ = ("band", "buffer", "cancelled", "channel", "expect_until", "owner", "physical",
                 "queue", "source", "tag", "unsettled")

    def __init__(self, owner: Consumers, queue: str, band: int, physical: str) -> None:
        self.owner = owner
        self.queue = queue
        self.band = band
        self.physical = physical
        self.buffer: deque[Receipt] = deque()
        self.unsettled: dict[int, Receipt] = {}  # delivery tag -> receipt (buffered or out)
        self.channel: AbstractChannel | None = None
        self.expect_until = 0.0
        self.source: AbstractQueue | None = None  # the queue it consumes, with ``tag``
        self.tag: str | None = None
        self.cancelled = False

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        """aio-pika's consumer callback: buffer the delivery and wake ``fetch``."""
        try:
            channel = message.channel
        except ChannelInvalidStateError:
            return  # its channel died while the frame was being handed over: redelivered
        if channel is not self.channel:
            self.reset()
            self.channel = channel
        owner = self.owner
        if channel is not owner.channel:
            owner.outstanding.clear()
            owner.channel = channel
        receipt = Receipt(self, message, channel)
        self.unsettled[receipt.tag] = receipt
        owner.outstanding[receipt.tag] = receipt
        if self.cancelled:  # sent before the broker saw the cancel: back to the queue
            await self.give_back(receipt)
            return
        self.buffer.append(receipt)
        self.expect_until = 0.0
        self.owner.arrived.set()

    def check(self) -> None:
        """Forget everything from a channel that has closed (the broker requeued it)."""
        if self.channel is not None and self.channel.is_closed:
            self.reset()

    def reset(self) -> None:
        self.buffer.clear()
        self.unsettled.clear()
        self.channel = None
        self.expect_until = 0.0

    async def cancel(self) -> None:
        """Stop consuming, then requeue every buffered delivery (the ones handed out still
        settle on their channel); deliveries that arrive later go back as they come."""
        self.cancelled = True
        try:
            if self.source is not None and self.tag is not None:
                await self.source.cancel(self.tag)
        finally:
            while self.buffer:
                await self.give_back(self.buffer.popleft())

    async def give_back(self, receipt: Receipt) -> None:
        """Requeue a delivery nobody was handed (a stale one is the broker's already)."""
        if not receipt.stale:
            try:
                await receipt.channel.basic_nack(receipt.tag, requeue=True, wait=False)
            except ChannelInvalidStateError:
                pass  # the channel died under us: the broker has it back
            else:
                self.settled(receipt)
                return
        receipt.done = True

    def settled(self, receipt: Receipt) -> None:
        """``receipt`` was acked or nacked: free its window slot. If the window was full, the
        broker is about to send the next message of this band; expect it."""
        receipt.done = True
        if receipt.channel is self.owner.channel:
            self.owner.outstanding.pop(receipt.tag, None)
        if self.unsettled.pop(receipt.tag, None) is not None:
            prefetch = self.owner.prefetch or 0
            if len(self.unsettled) + 1 >= prefetch:
                self.expect_until = time.monotonic() + WINDOW_WAIT


class Consumers:
    """All band consumers of one backend, keyed by (workhive queue, band)."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, int], BandConsumer] = {}
        self.arrived = asyncio.Event()
        self.prefetch: int | None = None  # fixed by the first fetch, for every consumer
        # every unsettled delivery of the consumer channel, in delivery-tag order
        self.channel: AbstractChannel | None = None
        self.outstanding: dict[int, Receipt] = {}

    async def cancel(self, queues: Set[str]) -> None:
        """Stop consuming ``queues`` (paused) and requeue what their consumers buffered; a
        later ``fetch`` of one of them consumes it afresh (see :meth:`missing`)."""
        for key, consumer in list(self.by_key.items()):
            if consumer.queue in queues:
                await consumer.cancel()  # a failure leaves it here, flagged: tried again
                del self.by_key[key]

    def missing(self, queues: Sequence[str],
                bands_of: dict[str, int]) -> list[tuple[str, int]]:
        return [(q, b) for q in queues for b in range(bands_of[q])
                if (q, b) not in self.by_key or self.by_key[(q, b)].cancelled]

    def ordered(self, queues: Sequence[str], bands_of: dict[str, int]) -> Iterator[BandConsumer]:
        """Queues in the order asked, highest band first within each."""
        for q in queues:
            for band in range(bands_of[q] - 1, -1, -1):
                consumer = self.by_key.get((q, band))
                if consumer is not None:
                    yield consumer

    def take(self, queues: Sequence[str], bands_of: dict[str, int],
             limit: int) -> tuple[list[Delivery], float]:
        """Up to ``limit`` buffered deliveries in priority order, and (when nothing could be
        handed out because a higher band expects a message) the monotonic time to wait to."""
        now = time.monotonic()
        out: list[Delivery] = []
        hold = 0.0
        for consumer in self.ordered(queues, bands_of):
            consumer.check()
            buffer = consumer.buffer
            if not buffer:
                if consumer.expect_until > now:
                    hold = max(hold, consumer.expect_until)
                continue
            if hold:
                break  # a higher band's next message is on its way: do not overtake it
            queue = consumer.queue
            while buffer and len(out) < limit:
                receipt = buffer.popleft()
                out.append(Delivery(queue, receipt.message.body, receipt))
            if len(out) >= limit:
                break
        return out, (hold if not out else 0.0)

    def in_flight(self) -> dict[str, int]:
        """Deliveries held unsettled (buffered or handed out) per workhive queue."""
        counts: dict[str, int] = {}
        for consumer in self.by_key.values():
            consumer.check()
            counts[consumer.queue] = counts.get(consumer.queue, 0) + len(consumer.unsettled)
        return counts

    async def ack(self, receipts: Sequence[Receipt]) -> None:
        """Ack ``receipts`` (live, all from the current channel), with one ``multiple`` ack
        for the longest run of them that starts at the channel's oldest unsettled delivery.

        ``multiple=True`` acks *every* tag up to the one given, so it is only used when all of
        those are in this batch; the rest are acked one by one. Each ack is a frame and a
        socket write of its own, so a worker draining in order saves most of them.
        """
        if not receipts:
            return
        channel = receipts[0].channel
        tags = {r.tag for r in receipts}
        run, top = 0, 0
        if channel is self.channel:
            for tag in self.outstanding:
                if tag not in tags:
                    break
                run, top = run + 1, tag
        try:
            if run >= 2:
                await channel.basic_ack(top, multiple=True, wait=run == len(receipts))
                rest = [r for r in receipts if r.tag > top]
            else:
                rest = list(receipts)
            last = len(rest) - 1
            for i, r in enumerate(rest):
                await r.channel.basic_ack(r.tag, wait=i == last)
        except ChannelInvalidStateError:
            for r in receipts:  # the channel died: the broker has them back
                r.done = True
            return
        for r in receipts:
            r.consumer.settled(r)
