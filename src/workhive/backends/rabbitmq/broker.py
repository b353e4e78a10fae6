"""The connection to one RabbitMQ broker and the topology declared on it so far.

Why one object: the transport (:mod:`.backend`) and the inspection (:mod:`.admin`) need the
same connection, the same band consumers and the same lazily declared topology, and each part
is built on this object alone. The topology is declared on first use and remembered per
instance, because each quorum queue costs the broker about three file handles even when empty
(about 300 quorum queues exhaust a node started with ``ulimit -n 1024``).
"""

from __future__ import annotations

import asyncio

from workhive.backends.rabbitmq import topology
from workhive.backends.rabbitmq.connection import DRIVER_ERRORS, Connection, Outgoing
from workhive.backends.rabbitmq.consumer import Consumers
from workhive.backends.rabbitmq.settings import RabbitMQSettings


class Broker:
    """The connection, the band consumers, and what has been declared so far.

    ``declared`` holds the workhive queues whose band queues exist and ``levels`` the number
    of delay levels known to exist (levels ``0 .. levels-1``). All of it is forgotten when the
    connection closes: a wipe may have deleted it meanwhile.
    """

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.settings = settings
        self.names = topology.Names(settings.exchange, settings.queue, settings.priority_bands)
        self.conn = Connection(settings)
        self.consumers = Consumers()
        self.declared: set[str] = set()
        self.levels = 0
        self._dead = False  # the dead queue is known to exist
        self._exchanges = False  # the deliver and events exchanges are known to exist
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect and declare the exchanges (queues come on first use). Idempotent."""
        async with self._lock:
            if self.conn.is_open:
                return
            await self.conn.open()
            try:
                await self._declare_exchanges()
            except DRIVER_ERRORS as exc:
                await self.conn.close()
                raise self.settings.error(exc, "declare topology") from None

    async def connect(self) -> None:
        """:meth:`open` unless the connection is open already (no lock on that path)."""
        if not self.conn.is_open:
            await self.open()

    async def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues now."""
        async with self._lock:
            await self.conn.close()
            self.consumers = Consumers()
            self.forget()

    def forget(self) -> None:
        """Forget what was declared, so the next use declares it again."""
        self.declared.clear()
        self.levels, self._dead, self._exchanges = 0, False, False

    async def ensure_exchanges(self) -> None:
        """Open if needed, and declare the exchanges unless known to exist."""
        await self.connect()
        if not self._exchanges:
            await self._declare_exchanges()

    async def _declare_exchanges(self) -> None:
        await topology.declare_exchanges(await self.conn.channel(), self.names)
        self._exchanges = True

    async def ensure(self, queue: str) -> None:
        """Open if needed, and declare every band queue of ``queue`` on first use."""
        await self.ensure_exchanges()
        if queue in self.declared:
            return
        channel = await self.conn.channel()
        for band in range(self.names.bands_of(queue)):
            await topology.declare_queue(channel, self.names, self.names.physical(queue, band))
        self.declared.add(queue)

    async def ensure_dead(self) -> None:
        """Declare the dead queue on its first dead letter."""
        if not self._dead:
            await topology.declare_dead(await self.conn.channel(), self.names)
            self._dead = True

    async def outgoing(self, physical: str, body: bytes, message_id: str,
                       delay: float) -> Outgoing:
        """To ``physical`` now, or through the delay levels (declared up to the entry level
        first: a message must never reach a level that does not exist yet)."""
        if delay <= 0:
            return Outgoing("", physical, body, message_id)
        seconds = topology.delay_seconds(delay)
        needed = topology.entry_level(seconds) + 1
        if needed > self.levels:
            await topology.declare_levels(await self.conn.channel(), self.names, self.levels,
                                          needed)
            self.levels = needed
        exchange, key = topology.delay_route(self.names, seconds, physical)
        return Outgoing(exchange, key, body, message_id)
