"""One consumer group member per workhive queue, and the buffer that turns it into ``fetch``.

Why it looks like this:

* **A background poll loop** fills a local buffer of up to ``capacity`` records, so ``fetch``
  hands out records already in memory. When the buffer is full it stops fetching until
  ``fetch`` has taken half of it (hysteresis: pausing a partition makes aiokafka drop the fetch
  response it holds for it, so pausing at every single free slot would re-fetch from the
  broker for each record). A worker that stays full longer than :data:`FULL_POLL` gets every
  partition *paused* and ``getmany`` called anyway: aiokafka drops a member whose application
  stops calling ``getmany`` for ``max_poll_interval``, and workhive fetches only when it has
  free slots, so a slow handler would otherwise trip it.
* **Commits are off the settle path** (:class:`.offsets.Committer`): ``finish`` only updates
  the bookkeeping; one commit is in flight at a time, up to each partition's lowest unfinished
  offset. The rebalance listener commits on revocation and keeps a revoked part aside: if the
  same rebalance hands the partition back untouched, its running tasks stay valid.
* **Priority and FIFO.** Bands are separate topics; ``take`` hands out the highest band first
  and, within a band, the oldest enqueue time across partitions. Right after an assignment (or
  while a higher band's partition has records the fetcher has not delivered yet) it waits up
  to :data:`HOLD` seconds rather than overtake them.
* **Events** (queue ``@group``) read the one events topic and skip records whose name matches
  none of the group's patterns; skipped offsets count as done.
* **Ordering keys** (the ``wh-key`` header): ``take`` hands out a keyed record only while no
  other record of its key from the same partition is out, and a keyed retry waits here, not in
  a delay tier (:mod:`.offsets` has the bookkeeping; ``docs/kafka.md`` the guarantee). Records
  waiting behind a busy key do not count against ``capacity`` (up to ``capacity`` of them), and
  a partition with more than its share of them is paused until half have gone: a hot key slows
  its own partition, it does not fill the buffer and stop fetching for every other one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from workhive.backend import Delivery, topic_matches
from workhive.backends.kafka.names import H_KEY, H_NAME, H_TS, Names
from workhive.backends.kafka.offsets import Buffered, Committer, Part, Receipt, header
from workhive.backends.kafka.settings import DRIVER_ERRORS, KafkaSettings

logger = logging.getLogger("workhive.backends.kafka")

HOLD = 0.1  # longest wait for a higher band's records the fetcher is about to deliver
#: after records arrive in an empty buffer, wait this long for records produced together with
#: them into other partitions (a batch forwarded from the delay tiers), so they go out in order
COALESCE = 0.02
POLL_MS = 200
FETCH_WAIT_MS = 50
#: a buffer that stays full this long (s) gets its partitions paused and polled (see above)
FULL_POLL = 1.0
#: a member nobody fetched from for this long (its worker stopped, the backend lives on)
#: commits and leaves the group, so its partitions move to workers that are running
IDLE_LEAVE = 3.0


class QueueConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    """The group member that reads one workhive queue (all its band topics)."""

    def __init__(self, settings: KafkaSettings, names: Names, queue: str, capacity: int,
                 patterns: Callable[[], set[str] | None], arrived: asyncio.Event) -> None:
        self.settings = settings
        self.queue = queue
        self.capacity = capacity
        self.patterns = patterns
        self.topics = names.topics_of(queue)
        self.band = {t: len(self.topics) - 1 - i for i, t in enumerate(self.topics)}
        if queue.startswith("@"):
            self.band = dict.fromkeys(self.topics, 0)
        self.events_topic = names.events
        self.parts: dict[Any, Part] = {}
        self.limbo: dict[Any, Part] = {}  # revoked in the rebalance in progress
        self.by_band: list[list[Part]] = []  # live parts grouped by band, highest band first
        self.count = 0  # records in the buffers of ``parts``
        self.arrived = arrived  # shared by every consumer of one backend: wakes ``fetch``
        self.error: BaseException | None = None
        session_ms = int(settings.session_timeout * 1000)
        self.kafka = AIOKafkaConsumer(
            group_id=names.consumer_group(queue), enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(100, session_ms // 3),
            rebalance_timeout_ms=max(session_ms, 10_000), max_poll_interval_ms=300_000,
            # an idle fetch waits on the broker at most this long: brokers that do not answer
            # a long poll early when data arrives (Tansu) would otherwise add up to 500 ms
            fetch_max_wait_ms=FETCH_WAIT_MS, **settings.client_kwargs())
        self.kafka.subscribe(self.topics, listener=self)
        self.fresh_until = 0.0
        self.broken = False
        self.last_take = time.monotonic()
        self.room = asyncio.Event()  # set when ``take`` has emptied half of a full buffer
        self.paused = False  # every partition paused because the buffer stayed full
        self.retrying = False  # a part holds keyed retries (``take`` moves the due ones)
        self.held_back: set[Any] = set()  # partitions paused for records behind busy keys
        self._tasks: list[asyncio.Task[None]] = []
        self.committer = Committer(self.kafka, self.parts, queue)

    def start(self) -> None:
        """Join the group in the background (aiokafka's ``start`` waits for the first
        assignment, about a session timeout: several queues join at once this way)."""
        self._tasks.append(asyncio.create_task(self._run(), name=f"workhive-kafka-{self.queue}"))

    async def _run(self) -> None:
        try:
            await self.kafka.start()
        except DRIVER_ERRORS as exc:
            self.error, self.broken = exc, True  # ``fetch`` reports it and makes a new one
            self.arrived.set()
            return
        self._tasks.append(asyncio.create_task(self.committer.run(),
                                               name=f"workhive-kafka-commit-{self.queue}"))
        await self._poll()

    async def stop(self) -> None:
        """Commit what is finished and leave the group: the unfinished records go to the next
        owner from the committed offset."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._leave()

    async def _leave(self) -> None:
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.commit()
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.kafka.stop()
        self._drop(list(self.parts))

    # -- rebalance listener (called by aiokafka inside its rebalance) ---------------------

    async def on_partitions_revoked(self, revoked: Any) -> None:
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.commit()
        for tp in revoked:  # kept aside: the same rebalance may hand them straight back
            self.held_back.discard(tp)
            part = self.parts.pop(tp, None)
            if part is not None:
                part.revoked = True
                self.count -= part.held()
                self.limbo[tp] = part
        self._group()
        self.room.set()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """A partition that comes back to this member with the offset it committed itself
        (nobody else got further) keeps its part: running tasks stay valid and nothing is
        re-fetched, so a rebalance re-runs only what another member really takes over."""
        limbo, self.limbo = self.limbo, {}
        for tp in assigned:
            committed = await self.kafka.committed(tp) or 0
            old = limbo.pop(tp, None)
            if old is not None and old.committed == committed:
                old.revoked = False
                self.parts[tp] = old
                self.count += old.held()
                self.kafka.seek(tp, old.high)
            else:
                self.parts[tp] = Part(tp, self.band.get(tp.topic, 0), committed)
        for part in limbo.values():
            part.clear()
        self._group()
        self.paused = False  # aiokafka hands out new assignments unpaused
        self.held_back.clear()
        self.arrived.set()

    def _drop(self, tps: Any) -> None:
        """Forget partitions (this member left): their receipts go stale."""
        for tp in tps:
            part = self.parts.pop(tp, None)
            if part is not None:
                part.revoked = True
                self.count -= part.held()
                part.clear()
        for part in self.limbo.values():
            part.clear()
        self.limbo.clear()
        self.held_back.clear()
        self._group()
        self.room.set()

    def _group(self) -> None:
        bands = sorted({p.band for p in self.parts.values()}, reverse=True)
        self.by_band = [[p for p in self.parts.values() if p.band == b] for b in bands]

    # -- polling --------------------------------------------------------------------------

    def buffered(self) -> int:
        return self.count

    async def _poll(self) -> None:
        failures = 0
        while True:
            idle = time.monotonic() - self.last_take
            if idle > max(IDLE_LEAVE, 2 * self.settings.session_timeout) and \
                    self.pending() == self.count:  # nothing handed out is running
                await self._leave()
                self.broken = True  # ``fetch`` makes a new member when someone fetches again
                return
            try:
                self._hold_back()
                load = self.load()
                if load >= self.capacity:
                    await self._wait_for_room()
                    continue
                if self.paused:
                    self.kafka.resume(*(self.kafka.assignment() - self.held_back))
                    self.paused = False
                batch = await self.kafka.getmany(timeout_ms=POLL_MS,
                                                 max_records=self.capacity - load)
                failures = 0
                self.error = None
            except DRIVER_ERRORS as exc:
                failures += 1
                self.error = exc
                logger.warning("kafka consumer of %s: %s", self.queue,
                               self.settings.error(exc, "poll"))
                self.arrived.set()
                await asyncio.sleep(min(5.0, 0.1 * 2 ** failures))
                continue
            if not batch:
                continue
            if not self.count:
                self.fresh_until = time.monotonic() + COALESCE
            for tp, records in batch.items():
                part = self.parts.get(tp)
                if part is not None:
                    self._keep(part, records)
            self.arrived.set()

    def load(self) -> int:
        """Records kept here that count against ``capacity``: all but those waiting behind a
        busy key (up to ``capacity`` of them), which only their key's progress can move."""
        blocked = sum(p.blocked for p in self.parts.values())
        return self.count - min(blocked, self.capacity)

    def _hold_back(self) -> None:
        """Pause a partition whose records waiting behind busy keys reach its share of the
        buffer; resume it when half of them have gone (hysteresis, as for the whole buffer)."""
        if not self.parts:
            return
        share = max(2, self.capacity // (2 * len(self.parts)))
        pause = [tp for tp, p in self.parts.items()
                 if tp not in self.held_back and p.blocked >= share]
        resume = [tp for tp in self.held_back
                  if (p := self.parts.get(tp)) is None or p.blocked <= share // 2]
        if pause:
            self.kafka.pause(*pause)
            self.held_back.update(pause)
        if resume:
            self.held_back.difference_update(resume)
            if not self.paused:
                self.kafka.resume(*resume)

    async def _wait_for_room(self) -> None:
        """Full: fetch nothing until ``take`` has emptied half the buffer. If that takes longer
        than :data:`FULL_POLL`, pause every partition and poll (keeps the membership alive)."""
        self.room.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FULL_POLL):
                await self.room.wait()
            return
        self.kafka.pause(*self.kafka.assignment())
        self.paused = True
        await self.kafka.getmany(timeout_ms=0)

    def _keep(self, part: Part, records: list[Any]) -> None:
        patterns = self.patterns() if part.tp.topic == self.events_topic else None
        for record in records:
            if patterns is not None:
                name = (header(record, H_NAME) or b"").decode(errors="replace")
                if not any(topic_matches(p, name) for p in patterns):
                    part.fetched(record.offset, None)
                    self.committer.wake()  # only skipped events may have advanced it
                    continue
            part.fetched(record.offset, _buffered(record))
            self.count += 1

    # -- handing out ----------------------------------------------------------------------

    def _unknown(self, part: Part) -> bool:
        """Just assigned: the fetcher has not reported on this partition yet."""
        return not self.paused and self.kafka.highwater(part.tp) is None

    def _expecting(self, part: Part) -> bool:
        """The fetcher is about to deliver records of ``part``."""
        if self.paused or part.tp in self.held_back:
            return False
        highwater = self.kafka.highwater(part.tp)
        return highwater is None or highwater > part.high

    def take(self, limit: int, hold_until: float) -> tuple[list[Delivery], bool]:
        """Up to ``limit`` deliveries, highest band first, oldest first within a band; and
        whether nothing was handed out because a band is about to deliver (wait and ask
        again, until ``hold_until``)."""
        now = self.last_take = time.monotonic()
        if now < self.fresh_until:
            return [], True
        if self.retrying:
            self.retrying = False
            for part in self.parts.values():
                if part.retries:
                    part.due(now)
                    self.retrying = self.retrying or bool(part.retries)
        holding = now < hold_until
        out: list[Delivery] = []
        for group in self.by_band:
            if holding and any(self._unknown(p) for p in group):
                break
            while len(out) < limit:
                best, first = None, None
                for part in group:  # the oldest record any partition of the band can hand out
                    item = part.head()
                    if item is not None and (first is None or item[0] < first[0]):
                        best, first = part, item
                if best is None:
                    break
                item = best.pop()
                body = item[3] if item[3] is not None else item[1].value
                out.append(Delivery(self.queue, body or b"", Receipt(self, best, item)))
            if len(out) >= limit or (holding and any(self._expecting(p) for p in group)):
                break
        else:
            holding = False
        self.count -= len(out)
        if self.load() <= self.capacity // 2:
            self.room.set()
        return out, holding and not out

    # -- settling -------------------------------------------------------------------------

    def finish(self, receipt: Receipt) -> None:
        receipt.done = True
        part = receipt.part
        part.finish(receipt.offset)
        if receipt.key is not None and part.free(receipt.key) and not part.revoked:
            self.arrived.set()  # the next record of that key is ready
        self.committer.wake()

    def release(self, receipt: Receipt) -> None:
        """Give it back to this consumer's buffer (still pending: never committed past); a
        keyed record keeps its key, so it is the next of its key again."""
        receipt.done = True
        self._keep_local(receipt.part, receipt.item(), None)

    def retry_later(self, receipt: Receipt, body: bytes, eta: float) -> None:
        """Run a keyed record again at unix time ``eta`` with ``body`` (the next attempt),
        keeping its key busy and its offset unfinished meanwhile: the records of its key behind
        it wait, and a crash before it succeeds runs it again from its original record."""
        receipt.done = True
        delay = max(0.0, eta - time.time())
        self._keep_local(receipt.part, receipt.item(body), delay)

    def _keep_local(self, part: Part, item: Buffered, delay: float | None) -> None:
        if delay is None:
            part.front.appendleft(item)
        else:
            part.retry_later(item, time.monotonic() + delay)
            self.retrying = True  # also for a revoked part: it may come back untouched
            asyncio.get_running_loop().call_later(delay, self.arrived.set)
        if not part.revoked:  # a revoked part's records are counted if it comes back
            self.count += 1
            self.arrived.set()

    def pending(self) -> int:
        """Records fetched and not finished (buffered or running)."""
        return sum(p.unfinished for p in self.parts.values())

    async def commit(self) -> None:
        """Commit every live partition up to its lowest unfinished offset, now."""
        await self.committer.commit()

    def positions(self) -> dict[TopicPartition, int]:
        """How far this member has read each partition it owns (for ``stats``)."""
        return {tp: p.high for tp, p in self.parts.items()}


def _buffered(record: Any) -> Buffered:
    """How a fetched record is kept: its enqueue time (``wh-ts``, ns) and ordering key
    (``wh-key``), read in one pass over its headers (the first of each counts)."""
    ts: int | None = None
    key: bytes | None = None
    for name, value in record.headers or ():
        if name == H_TS and ts is None:
            try:
                ts = int(value)
            except (TypeError, ValueError):
                ts = 0
        elif name == H_KEY and key is None and value:
            key = bytes(value)
    return (ts or 0, record, key, None)
