"""The Kafka plumbing of :mod:`workhive.commandlog.kafka`: reading one partition, tailing it.

Why reads never wait on the broker: a fetch at an offset that holds no record yet is a long
poll, answered only when data arrives or the fetch wait runs out (on Tansu, the test broker,
only when it runs out). :class:`PartitionReader` therefore only fetches at offsets it knows exist:
below the last high-water mark it saw, or after asking the broker where the log ends
(:meth:`PartitionReader.end`). While it is at the end it keeps its partition paused, so its
consumer sends no background fetch at all.

Why :meth:`PartitionReader.end` fetches: ``ListOffsets(latest)`` is exact on Kafka, but Tansu
answers "base offset of the last batch + 1", which under-reports after a multi-record batch.
Fetching from one below that estimate returns at once (a record is there) together with the
true high-water mark.

:class:`Tailer` is the one long poll: a consumer parked at the end that moves a
:class:`~workhive.commandlog._log.HeadWatcher` each time the high-water mark moves, skipping the
records themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from workhive.backends.kafka.settings import DRIVER_ERRORS, KafkaSettings
from workhive.commandlog._log import HeadWatcher
from workhive.errors import BackendUnavailable

logger = logging.getLogger("workhive.commandlog.kafka")

#: how long the tailer's fetch waits on the broker for new data (Kafka answers as soon as a
#: record arrives; Tansu only when this runs out, so it bounds wake-up latency there)
TAIL_WAIT_MS = 100


class PartitionReader:
    """A group-less consumer assigned to one partition; one read at a time."""

    def __init__(self, settings: KafkaSettings, tp: TopicPartition, timeout: float) -> None:
        self.settings = settings
        self.tp = tp
        self.timeout = timeout
        self.consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=TAIL_WAIT_MS, **settings.client_kwargs())
        self.lock = asyncio.Lock()
        self.known_end = 0  # a high-water mark seen here (the true end is at least this)
        self._position: int | None = None  # the offset the consumer fetches next, if known
        self._paused = False

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign([self.tp])
        self._pause()

    async def stop(self) -> None:
        await self.consumer.stop()

    def _pause(self) -> None:
        if not self._paused:
            self.consumer.pause(self.tp)
            self._paused = True

    async def end(self) -> int:
        """The true end of the partition (the offset the next record gets)."""
        async with self.lock:
            return await self._end()

    async def _end(self) -> int:
        estimate = int((await self.consumer.end_offsets([self.tp])).get(self.tp, 0))
        if estimate > 0:
            await self._fetch(estimate - 1, 1)
        return max(estimate, self.known_end)

    async def read(self, offset: int, limit: int, hint: int = 0) -> list[Any]:
        """Up to ``limit`` records from ``offset`` on (``[]`` when the log ends before it).

        ``hint``: an end the caller knows of (its own appends, the tailer); below it no
        question to the broker is needed.
        """
        async with self.lock:
            if offset >= max(self.known_end, hint) and offset >= await self._end():
                return []
            return await self._fetch(offset, limit)

    async def _fetch(self, offset: int, limit: int) -> list[Any]:
        """Records from ``offset``, which must exist (else this waits ``timeout``)."""
        consumer, tp = self.consumer, self.tp
        if self._position != offset:
            consumer.seek(tp, offset)
        if self._paused:
            consumer.resume(tp)
            self._paused = False
        deadline = time.monotonic() + self.timeout
        records: list[Any] = []
        try:
            while not records:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._position = None
                    self._pause()
                    raise BackendUnavailable(
                        f"kafka at {self.settings.where} returned no record at offset {offset} "
                        f"of {tp.topic} within {self.timeout:g}s")
                batch = await consumer.getmany(tp, timeout_ms=int(remaining * 1000),
                                               max_records=limit)
                records = [r for r in batch.get(tp, ()) if r.offset >= offset]
        except DRIVER_ERRORS as exc:
            self._position = None
            self._pause()
            raise self.settings.error(exc, f"read {tp.topic}") from None
        self._position = records[-1].offset + 1
        highwater = consumer.highwater(tp)
        if highwater is not None:
            self.known_end = max(self.known_end, int(highwater))
        if self._position >= self.known_end:
            self._pause()  # at the end: no background long poll from this consumer
        return records


class Tailer:
    """Long-polls the end of one partition and reports each new high-water mark."""

    def __init__(self, settings: KafkaSettings, tp: TopicPartition, watcher: HeadWatcher) -> None:
        self.settings = settings
        self.tp = tp
        self.watcher = watcher
        self.consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="latest",
            fetch_max_wait_ms=TAIL_WAIT_MS, max_partition_fetch_bytes=1024,
            **settings.client_kwargs())
        self.task: asyncio.Task[None] | None = None

    async def start(self, end: int) -> None:
        """Start tailing at offset ``end`` (what the caller knows to be the end)."""
        await self.consumer.start()
        self.consumer.assign([self.tp])
        self.consumer.seek(self.tp, end)
        self.task = asyncio.create_task(self._run(), name=f"kafka-log-tail:{self.tp.topic}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        await self.consumer.stop()

    async def _run(self) -> None:
        consumer, tp = self.consumer, self.tp
        failures = 0
        while True:
            try:
                batch = await consumer.getmany(tp, timeout_ms=5000)
                failures = 0
            except DRIVER_ERRORS as exc:
                failures += 1
                logger.warning("kafka log %s: tailing failed (%s); retrying", tp.topic,
                               self.settings.error(exc))
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            self.watcher.advance(int(highwater))
            records = batch.get(tp)
            if records and records[-1].offset + 1 < highwater:
                consumer.seek(tp, highwater)  # only the end matters here, not the records
