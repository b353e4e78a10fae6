"""Delay tiers: records wait in ``P.delay.<tier>`` topics and are forwarded when due.

Why tiers: Kafka cannot hide a record until a time, and a consumer that sleeps on a record
blocks everything behind it. Every record in a tier ``T`` above the smallest was produced there
with at least ``T`` seconds to wait and is looked at ``T`` seconds after it was produced, so
within one partition each record is due no earlier than the one before it: the head is always
the earliest. The forwarder therefore keeps the records it has read in a local per-partition
queue, *pauses* a partition whose head is not due (nothing else in it is due either; other
partitions and tiers keep flowing), and wakes when the head is due; a record with time left
then hops to the largest tier not longer than what remains.

The smallest tier is different: it takes every record with less than the next tier to wait, in
any order (0.6 s, then 0.1 s), so its head is not the earliest. Its partitions are never paused:
the forwarder reads them fully (at most one tier step of delayed traffic) and forwards each
record at its own ``wh-due``, committing only below the oldest record it still holds. Records
due in one pass are produced in due order, so a queue partition receives them FIFO by due time.
Never early: the destination is written only once ``wh-due`` has passed.

Forwarding is "produce, then commit": without idempotence or transactions (Tansu has
neither), a crash in between forwards a record twice, never loses one. Every worker process
runs a forwarder; they share the tier partitions through the consumer group ``G.P.delay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from workhive.backends.kafka.names import H_DEST, H_DUE, H_TS, TIERS, Names, tier_for
from workhive.backends.kafka.offsets import header
from workhive.backends.kafka.settings import DRIVER_ERRORS, KafkaSettings

logger = logging.getLogger("workhive.backends.kafka")

IDLE_WAIT = 0.5  # longest getmany wait when nothing is scheduled


def delayed_headers(headers: list[tuple[str, bytes]], due: float,
                    dest: str) -> list[tuple[str, bytes]]:
    """``headers`` with the due time and destination set (replacing earlier ones)."""
    kept = [(k, v) for k, v in headers if k not in (H_DUE, H_DEST)]
    return [*kept, (H_DUE, f"{due:.6f}".encode()), (H_DEST, dest.encode())]


def route(names: Names, due: float, dest: str, now: float) -> tuple[str, bool]:
    """Where a record due at ``due`` for ``dest`` goes now: ``(topic, still_delayed)``."""
    remaining = due - now
    if remaining <= 0:
        return dest, False
    return names.tiers[tier_for(remaining)], True


class Forwarder(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reads every tier topic, forwards due records, commits what it forwarded."""

    def __init__(self, settings: KafkaSettings, names: Names, producer: AIOKafkaProducer) -> None:
        self.names = names
        self.settings = settings
        self.producer = producer
        self.tier_of = {topic: tier for tier, topic in names.tiers.items()}
        session_ms = int(settings.session_timeout * 1000)
        self.kafka = AIOKafkaConsumer(
            group_id=names.delay_group, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(100, session_ms // 3),
            rebalance_timeout_ms=max(session_ms, 10_000), max_poll_records=500,
            **settings.client_kwargs())
        self.kafka.subscribe(list(names.tiers.values()), listener=self)
        self.queues: dict[Any, deque[Any]] = {}
        self.high: dict[Any, int] = {}  # the offset after the last record read, per partition
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Join the group in the background (see :meth:`QueueConsumer.start`)."""
        self._task = asyncio.create_task(self._run(), name="workhive-kafka-delay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.kafka.stop()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:  # nothing uncommitted is forwarded: just forget the local copies
            self.queues.pop(tp, None)
            self.high.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self.queues[tp] = deque()
        self.kafka.resume(*assigned)

    def head_due(self, tp: Any, record: Any, now: float) -> float:
        """When the head of tier partition ``tp`` must be looked at again."""
        due = _due(record, now)
        produced = record.timestamp / 1000 if record.timestamp and record.timestamp > 0 else now
        return min(due, produced + self.tier_of.get(tp.topic, 0))

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self.kafka.start()
                break
            except DRIVER_ERRORS as exc:
                failures += 1
                logger.warning("kafka delay forwarder: %s", self.settings.error(exc, "start"))
                await asyncio.sleep(min(5.0, 0.1 * 2 ** failures))
        wake = 0.0
        while True:
            try:
                timeout = max(0.0, min(IDLE_WAIT, wake - time.time())) if wake else IDLE_WAIT
                batch = await self.kafka.getmany(timeout_ms=int(timeout * 1000))
                for tp, records in batch.items():
                    if tp in self.queues and records:
                        self.queues[tp].extend(records)
                        self.high[tp] = records[-1].offset + 1
                wake = await self._forward_due()
                failures = 0
            except DRIVER_ERRORS as exc:
                failures += 1
                logger.warning("kafka delay forwarder: %s", self.settings.error(exc, "forward"))
                await asyncio.sleep(min(5.0, 0.1 * 2 ** failures))

    async def _forward_due(self) -> float:
        """Forward every due record (see the module docstring); pause partitions of the larger
        tiers whose head is not due. Returns the next wake-up time (0: none scheduled)."""
        now = time.time()
        due: list[tuple[float, Any]] = []
        commits: dict[Any, int] = {}
        wake = 0.0
        for tp in list(self.queues):
            queue = self.queues[tp]
            if not queue:
                continue
            if self.tier_of.get(tp.topic) == TIERS[0]:
                held: deque[Any] = deque()
                for record in queue:
                    at = _due(record, now)
                    if at <= now:
                        due.append((at, record))
                    else:
                        held.append(record)
                        wake = at if not wake else min(wake, at)
                if len(held) < len(queue):
                    commits[tp] = held[0].offset if held else self.high[tp]
                    self.queues[tp] = held
                continue
            while queue:
                record = queue[0]
                at = self.head_due(tp, record, now)
                if at > now:
                    wake = at if not wake else min(wake, at)
                    break
                due.append((_due(record, now), queue.popleft()))
                commits[tp] = record.offset + 1
            if queue:
                self.kafka.pause(tp)  # the head is not due: fetch nothing more behind it
            else:
                self.kafka.resume(tp)
        due.sort(key=lambda item: item[0])  # stable: one partition's records keep their order
        sends = []
        for at, record in due:
            dest = (header(record, H_DEST) or b"").decode()
            if not dest:
                continue
            topic, delayed = route(self.names, at, dest, now)
            headers = list(record.headers or ())
            if not delayed:  # ready from its due time: FIFO among ready records
                headers = [(k, v) for k, v in headers if k not in (H_DUE, H_DEST, H_TS)]
                headers.append((H_TS, str(int(at * 1e9)).encode()))
            sends.append(await self.producer.send(topic, record.value, key=record.key,
                                                  headers=headers))
        if sends:
            await asyncio.gather(*sends)
        if commits:
            await self.kafka.commit(commits)
        return wake


def _due(record: Any, now: float) -> float:
    raw = header(record, H_DUE)
    try:
        return float(raw) if raw is not None else now
    except ValueError:
        return now
