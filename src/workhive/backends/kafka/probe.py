"""Reading log ends and committed offsets for ``stats`` and for binding event groups.

Why not just ``end_offsets``: on Tansu (the test broker) ListOffsets(latest) answers *the base
offset of the last batch + 1*, which under-reports after a multi-record batch. The fetch
response's high-water mark is right everywhere, so :meth:`Probe.ends` asks ListOffsets for an
estimate ``e`` and then fetches from ``e - 1`` (one small batch on real Kafka, the last batch on
Tansu) to read the high-water mark. An empty partition (``e == 0``) needs no fetch.

Committed offsets are read with a consumer that carries the group id but never joins (a
"simple" consumer): it does not disturb the group's members.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from workhive.backends.kafka.settings import KafkaSettings

PROBE_TIMEOUT = 2.0


class Probe:
    """A group-less consumer for log ends, plus non-joining consumers per group."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._ends: AIOKafkaConsumer | None = None
        self._groups: dict[str, AIOKafkaConsumer] = {}
        self._lock = asyncio.Lock()

    def _consumer(self, group: str | None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                max_partition_fetch_bytes=64 * 1024,
                                **self.settings.client_kwargs())

    async def close(self) -> None:
        consumers = [c for c in (self._ends, *self._groups.values()) if c is not None]
        self._ends, self._groups = None, {}
        for consumer in consumers:
            await consumer.stop()

    async def partitions(self, topics: list[str]) -> list[TopicPartition]:
        """Every partition of ``topics`` (a topic that does not exist yet has none)."""
        consumer = await self._ends_consumer()
        metadata = await consumer._client.fetch_all_metadata()
        out: list[TopicPartition] = []
        for topic in topics:
            out += [TopicPartition(topic, p)
                    for p in sorted(metadata.partitions_for_topic(topic) or ())]
        return out

    async def _ends_consumer(self) -> AIOKafkaConsumer:
        if self._ends is None:
            consumer = self._consumer(None)
            await consumer.start()
            self._ends = consumer
        return self._ends

    async def ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The true log end (next offset to be written) of each partition."""
        if not tps:
            return {}
        async with self._lock:
            consumer = await self._ends_consumer()
            consumer.assign(tps)
            estimate: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            ends = {tp: int(estimate.get(tp, 0)) for tp in tps}
            waiting = {tp for tp, e in ends.items() if e > 0}
            for tp in waiting:
                consumer.seek(tp, ends[tp] - 1)
            deadline = time.monotonic() + PROBE_TIMEOUT
            while waiting and time.monotonic() < deadline:
                batch = await consumer.getmany(*waiting, timeout_ms=100)
                for tp in list(waiting):
                    highwater = consumer.highwater(tp)
                    if tp in batch and highwater is not None:
                        ends[tp] = max(ends[tp], int(highwater))
                        waiting.discard(tp)
                        consumer.pause(tp)
            consumer.assign([])
            return ends

    async def committed(self, group: str, tps: list[TopicPartition],
                        missing: int = 0) -> dict[TopicPartition, int]:
        """The group's committed offsets (``missing`` where it has none)."""
        consumer = self._groups.get(group)
        if consumer is None:
            consumer = self._consumer(group)
            await consumer.start()
            self._groups[group] = consumer
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            offset = await consumer.committed(tp)
            out[tp] = missing if offset is None else int(offset)
        return out

    async def commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` for ``group`` without joining it (binding an event group)."""
        await self.committed(group, [])
        consumer = self._groups[group]
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
        consumer.assign([])


    async def start_at_end(self, group: str, topics: list[str]) -> None:
        """Commit the log end for every partition of ``topics`` where ``group`` has no
        committed offset yet (a new event group receives what is published from now on)."""
        tps = await self.partitions(topics)
        current = await self.committed(group, tps, missing=-1)
        fresh = [tp for tp in tps if current[tp] < 0]
        if fresh:
            await self.commit(group, await self.ends(fresh))


def lag(ends: dict[Any, int], done: dict[Any, int]) -> int:
    return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())
