"""In-process backend for testing *user* code: every capability, no durability.

It is also the reference implementation of :mod:`workhive.backend` (a transport and a
coordination store in one): short enough to read when
writing a new backend. State lives in this object, so producers and workers must share one
process (and one :class:`MemoryBackend`); ``memory://name`` URLs resolve to a shared instance
per name within the process.

Per-key order (``Capability.ORDERED_KEYS``) is kept the way the Kafka backend keeps it: the
first message of an ordering key that is fetched *holds* the key (per queue) until it is acked
or dead-lettered, through retries, releases and expired leases; other messages of the key wait
in the queue meanwhile, and since the queue is FIFO within a priority, the oldest goes next.

Task history and paused queues are small stores of their own
(:class:`~workhive.history.InMemoryHistory`, :class:`~workhive.pauses.InMemoryPauses`) that the
backend hands those calls to; the task browser reads the queues themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from workhive._envelope import Envelope, encode
from workhive.backend import (
    Capability,
    DeadLetter,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    WorkerInfo,
    fan_out,
    topic_matches,
)
from workhive.browse import STATES, QueuedTask, TaskState
from workhive.history import Bucket, InMemoryHistory
from workhive.pauses import InMemoryPauses

_DEFAULT_IDEMPOTENCY_TTL = 86_400.0


@dataclass(order=True)
class _Item:
    sort_key: tuple[int, float, int]
    id: str = field(compare=False)
    queue: str = field(compare=False)
    body: bytes = field(compare=False)
    unique_key: str | None = field(compare=False, default=None)
    lease_token: int = field(compare=False, default=0)
    ordering_key: str | None = field(compare=False, default=None)


class MemoryBackend:
    """Everything in dicts and heaps guarded by one asyncio condition."""

    name = "memory"
    features = Features(frozenset(Capability), lease="timed", ordered_keys=True, results=True,
                        cancel=True)

    #: ``memory://name`` instances; bare ``memory://`` always builds a fresh one.
    _instances: dict[str, MemoryBackend] = {}

    def __init__(self) -> None:
        self._seq = itertools.count()
        self._ready: dict[str, list[_Item]] = {}  # queue -> heap by (-priority, eta, seq)
        self._delayed: list[tuple[float, int, _Item]] = []
        self._leased: dict[str, tuple[float, _Item]] = {}  # id -> (lease deadline, item)
        self._dead: dict[str, DeadLetter] = {}
        self._idempotency: dict[str, tuple[str, float]] = {}
        self._unique: dict[str, str] = {}
        self._holders: dict[tuple[str, str], str] = {}  # (queue, ordering key) -> message id
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (holder, expires at)
        self._bindings: set[tuple[str, str]] = set()
        self._ticks: set[tuple[str, float]] = set()
        self._windows: dict[tuple[str, int], int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._totals: dict[str, list[int]] = {}
        self._workers: dict[str, tuple[float, WorkerInfo]] = {}
        self._results: dict[str, tuple[float, bytes]] = {}  # id -> (expires at, record)
        self._cancels: dict[str, float] = {}  # id -> flag expires at
        self._history = InMemoryHistory()
        self._pauses = InMemoryPauses()
        self._changed = asyncio.Condition()

    @classmethod
    def shared(cls, name: str = "") -> MemoryBackend:
        """One instance per name per process (``memory://name``)."""
        if name not in cls._instances:
            cls._instances[name] = cls()
        return cls._instances[name]

    @classmethod
    def from_url(cls, url: str = "memory://", **_: object) -> MemoryBackend:
        name = url.split("://", 1)[-1]
        return cls.shared(name) if name else cls()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- core ---------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        now = time.time()
        results = []
        for env in envelopes:
            if env.idempotency_key is not None:
                seen = self._idempotency.get(env.idempotency_key)
                if seen is not None and seen[1] > now:
                    results.append(EnqueueResult(seen[0], duplicate=True))
                    continue
                ttl = _DEFAULT_IDEMPOTENCY_TTL
                self._idempotency[env.idempotency_key] = (env.id, now + ttl)
            if env.unique_key is not None:
                holder = self._unique.get(env.unique_key)
                if holder is not None:
                    results.append(EnqueueResult(holder, duplicate=True))
                    continue
                self._unique[env.unique_key] = env.id
            item = _Item((-env.priority, env.eta or 0.0, next(self._seq)), env.id, env.queue,
                         encode(env), env.unique_key, ordering_key=env.ordering_key)
            self._place(item, env.eta or 0.0, now)
            results.append(EnqueueResult(env.id))
        await self._notify()
        return results

    def _place(self, item: _Item, eta: float, now: float) -> None:
        if eta > now:
            heapq.heappush(self._delayed, (eta, next(self._seq), item))
        else:
            heapq.heappush(self._ready.setdefault(item.queue, []), item)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _promote(self, now: float) -> float | None:
        """Move due delayed items and expired leases to ready; return the next wake-up time."""
        while self._delayed and self._delayed[0][0] <= now:
            _, _, item = heapq.heappop(self._delayed)
            heapq.heappush(self._ready.setdefault(item.queue, []), item)
        for mid, (deadline, item) in list(self._leased.items()):
            if deadline <= now:
                del self._leased[mid]
                heapq.heappush(self._ready.setdefault(item.queue, []), item)
        wake = [self._delayed[0][0]] if self._delayed else []
        wake += [d for d, _ in self._leased.values()]
        return min(wake) if wake else None

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        deadline = time.monotonic() + wait
        async with self._changed:
            while True:
                now = time.time()
                wake = self._promote(now)
                out: list[Delivery] = []
                for q in queues:
                    heap = self._ready.get(q)
                    waiting: list[_Item] = []  # behind another message of their ordering key
                    while heap and len(out) < limit:
                        item = heapq.heappop(heap)
                        if not self._hold(item):
                            waiting.append(item)
                            continue
                        item.lease_token += 1
                        self._leased[item.id] = (now + lease, item)
                        out.append(Delivery(q, item.body, (item.id, item.lease_token)))
                    for item in waiting:
                        heapq.heappush(self._ready[q], item)
                if out:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if wake is not None:
                    remaining = min(remaining, max(wake - now, 0.001))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()

    def _hold(self, item: _Item) -> bool:
        """Whether ``item`` may run now: it has no ordering key, or it holds its key (it is
        the first of them fetched, or the one already holding it)."""
        if item.ordering_key is None:
            return True
        holder = self._holders.setdefault((item.queue, item.ordering_key), item.id)
        return holder == item.id

    def _let_go(self, item: _Item) -> None:
        """``item`` is done (acked or dead): the next message of its key may run."""
        if item.ordering_key is not None:
            key = (item.queue, item.ordering_key)
            if self._holders.get(key) == item.id:
                del self._holders[key]

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        now = time.time()
        for s in settlements:
            mid, token = s.delivery.receipt
            held = self._leased.get(mid)
            if held is None or held[1].lease_token != token:
                continue  # lease lost: someone else owns the message now
            item = held[1]
            del self._leased[mid]
            totals = self._totals.setdefault(item.queue, [0, 0])
            if s.action == "ack":
                totals[0] += 1
                self._release_unique(item)
                self._let_go(item)
            elif s.action == "dead":
                totals[1] += 1
                self._dead[mid] = DeadLetter(mid, item.queue, s.body or item.body, s.reason, now)
                self._release_unique(item)
                self._let_go(item)
            else:
                if s.action == "retry":
                    totals[1] += 1
                    item.body = s.body or item.body
                eta = s.eta if s.action == "retry" else 0.0
                item.sort_key = (item.sort_key[0], eta, item.sort_key[2])
                self._place(item, eta, now)
        await self._notify()

    def _release_unique(self, item: _Item) -> None:
        if item.unique_key is not None and self._unique.get(item.unique_key) == item.id:
            del self._unique[item.unique_key]

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        deadline = time.time() + lease
        for d in deliveries:
            mid, token = d.receipt
            held = self._leased.get(mid)
            if held is not None and held[1].lease_token == token:
                self._leased[mid] = (deadline, held[1])

    # -- events, cron, counters --------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        self._bindings.add((pattern, group))

    async def publish(self, envelope: Envelope) -> int:
        groups = [g for p, g in self._bindings if topic_matches(p, envelope.name)]
        copies = fan_out(envelope, groups)
        await self.enqueue(copies)
        return len(copies)

    async def claim_tick(self, job: str, tick: float) -> bool:
        if (job, tick) in self._ticks:
            return False
        self._ticks.add((job, tick))
        return True

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        now = time.time()
        window = int(now // period)
        count = self._windows.get((key, window), 0)
        if count >= limit:
            return False, (window + 1) * period - now
        self._windows[(key, window)] = count + 1
        return True, 0.0

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return True, 0.0
        self._buckets[key] = (tokens, now)
        return False, (1.0 - tokens) / rate

    # -- coordination for other transports -------------------------------------------

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        now = time.time()
        held = self._claims.get(key)
        if held is not None and held[1] > now:
            return held[0]
        self._claims[key] = (holder, math.inf if ttl is None else now + ttl)
        return holder

    async def release_key(self, key: str, holder: str) -> None:
        held = self._claims.get(key)
        if held is not None and held[0] == holder:
            del self._claims[key]

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self._dead.setdefault(letter.id, letter)

    # -- results and cancellation ------------------------------------------------------

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        now = time.time()
        for gone in [k for k, (expires, _) in self._results.items() if expires <= now]:
            del self._results[gone]
        self._results[task_id] = (now + ttl, record)

    async def get_result(self, task_id: str) -> bytes | None:
        held = self._results.get(task_id)
        return held[1] if held is not None and held[0] > time.time() else None

    async def cancel(self, task_id: str, ttl: float) -> bool:
        """Delete a waiting message (ready or delayed) with this id, else flag it."""
        for q, heap in self._ready.items():
            kept = [item for item in heap if item.id != task_id]
            if len(kept) < len(heap):
                heapq.heapify(kept)
                self._ready[q] = kept
                return self._cancelled_waiting(task_id, heap)
        kept_delayed = [entry for entry in self._delayed if entry[2].id != task_id]
        if len(kept_delayed) < len(self._delayed):
            gone = [entry[2] for entry in self._delayed if entry[2].id == task_id]
            heapq.heapify(kept_delayed)
            self._delayed = kept_delayed
            return self._cancelled_waiting(task_id, gone)
        now = time.time()
        for flagged in [k for k, expires in self._cancels.items() if expires <= now]:
            del self._cancels[flagged]
        self._cancels[task_id] = now + ttl
        return False

    def _cancelled_waiting(self, task_id: str, items: list[_Item]) -> bool:
        for item in items:
            if item.id == task_id:
                self._release_unique(item)
                self._let_go(item)
        return True

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        now = time.time()
        return {t for t in task_ids if self._cancels.get(t, 0.0) > now}

    # -- dead letters and inspection --------------------------------------------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        rows = [d for d in self._dead.values() if queue is None or d.queue == queue]
        return rows[offset : offset + limit]

    def _select_dead(self, ids: Sequence[str] | None, queue: str | None) -> list[DeadLetter]:
        chosen = set(ids) if ids is not None else None
        return [
            d for d in self._dead.values()
            if (chosen is None or d.id in chosen) and (queue is None or d.queue == queue)
        ]

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        from workhive._envelope import decode, replay_copy

        replayed = []
        for dead in self._select_dead(ids, queue):
            del self._dead[dead.id]
            replayed.append(replay_copy(decode(dead.body)))
        await self.enqueue(replayed)
        return len(replayed)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        chosen = self._select_dead(ids, queue)
        for dead in chosen:
            del self._dead[dead.id]
        return len(chosen)

    async def stats(self) -> list[QueueStats]:
        now = time.time()
        by_queue: dict[str, QueueStats] = {}

        def get(q: str) -> QueueStats:
            return by_queue.setdefault(q, QueueStats(q))

        for q, heap in self._ready.items():
            get(q).ready += len(heap)
        for eta, _, item in self._delayed:
            stat = get(item.queue)
            if eta > now:
                stat.delayed += 1
            else:
                stat.ready += 1
        for _, item in self._leased.values():
            get(item.queue).in_flight += 1
        for dead in self._dead.values():
            get(dead.queue).dead += 1
        for q, (done, failed) in self._totals.items():
            get(q).processed, get(q).failed = done, failed
        return sorted(by_queue.values(), key=lambda s: s.queue)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        now = time.time()  # a killed worker's record goes once the ttl it advertised ran out
        for gone in [k for k, (expires, _) in self._workers.items() if expires <= now]:
            del self._workers[gone]
        self._workers[info.id] = (now + ttl, info)

    async def workers(self) -> list[WorkerInfo]:
        now = time.time()
        return [info for expires, info in self._workers.values() if expires > now]

    async def forget_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    # -- history and pauses: handed to their stores ----------------------------------

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        await self._history.record_history(buckets)

    async def history(self, since: float) -> list[Bucket]:
        return await self._history.history(since)

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._pauses.set_paused(queue, paused)

    async def paused_queues(self) -> set[str]:
        return await self._pauses.paused_queues()

    # -- task browser -------------------------------------------------------------------

    def _listing(self, queue: str, state: TaskState) -> list[QueuedTask]:
        """A sorted copy of the queue's items in ``state`` (ready in fetch order, delayed by
        eta, in flight by lease deadline): fine for the test-sized queues kept here."""
        self._promote(time.time())
        if state == "ready":
            return [QueuedTask(i.id, queue, "ready", i.body)
                    for i in sorted(self._ready.get(queue, []))]
        if state == "delayed":
            return [QueuedTask(i.id, queue, "delayed", i.body, eta)
                    for eta, _, i in sorted(self._delayed, key=lambda e: e[:2])
                    if i.queue == queue]
        return [QueuedTask(i.id, queue, "in_flight", i.body, deadline)
                for deadline, i in sorted(self._leased.values(), key=lambda e: e[0])
                if i.queue == queue]

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        rows = self._listing(queue, state)
        return rows[offset:offset + limit], len(rows)

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        for state in STATES:
            for task in self._listing(queue, state):
                if task.id == task_id:
                    return task
        return None

    async def run_now(self, queue: str, task_id: str) -> bool:
        for entry in self._delayed:
            item = entry[2]
            if item.queue == queue and item.id == task_id:
                self._delayed.remove(entry)
                heapq.heapify(self._delayed)
                item.sort_key = (item.sort_key[0], 0.0, item.sort_key[2])
                heapq.heappush(self._ready.setdefault(queue, []), item)
                await self._notify()
                return True
        return False
