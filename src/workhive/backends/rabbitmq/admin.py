"""Inspection and clean-up for the ``rabbitmq`` backend: queue counts and ``wipe``.

Why apart: counting is read-only plumbing with its own subtlety (delay levels this process never
declared, messages between two levels), and none of it is on the hot path. It is built on the
:class:`~workhive.backends.rabbitmq.broker.Broker` alone, so it reads on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiormq.exceptions import ChannelNotFoundEntity

from workhive.backend import QueueStats
from workhive.backends.rabbitmq import topology
from workhive.backends.rabbitmq.broker import Broker
from workhive.backends.rabbitmq.connection import DRIVER_ERRORS


class RabbitMQAdmin:
    """``stats`` (for ``run(until_idle=True)`` and the inspector) and ``wipe`` (tests), over
    one :class:`Broker`."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def stats(self) -> list[QueueStats]:
        """Per workhive queue used by this process, and ``default`` (a fresh process, such as
        ``workhive status``, has declared nothing; AMQP cannot list queues): ``ready`` (summed
        over bands),
        ``in_flight`` (held unsettled by this process) and ``delayed``.

        ``delayed`` counts every message in the delay levels, whatever its destination (the
        levels cannot tell), so it is the same for every queue. The counts are read twice,
        10 ms apart, and the larger kept: a message hopping between levels (or into its
        queue) is briefly in neither, and an undercount would end ``run(until_idle=True)``
        early.
        """
        broker, names = self._broker, self._broker.names
        try:
            await broker.connect()
            queues = sorted(broker.declared)
            best = {q: QueueStats(q) for q in queues}
            if "default" not in best and await self._exists("default"):
                queues.append("default")
                best["default"] = QueueStats("default")
            for round_ in range(2):
                if round_:
                    await asyncio.sleep(0.01)
                delayed = await self._delayed()
                channel = await broker.conn.channel()
                in_flight = broker.consumers.in_flight()
                for q in queues:
                    ready = 0
                    for band in range(names.bands_of(q)):
                        ready += await topology.ready_count(channel, names.physical(q, band))
                    stat = best[q]
                    stat.ready = max(stat.ready, ready)
                    stat.delayed = max(stat.delayed, delayed)
                    stat.in_flight = max(stat.in_flight, in_flight.get(q, 0))
        except DRIVER_ERRORS as exc:
            raise broker.settings.error(exc, "stats") from None
        return list(best.values())

    async def _exists(self, queue: str) -> bool:
        """Whether another process declared this workhive queue (probed on a throwaway
        channel: a passive declare of a missing queue closes its channel)."""
        async with self._broker.conn.throwaway_channel() as probe:
            try:
                await topology.ready_count(probe, self._broker.names.physical(queue, 0))
            except ChannelNotFoundEntity:
                return False
        return True

    async def _delayed(self) -> int:
        """Messages in all delay levels. Levels this process has not seen may have been
        declared by another one; they are probed (passive declares, bottom up, until the first
        missing one) on a throwaway channel, because a missing queue closes the channel."""
        broker, levels = self._broker, self._broker.names.levels
        channel = await broker.conn.channel()
        total = 0
        for level in range(broker.levels):
            total += await topology.ready_count(channel, levels[level])
        if broker.levels < topology.LEVELS:
            async with broker.conn.throwaway_channel() as probe:
                for level in range(broker.levels, topology.LEVELS):
                    try:
                        total += await topology.ready_count(probe, levels[level])
                    except ChannelNotFoundEntity:
                        break
                    broker.levels = level + 1
        return total

    async def wipe(self, queues: Sequence[str] = ()) -> None:
        """Delete this prefix's exchanges, delay levels, dead queue, the ``default`` family,
        ``queues`` (workhive names, e.g. ``"@billing"``) and every queue this instance
        declared (tests, benchmarks). AMQP cannot list queues, so queues only other processes
        made are not found: name them, or give each test run its own vhost."""
        broker, names = self._broker, self._broker.names
        wiped = {*broker.declared, *queues, "default"}
        await broker.close()  # drops this instance's consumers, which would redeclare queues
        try:
            await broker.open()
            channel = await broker.conn.channel()
            for queue in wiped:
                for band in range(names.bands_of(queue)):
                    await channel.queue_delete(names.physical(queue, band))
            for name in (*names.levels, names.dead):  # missing ones: a no-op
                await channel.queue_delete(name)
            for name in (*names.levels, names.deliver, names.events):
                await channel.exchange_delete(name)
        except DRIVER_ERRORS as exc:
            raise broker.settings.error(exc, "wipe") from None
        broker.forget()
