"""A transport that moves messages, plus a coordination store for what the transport lacks.

RabbitMQ (and Kafka) move messages well but keep no keys: cron claims, rate counters,
unique/idempotency keys, heartbeats and browsable dead letters must live elsewhere. A hive built
with ``coordination=`` wraps its transport in :class:`Composite`, which looks like one backend to
the worker, the scheduler and the inspector. Only what the transport does not declare is taken
from the coordination store; what it does itself stays with it.

Crash windows are the contract's own: a unique key is claimed before the publish and released
after the ack (a crash in between holds it until someone releases it by hand or, for idempotency
keys, until its ttl); a dead letter is kept before the delivery is acked (a crash in between
keeps it twice under one id, which the store stores once).

Task results (:attr:`Capability.RESULTS`) live in the coordination store when the transport
cannot keep them and the store can (Redis, SQLite, PostgreSQL): ``Hive("amqp://...",
coordination="redis://...")`` then offers ``store_result=True``.

Cancellation (:attr:`Capability.CANCEL`) comes from the transport when it can delete a waiting
message, else from the store (Redis, SQLite, PostgreSQL): a broker cannot take one message out
of a queue, so the store keeps a cancel flag instead, and :attr:`Composite.cancel_on_arrival`
tells the worker to check each fetched batch against the flags (one call per batch) and drop
the flagged ones unrun. A running task is stopped as on any backend, from the same flags.

Paused queues (the dashboard's pause button) are kept by the transport when it can (NATS),
else in the store (:func:`workhive.pauses.pauses_of` finds them there, as
:func:`workhive.history.history_of` finds task history): every worker and dashboard on the same
store sees one set. A transport that receives messages ahead of ``fetch`` (RabbitMQ) is told
the set through :meth:`Composite.stop_consuming`, so a paused queue's messages wait in the
broker.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence, Set

import msgspec

from workhive._envelope import Envelope, decode, new_id, replay_copy
from workhive.backend import (
    COORDINATION,
    Backend,
    Capability,
    Coordination,
    DeadLetter,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    SupportsCancel,
    SupportsCapacity,
    SupportsDeadLetters,
    SupportsResults,
    SupportsStats,
    WorkerInfo,
    event_group,
    events_of,
)
from workhive.errors import CapabilityError, SerializationError
from workhive.pauses import ConsumesAhead

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL = 86_400.0  # the window the built-in stores keep idempotency keys
_PAGE = 500
#: what a store may do for a transport: the coordination capabilities, and cancel flags
_DELEGABLE = COORDINATION | {Capability.CANCEL}


class Composite:
    """``transport`` for messages; ``coordination`` for the coordination capabilities the
    transport does not declare.

    ``cancel_on_arrival``: cancel is the store's, which cannot delete a message the transport
    holds; a cancelled task is flagged, and the worker drops it when it receives it (read
    through :class:`workhive._tracking.CancelsOnArrival`, never by class).
    """

    def __init__(self, transport: Backend, coordination: Backend) -> None:
        if not isinstance(coordination, Coordination):
            raise CapabilityError(
                f"the {coordination.name!r} backend cannot be a coordination store; use "
                "'sqlite', 'redis' or 'postgres'")
        self.transport = transport
        self.coordination = coordination
        own = transport.features.capabilities
        self.delegated = (_DELEGABLE - own) & coordination.features.capabilities
        self.cancel_on_arrival = Capability.CANCEL in self.delegated
        self.name = transport.name
        caps = own | self.delegated
        self.features: Features = dataclasses.replace(
            transport.features, capabilities=caps, results=Capability.RESULTS in caps,
            cancel=Capability.CANCEL in caps)
        if not self.delegated:
            logger.info("the %s backend coordinates itself; the %s coordination store is unused",
                        transport.name, coordination.name)

    def __repr__(self) -> str:
        return f"Composite({self.transport!r}, coordination={self.coordination!r})"

    async def open(self) -> None:
        await self.transport.open()
        await self.coordination.open()

    async def close(self) -> None:
        try:
            await self.transport.close()
        finally:
            await self.coordination.close()

    # -- transport, with keys claimed around it ---------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        if Capability.UNIQUE not in self.delegated:
            return await self.transport.enqueue(envelopes)
        results: list[EnqueueResult | None] = []
        accepted: list[Envelope] = []
        claimed: list[tuple[str, str]] = []
        for env in envelopes:
            duplicate = await self._claim(env, claimed)
            results.append(duplicate)
            if duplicate is None:
                accepted.append(env)
        try:
            stored = iter(await self.transport.enqueue(accepted) if accepted else [])
        except BaseException:
            for key, holder in claimed:
                await self.coordination.release_key(key, holder)
            raise
        return [r if r is not None else next(stored) for r in results]

    async def _claim(self, env: Envelope, claimed: list[tuple[str, str]]) -> EnqueueResult | None:
        """Claim an envelope's keys; the duplicate's result when one is already held."""
        keys: list[tuple[str, float | None]] = []
        if env.idempotency_key is not None:
            keys.append((f"idempotency:{env.idempotency_key}", IDEMPOTENCY_TTL))
        if env.unique_key is not None:
            keys.append((f"unique:{env.unique_key}", None))
        mine: list[tuple[str, str]] = []
        for key, ttl in keys:
            owner = await self.coordination.claim_key(key, env.id, ttl)
            if owner != env.id:
                for held, holder in mine:
                    await self.coordination.release_key(held, holder)
                return EnqueueResult(owner, duplicate=True)
            mine.append((key, env.id))
        claimed.extend(mine)
        return None

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        return await self.transport.fetch(queues, limit, lease=lease, wait=wait)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if Capability.DEAD_LETTER in self.delegated:
            letters = [self._letter(s) for s in settlements if s.action == "dead"]
            if letters:
                await self.coordination.keep_dead(letters)
                settlements = [dataclasses.replace(s, action="ack") if s.action == "dead" else s
                               for s in settlements]
        await self.transport.settle(settlements)
        if Capability.UNIQUE in self.delegated:
            for s in settlements:
                env = s.envelope
                if env is not None and env.unique_key is not None and s.action in ("ack", "dead"):
                    await self.coordination.release_key(f"unique:{env.unique_key}", env.id)

    @staticmethod
    def _letter(s: Settlement) -> DeadLetter:
        env = s.envelope
        # one id per failed message, so a crash between keep and ack stores it once
        letter_id = f"{env.id}.{env.attempt}" if env is not None else new_id()
        return DeadLetter(letter_id, s.delivery.queue, s.body or s.delivery.body, s.reason,
                          time.time())

    def set_capacity(self, slots: int) -> None:
        if isinstance(self.transport, SupportsCapacity):
            self.transport.set_capacity(slots)

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        await self.transport.extend(deliveries, lease)

    async def stop_consuming(self, queues: Set[str]) -> None:
        """The paused ``queues``, for a transport that receives messages ahead of ``fetch``
        (:class:`~workhive.pauses.ConsumesAhead`); the others take nothing ahead."""
        if isinstance(self.transport, ConsumesAhead):
            await self.transport.stop_consuming(queues)

    # -- events -------------------------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        await events_of(self.transport, f"subscriber group {group}").bind(pattern, group)

    async def publish(self, envelope: Envelope) -> int | None:
        return await events_of(self.transport, f"publish {envelope.name}").publish(envelope)

    # -- coordination -------------------------------------------------------------------

    async def claim_tick(self, job: str, tick: float) -> bool:
        return await self.coordination.claim_tick(job, tick)

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        return await self.coordination.hit_window(key, period, limit)

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        return await self.coordination.take_token(key, rate, burst)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        await self.coordination.heartbeat(info, ttl)

    async def workers(self) -> list[WorkerInfo]:
        return await self.coordination.workers()

    async def forget_worker(self, worker_id: str) -> None:
        await self.coordination.forget_worker(worker_id)

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        return await self.coordination.claim_key(key, holder, ttl)

    async def release_key(self, key: str, holder: str) -> None:
        await self.coordination.release_key(key, holder)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        await self.coordination.keep_dead(letters)

    # -- results and cancellation -------------------------------------------------------

    def _results(self) -> SupportsResults:
        store = self.coordination if Capability.RESULTS in self.delegated else self.transport
        if not isinstance(store, SupportsResults) or \
                not store.features.has(Capability.RESULTS):
            raise CapabilityError(
                f"neither the {self.transport.name!r} backend nor its {self.coordination.name!r} "
                "coordination store keeps task results; use coordination='redis://...' or "
                "'sqlite:///coordination.db'")
        return store

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        await self._results().store_result(task_id, record, ttl)

    async def get_result(self, task_id: str) -> bytes | None:
        return await self._results().get_result(task_id)

    def _cancel(self) -> SupportsCancel:
        store = self.coordination if self.cancel_on_arrival else self.transport
        if not isinstance(store, SupportsCancel) or not store.features.has(Capability.CANCEL):
            raise CapabilityError(
                f"neither the {self.transport.name!r} backend nor its "
                f"{self.coordination.name!r} coordination store can cancel tasks; use "
                "coordination='redis://...', 'postgresql://...' or 'sqlite:///coordination.db'")
        return store

    async def cancel(self, task_id: str, ttl: float) -> bool:
        """The transport's cancel, or (``cancel_on_arrival``) a flag in the store: the store
        holds none of the transport's messages, so it deletes nothing, flags ``task_id`` for
        ``ttl`` seconds and returns False; the worker drops the task when it receives it."""
        return await self._cancel().cancel(task_id, ttl)

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        return await self._cancel().cancelled(task_ids)

    def _own_dead(self) -> SupportsDeadLetters | None:
        """The transport, when it keeps its dead letters itself (NATS does, in a stream of its
        own): browsing them in the store would show an empty list."""
        if Capability.DEAD_LETTER in self.delegated:
            return None
        return self.transport if isinstance(self.transport, SupportsDeadLetters) else None

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        own = self._own_dead()
        if own is not None:
            return await own.dead_letters(queue, limit, offset)
        return await self.coordination.dead_letters(queue, limit, offset)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        own = self._own_dead()
        if own is not None:
            return await own.purge_dead(ids, queue)
        return await self.coordination.purge_dead(ids, queue)

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Enqueue fresh copies on the transport, then drop the letters (a crash in between
        replays a letter twice, never loses one)."""
        own = self._own_dead()
        if own is not None:
            return await own.replay_dead(ids, queue)
        chosen = set(ids) if ids is not None else None
        letters: list[DeadLetter] = []
        offset = 0
        while True:
            page = await self.coordination.dead_letters(queue, _PAGE, offset)
            letters += [d for d in page if chosen is None or d.id in chosen]
            if len(page) < _PAGE:
                break
            offset += _PAGE
        copies: list[Envelope] = []
        replayed: list[str] = []
        for letter in letters:
            try:
                copy = replay_copy(decode(letter.body))
            except SerializationError:
                logger.warning("dead letter %s is malformed; left in place", letter.id)
                continue
            if copy.queue != letter.queue:  # an event's copy: back to the group that failed it
                copy = msgspec.structs.replace(copy, queue=letter.queue,
                                               group=event_group(letter.queue) or copy.group)
            copies.append(copy)
            replayed.append(letter.id)
        if copies:
            await self.transport.enqueue(copies)
            await self.coordination.purge_dead(replayed)
        return len(copies)

    async def stats(self) -> list[QueueStats]:
        """The transport's counts (when it can count) with the store's dead letters."""
        by_queue: dict[str, QueueStats] = {}
        if isinstance(self.transport, SupportsStats):
            by_queue = {s.queue: s for s in await self.transport.stats()}
        if self._own_dead() is not None:
            return sorted(by_queue.values(), key=lambda s: s.queue)
        for stat in await self.coordination.stats():
            if stat.dead:
                by_queue.setdefault(stat.queue, QueueStats(stat.queue)).dead = stat.dead
        return sorted(by_queue.values(), key=lambda s: s.queue)


__all__ = ["Composite"]
