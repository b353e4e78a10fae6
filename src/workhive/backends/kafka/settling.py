"""Applying a batch of settlements: copies first, then finish / release, in order.

Why a module of its own: this is where at-least-once is decided, so it reads best alone.

* **Retry / dead are "produce the next record, then finish the old one".** Every copy the
  batch needs is produced first and acknowledged by the broker; only then is its delivery
  finished (which lets the committer move past it). A crash in between runs that attempt once
  more, never loses it. ``Receipt.published`` remembers an acknowledged copy, so a batch the
  settler repeats after a failed call does not produce it twice.
* **Stale deliveries** (their partition was revoked) change only the local bookkeeping, never
  the broker: if another member took the partition over, it starts at the committed offset
  and runs them again; if the rebalance handed it straight back, the bookkeeping is current.
* **No commit here.** Finishing only updates the bookkeeping and wakes the consumer's
  committer task (:mod:`.consumer`), so a settle of acks costs no broker round trip.
* **A keyed retry stays in memory** (:meth:`.consumer.QueueConsumer.retry_later`): produced to
  a delay tier it would come back behind the later records of its key, which would run first.
  Kept here, its offset stays unfinished and its key busy until it succeeds or goes to the dead
  letters. The price: after a crash or a rebalance the next owner runs it again from its
  original record (attempt count back to where it was enqueued).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workhive.backend import Settlement
from workhive.backends.kafka.names import Names
from workhive.backends.kafka.offsets import Receipt
from workhive.backends.kafka.settings import DRIVER_ERRORS, KafkaSettings


@dataclass(frozen=True, slots=True)
class Copy:
    """A record to produce for a retry (``delay`` s from now) or a dead letter."""

    topic: str
    body: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    delay: float


def copy_for(names: Names, s: Settlement, r: Receipt) -> Copy:
    """The record a retry / dead settlement produces before the old one finishes. A retry
    goes back to the topic it came from (an event's retry to its group's own topic: it must
    reach that group only); a dead letter to ``P.dead`` with the reason in headers."""
    body = s.body or s.delivery.body
    key = r.record.key
    if s.action == "retry":
        topic = r.record.topic
        if topic == names.events:
            topic = names.group_topic(s.delivery.queue[1:])
        return Copy(topic, body, key, [], s.eta - time.time())
    headers = [("reason", s.reason.encode()), ("queue", s.delivery.queue.encode()),
               ("failed_at", f"{time.time():.3f}".encode()),
               ("source", f"{r.record.topic}/{r.record.partition}/{r.offset}".encode())]
    if s.envelope is not None:
        headers += [("id", s.envelope.id.encode()),
                    ("attempt", str(s.envelope.attempt).encode())]
    return Copy(names.dead, body, key, headers, 0.0)


async def settle(settlements: Sequence[Settlement], names: Names,
                 send: Callable[[Copy], Awaitable[Any]], settings: KafkaSettings) -> None:
    """Apply ``settlements`` in order; ``send`` queues one copy and returns its ack future.
    Raises the translated error of the first copy that failed (its delivery stays unsettled,
    the others are applied)."""
    live: list[tuple[Settlement, Receipt]] = []
    for s in settlements:
        r = s.delivery.receipt
        if not isinstance(r, Receipt) or r.done:
            continue
        if s.action == "retry" and r.key is not None:  # bookkeeping only, stale or not
            r.consumer.retry_later(r, s.body or s.delivery.body, s.eta)
            continue
        if r.stale:  # bookkeeping only: the part is used again if the partition comes back
            _apply(s, r, copied=r.published)
            continue
        live.append((s, r))
    copies: list[tuple[Receipt, Any]] = []
    error: BaseException | None = None
    try:
        for s, r in live:
            if s.action in ("retry", "dead") and not r.published:
                copies.append((r, await send(copy_for(names, s, r))))
    except DRIVER_ERRORS as exc:
        error = exc
    results = await asyncio.gather(*(f for _, f in copies), return_exceptions=True)
    for (r, _), result in zip(copies, results, strict=True):
        if isinstance(result, BaseException):
            error = error or result
        else:
            r.published = True
    for s, r in live:
        if r.stale or r.published or s.action not in ("retry", "dead"):
            _apply(s, r, copied=r.published)
        # else its copy failed: it stays unsettled and the settler repeats the batch
    if error is not None:
        raise settings.error(error, "settle")


def _apply(s: Settlement, r: Receipt, *, copied: bool) -> None:
    """Finish an ack (or a retry / dead whose copy is out); anything else goes back to the
    buffer. On a stale receipt this only matters if the partition comes back to this member
    in the same rebalance: a retry whose copy was never produced then runs again."""
    if s.action == "ack" or (s.action in ("retry", "dead") and copied):
        r.consumer.finish(r)
    else:
        r.consumer.release(r)
