"""State and lifecycle shared by the ``rabbitmq`` backend's roles: connect, declare on demand.

Why a base class: the producer side (:mod:`.backend`), the consumer side and the inspection side
(:mod:`.admin`) all need the same lazily declared topology. It is declared on first use and
remembered per instance, because each quorum queue costs the broker about three file handles
even when empty (about 300 quorum queues exhaust a node started with ``ulimit -n 1024``).
"""

from __future__ import annotations

import asyncio

from workhive.backend import Capability, Features
from workhive.backends.rabbitmq import topology
from workhive.backends.rabbitmq.connection import DRIVER_ERRORS, Connection, Outgoing
from workhive.backends.rabbitmq.consumer import Consumers
from workhive.backends.rabbitmq.settings import RabbitMQSettings


class RabbitMQBase:
    """Settings, features, the connection and what has been declared so far."""

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
        self.names = topology.Names(settings.exchange, settings.queue, settings.priority_bands)
        self._conn = Connection(settings)
        self._lock = asyncio.Lock()
        self._declared: set[str] = set()  # workhive queues whose band queues exist
        self._levels = 0  # delay levels 0 .. n-1 are known to exist
        self._dead = False  # the dead queue is known to exist
        self._exchanges = False  # the deliver and events exchanges are known to exist
        self._consumers = Consumers()
        self._capacity: int | None = None  # the worker's concurrency, when it said

    def set_capacity(self, slots: int) -> None:
        """The worker's concurrency: every band consumer's prefetch window (set before the
        first fetch; RobustChannel restores one qos per channel, so it is fixed then)."""
        self._capacity = max(1, min(slots, 1000))

    def __repr__(self) -> str:
        return (f"RabbitMQBackend({self.settings.redacted_url!r}, "
                f"exchange={self.settings.exchange!r})")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and declare the exchanges (queues come on first use). Idempotent."""
        async with self._lock:
            if self._conn.is_open:
                return
            await self._conn.open()
            try:
                await self._declare_exchanges()
            except DRIVER_ERRORS as exc:
                await self._conn.close()
                raise self.settings.error(exc, "declare topology") from None

    async def _declare_exchanges(self) -> None:
        await topology.declare_exchanges(await self._conn.channel(), self.names)
        self._exchanges = True

    async def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues now."""
        async with self._lock:
            await self._conn.close()
            self._consumers = Consumers()
            self._declared.clear()
            self._levels, self._dead, self._exchanges = 0, False, False

    async def _ensure(self, queue: str) -> None:
        """Open if needed, and declare every band queue of ``queue`` on first use."""
        if not self._conn.is_open:
            await self.open()
        if not self._exchanges:
            await self._declare_exchanges()
        if queue in self._declared:
            return
        channel = await self._conn.channel()
        for band in range(self.names.bands_of(queue)):
            await topology.declare_queue(channel, self.names, self.names.physical(queue, band))
        self._declared.add(queue)

    async def _outgoing(self, physical: str, body: bytes, message_id: str,
                        delay: float) -> Outgoing:
        """To ``physical`` now, or through the delay levels (declared up to the entry level
        first: a message must never reach a level that does not exist yet)."""
        if delay <= 0:
            return Outgoing("", physical, body, message_id)
        seconds = topology.delay_seconds(delay)
        needed = topology.entry_level(seconds) + 1
        if needed > self._levels:
            await topology.declare_levels(await self._conn.channel(), self.names, self._levels,
                                          needed)
            self._levels = needed
        exchange, key = topology.delay_route(self.names, seconds, physical)
        return Outgoing(exchange, key, body, message_id)
