"""Per-partition bookkeeping: what was fetched, what is still running, what may be committed.

Why this exists: a worker runs many messages of one partition at once and they finish in any
order, but Kafka keeps one committed offset per partition. Committing past a message that is
still running would lose it on a crash (faust#682), so :meth:`Part.target` is the *lowest
offset not yet finished*: everything below it is done, everything at or above it comes back
to the next owner. Offsets that were never handed out (event records another group's pattern
filtered away, gaps left by compaction) never enter ``pending``, so they count as done.

:class:`Committer` sends those targets to the broker, one commit in flight at a time.

A :class:`Part` lives for one assignment of one partition. When the partition is revoked, the
part is marked ``revoked``; receipts that point at it are stale, and settling them does
nothing (the next owner starts at the committed offset and runs them again).

**Ordering keys.** A record with an ordering key (the ``wh-key`` header) is handed out only
while no other record of its key from this partition is out: the key is *busy* from the moment
one is handed out until it finishes (ack or dead letter); a retry keeps it busy and waits in
``retries`` until due, since producing it to a delay tier would let the records behind it
overtake. Records met behind a busy key move aside to ``waiting`` (so the scan for the next
record never passes them again); when the key frees, the oldest of them goes to ``front``,
still holding the key. Every one of them stays unfinished, so the commit never passes a
record held back or waiting to be retried.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from typing import Any

from workhive.backends.kafka.settings import DRIVER_ERRORS

logger = logging.getLogger("workhive.backends.kafka")

#: one buffered record: (enqueue time in ns from its header, the aiokafka ConsumerRecord, its
#: ordering key or None, the body to deliver instead of the record's value or None: a retry)
Buffered = tuple[int, Any, bytes | None, bytes | None]


class Part:
    """One assigned partition of one consumer, for one generation.

    O(1) amortised per record: ``order`` holds the offsets fetched and not yet passed by the
    commit target, ascending (records arrive in offset order); ``finished`` the ones among them
    that are done. The target is the head of ``order`` once finished heads are popped, so a
    busy partition never scans its in-flight set.
    """

    __slots__ = ("band", "blocked", "buffer", "busy", "committed", "finished", "front", "high",
                 "order", "retries", "revoked", "tp", "waiting")

    def __init__(self, tp: Any, band: int, committed: int) -> None:
        self.tp = tp
        self.band = band
        self.buffer: deque[Buffered] = deque()  # fetched, not handed out (in offset order)
        self.order: deque[int] = deque()  # fetched, at or above the commit target, ascending
        self.finished: set[int] = set()  # offsets in ``order`` that are done
        self.high = committed  # the offset after the last record fetched
        self.committed = committed
        self.revoked = False
        # ordering keys (see the module docstring)
        self.front: deque[Buffered] = deque()  # handed out before ``buffer``: released records,
        #                                        and the next of a key that just freed
        self.busy: set[bytes] = set()  # keys with a record out, in ``front`` or in ``retries``
        self.waiting: dict[bytes, deque[Buffered]] = {}  # behind a busy key, oldest first
        self.blocked = 0  # records in ``waiting``
        self.retries: list[tuple[float, int, Buffered]] = []  # heap: (due, offset, record)

    def fetched(self, offset: int, keep: Buffered | None) -> None:
        """A record arrived; ``keep`` is None when it is skipped (done at once)."""
        self.high = offset + 1
        if keep is not None:
            self.order.append(offset)
            self.buffer.append(keep)

    def finish(self, offset: int) -> None:
        """``offset`` is done (it may now be committed past)."""
        if self.order and self.order[0] == offset:
            self.order.popleft()
            while self.order and self.order[0] in self.finished:
                self.finished.discard(self.order.popleft())
        else:
            self.finished.add(offset)

    def head(self) -> Buffered | None:
        """The record this partition hands out next, or None: ``front`` first, else the oldest
        buffered record whose key is free (those behind a busy key move to ``waiting``)."""
        if self.front:
            return self.front[0]
        buffer, busy = self.buffer, self.busy
        while buffer:
            item = buffer[0]
            key = item[2]
            if key is None or key not in busy:
                return item
            buffer.popleft()
            queue = self.waiting.get(key)
            if queue is None:
                self.waiting[key] = queue = deque()
            queue.append(item)
            self.blocked += 1
        return None

    def pop(self) -> Buffered:
        """Hand out what :meth:`head` returned; its key (if any) is busy until :meth:`free`."""
        if self.front:
            return self.front.popleft()  # its key is busy already
        item = self.buffer.popleft()
        if item[2] is not None:
            self.busy.add(item[2])
        return item

    def free(self, key: bytes) -> bool:
        """The record of ``key`` that was out is done; whether the next one of the key (moved
        to ``front``, keeping the key busy) is ready to go."""
        queue = self.waiting.get(key)
        if not queue:
            self.busy.discard(key)
            return False
        self.front.append(queue.popleft())
        self.blocked -= 1
        if not queue:
            del self.waiting[key]
        return True

    def retry_later(self, item: Buffered, due: float) -> None:
        """Keep ``item`` (its key stays busy) until monotonic time ``due``."""
        heapq.heappush(self.retries, (due, item[1].offset, item))

    def due(self, now: float) -> None:
        """Move the retries due at monotonic time ``now`` to ``front``."""
        while self.retries and self.retries[0][0] <= now:
            self.front.append(heapq.heappop(self.retries)[2])

    def held(self) -> int:
        """Records kept here and not handed out (buffered, waiting, in front, to retry)."""
        return len(self.buffer) + len(self.front) + len(self.retries) + self.blocked

    def clear(self) -> None:
        """Forget every record kept here (the partition went to another member)."""
        self.buffer.clear()
        self.front.clear()
        self.waiting.clear()
        self.retries.clear()
        self.busy.clear()
        self.blocked = 0

    @property
    def unfinished(self) -> int:
        """Records fetched and not finished (buffered or handed out)."""
        return len(self.order) - len(self.finished)

    def target(self) -> int:
        """The offset that may be committed: the lowest unfinished one, else the next."""
        return self.order[0] if self.order else self.high

    def uncommitted(self) -> int | None:
        """``target()`` when it is ahead of what was committed, else None."""
        target = self.target()
        return target if target > self.committed else None


class Receipt:
    """``Delivery.receipt``: the record and the part it came from (``key``: its ordering key;
    ``body``: what was delivered when it is not the record's value, a retry kept in memory;
    ``published``: the retry/dead copy was acknowledged by the broker, so a repeated settle must
    not produce it again; ``done``: settled)."""

    __slots__ = ("body", "consumer", "done", "key", "part", "published", "record", "ts")

    def __init__(self, consumer: Any, part: Part, item: Buffered) -> None:
        self.consumer = consumer
        self.part = part
        self.ts, self.record, self.key, self.body = item
        self.published = False
        self.done = False

    def item(self, body: bytes | None = None) -> Buffered:
        """The record as kept in a part, to hand out again (with ``body`` when given)."""
        return (self.ts, self.record, self.key, body if body is not None else self.body)

    @property
    def offset(self) -> int:
        return int(self.record.offset)

    @property
    def stale(self) -> bool:
        return self.part.revoked

    def __repr__(self) -> str:
        return f"Receipt({self.part.tp.topic}[{self.part.tp.partition}]@{self.offset})"


class Committer:
    """Commits the finished prefix of every live partition of one consumer, coalesced.

    ``wake`` (after something finished) costs nothing; :meth:`run` keeps at most one commit in
    flight and sends the next as soon as it returns, covering everything that finished in the
    meantime. :meth:`commit` (revocation, leaving) takes the same lock, so a commit computed
    before a revocation lands before the next owner reads the committed offset.
    """

    def __init__(self, kafka: Any, parts: dict[Any, Part], name: str) -> None:
        self.kafka = kafka
        self.parts = parts  # the consumer's own dict, updated in place by its rebalances
        self.name = name
        self.dirty = asyncio.Event()
        self.lock = asyncio.Lock()

    def wake(self) -> None:
        self.dirty.set()

    async def run(self) -> None:
        failures = 0
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            try:
                await self.commit()
                failures = 0
            except DRIVER_ERRORS as exc:  # a rebalance took the partition: it is redelivered
                failures += 1
                logger.debug("kafka commit of %s: %s", self.name, exc)
                await asyncio.sleep(min(5.0, 0.05 * 2 ** failures))
                self.dirty.set()

    async def commit(self) -> None:
        async with self.lock:
            offsets = {tp: t for tp, p in self.parts.items()
                       if not p.revoked and (t := p.uncommitted()) is not None}
            if not offsets:
                return
            await self.kafka.commit(offsets)
            for tp, offset in offsets.items():
                part = self.parts.get(tp)
                if part is not None:
                    part.committed = max(part.committed, offset)


def header(record: Any, key: str) -> bytes | None:
    """The first header ``key`` of a record (aiokafka gives ``[(str, bytes), ...]``)."""
    for name, value in record.headers or ():
        if name == key:
            return bytes(value) if value is not None else None
    return None

