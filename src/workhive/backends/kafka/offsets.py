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
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from workhive.backends.kafka.settings import DRIVER_ERRORS

logger = logging.getLogger("workhive.backends.kafka")

#: one buffered record: (enqueue time in ns from its header, the aiokafka ConsumerRecord)
Buffered = tuple[int, Any]


class Part:
    """One assigned partition of one consumer, for one generation.

    O(1) amortised per record: ``order`` holds the offsets fetched and not yet passed by the
    commit target, ascending (records arrive in offset order); ``finished`` the ones among them
    that are done. The target is the head of ``order`` once finished heads are popped, so a
    busy partition never scans its in-flight set.
    """

    __slots__ = ("band", "buffer", "committed", "finished", "high", "order", "revoked", "tp")

    def __init__(self, tp: Any, band: int, committed: int) -> None:
        self.tp = tp
        self.band = band
        self.buffer: deque[Buffered] = deque()  # fetched, not handed out (in offset order)
        self.order: deque[int] = deque()  # fetched, at or above the commit target, ascending
        self.finished: set[int] = set()  # offsets in ``order`` that are done
        self.high = committed  # the offset after the last record fetched
        self.committed = committed
        self.revoked = False

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
    """``Delivery.receipt``: the record and the part it came from (``published``: the
    retry/dead copy was acknowledged by the broker, so a repeated settle must not produce it
    again; ``done``: settled)."""

    __slots__ = ("consumer", "done", "part", "published", "record", "ts")

    def __init__(self, consumer: Any, part: Part, ts: int, record: Any) -> None:
        self.consumer = consumer
        self.part = part
        self.ts = ts
        self.record = record
        self.published = False
        self.done = False

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


def header_int(record: Any, key: str, default: int) -> int:
    raw = header(record, key)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default
