"""The contract between workhive and a broker: everything a backend author needs, in one module.

Two contracts, because brokers move messages well and coordinate workers badly:

* **Transport** (:class:`Backend`): ``open``/``close``, ``enqueue`` envelopes, ``fetch`` a batch
  of deliveries, ``settle`` a batch of outcomes, and ``extend`` leases where leases are timed.
  Events (:class:`SupportsEvents`) fan out where the broker can (exchange bindings, consumer
  groups), so ``publish`` may not know the copy count.
* **Coordination** (:class:`Coordination`): cron tick claims, rate-limit counters, unique and
  idempotency keys, worker heartbeats, dead-letter storage and browsing. SQLite, Redis and
  PostgreSQL are their own coordination store; a broker without a key-value store (RabbitMQ)
  takes one from elsewhere: ``Hive("amqp://...", coordination="redis://...")``, composed by
  :class:`workhive.backends.composite.Composite`.

What a backend can do is declared in :class:`Features` (as Watermill's ``Features`` does);
:func:`require` turns a missing capability into a :class:`CapabilityError` that says which
setting fixes it, at registration or enqueue time, never a silent drop.

Contracts every transport keeps (``workhive.testing.conformance`` checks them):

* ``fetch`` never returns a message before its ``eta``; it may return it at most
  :attr:`Features.delay_resolution` seconds late. Higher priority *bands* come first
  (:func:`band_of`), FIFO within a band.
* Lost-worker recovery: a delivery that is never settled comes back. With **timed** leases it is
  fetchable again after ``lease`` seconds (``extend`` pushes that back); with **session** leases
  it comes back when the consumer's connection or group membership dies, and ``extend`` does
  nothing. A backend may declare :attr:`Features.max_hold`, the longest it lets a delivery stay
  unsettled (RabbitMQ's ``consumer_timeout``); a task timeout above it is refused.
* ``settle`` is the only acknowledgement. Settling a delivery whose lease was lost is a no-op.
  ``retry`` and ``dead`` may be "publish the next message, then ack the old one": after a crash
  between the two steps the same attempt may run once more, never more. Settlements of one batch
  are applied in order.
* A backend translates its driver's errors into :mod:`workhive.errors` (``BackendUnavailable``
  when the broker cannot be reached).
* A backend that declares :attr:`Capability.ORDERED_KEYS` (``Features(ordered_keys=True)``)
  runs messages with the same ``Envelope.ordering_key`` (same queue, same priority band) one at
  a time, in the order they were enqueued; a retry of one holds the messages behind it until it
  succeeds or goes to the dead letters.

Third-party backends register a URL scheme in the ``workhive.backends`` entry-point group
(``myscheme = "mypkg.backend:MyBackend"``); the class needs a ``from_url(url, **options)``
classmethod. The built-in backends register the same way.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from workhive._envelope import Envelope
from workhive.errors import (
    BackendError,
    BackendUnavailable,
    CapabilityError,
    SerializationError,
)


class Capability(enum.StrEnum):
    """What a backend can do beyond accepting messages."""

    # transport
    QUEUE = "queue"  # durable tasks with ack / retry
    DELAY = "delay"  # eta / delay
    PRIORITY = "priority"  # priority bands (see Features.priority_bands)
    EVENTS = "events"  # SupportsEvents: durable fan-out to subscriber groups
    # coordination
    DEAD_LETTER = "dead_letter"  # SupportsDeadLetters: browse, replay, purge
    UNIQUE = "unique"  # idempotency keys and unique tasks
    CRON = "cron"  # SupportsCron: once-per-tick claims
    COUNTERS = "counters"  # SupportsCounters: shared rate-limit counters
    INSPECT = "inspect"  # SupportsInspect: queue stats and worker heartbeats
    # ordering (declared with Features(ordered_keys=True), see Features)
    ORDERED_KEYS = "ordered_keys"  # same ordering key: one at a time, in enqueue order
    # declared with Features(results=True) / Features(cancel=True), see Features
    RESULTS = "results"  # SupportsResults: task results, status and progress with a ttl
    CANCEL = "cancel"  # SupportsCancel: delete pending tasks, flag running ones


#: capabilities a coordination store provides to a transport that lacks them
COORDINATION = frozenset({Capability.DEAD_LETTER, Capability.UNIQUE, Capability.CRON,
                          Capability.COUNTERS, Capability.INSPECT, Capability.RESULTS})

#: capabilities a backend claims only through a flag of :class:`Features` of their own
_FLAGGED = (("ordered_keys", Capability.ORDERED_KEYS), ("results", Capability.RESULTS),
            ("cancel", Capability.CANCEL))

LeaseKind = Literal["timed", "session", "none"]


@dataclass(frozen=True, slots=True)
class Features:
    """A backend's declaration of what it does, read by the hive, the worker and the
    conformance suite.

    ``lease``: ``timed`` (expiry redelivers, ``extend`` moves it), ``session`` (a dead connection
    or group member redelivers) or ``none`` (no lost-worker recovery). ``max_hold``: the longest
    a delivery may stay unsettled before the broker takes it back (None: no limit).
    ``priority_bands``: how many priority levels are kept apart (None: every integer is its own
    band). ``delay_resolution``: how late (s) a delayed message may become fetchable.

    ``ordered_keys``: the backend keeps per-key order (:attr:`Capability.ORDERED_KEYS`). It is a
    flag of its own, and ``capabilities`` is made to agree with it, because backends say "every
    capability" as ``frozenset(Capability)``: that spelling, written before per-key order existed,
    must not claim it. A backend that keeps per-key order says so here; listing the capability
    alone is ignored. ``results`` (:attr:`Capability.RESULTS`) and ``cancel``
    (:attr:`Capability.CANCEL`) came later and follow the same rule.
    """

    capabilities: frozenset[Capability]
    lease: LeaseKind = "timed"
    max_hold: float | None = None
    priority_bands: int | None = None
    delay_resolution: float = 0.0
    ordered_keys: bool = False
    results: bool = False
    cancel: bool = False

    def __post_init__(self) -> None:
        caps = set(self.capabilities)
        for flag, capability in _FLAGGED:
            if getattr(self, flag):
                caps.add(capability)
            else:
                caps.discard(capability)
        object.__setattr__(self, "capabilities", frozenset(caps))

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities


def band_of(priority: int, bands: int | None) -> int:
    """The band a priority falls in: priorities below 0 share band 0, priorities at or above
    ``bands - 1`` share the top band; unbounded backends keep every priority apart."""
    if bands is None:
        return priority
    return min(max(priority, 0), bands - 1)


@dataclass(slots=True)
class Delivery:
    """One fetched message. ``queue`` is the queue it came from (``@group`` for a subscriber
    group's copy of an event); ``receipt`` is the backend's private handle (row id + lease
    token, a delivery tag...)."""

    queue: str
    body: bytes
    receipt: Any = None


Action = Literal["ack", "retry", "dead", "release"]


@dataclass(slots=True)
class Settlement:
    """What to do with a delivery (built by :func:`workhive._outcome.settlement_for`).

    ``ack``: done, remove. ``retry``: the next attempt is ``body``, fetchable at ``eta`` (unix
    seconds); a broker publishes it and then acks the delivery. ``dead``: keep it as a dead
    letter with ``reason`` (``body`` replaces the stored bytes when given). ``release``: give it
    back untouched, fetchable now (shutdown). ``envelope`` is the decoded message when the worker
    could decode it (None for malformed bytes); a coordination store reads its unique key.
    """

    delivery: Delivery
    action: Action
    body: bytes | None = None
    eta: float = 0.0
    reason: str = ""
    envelope: Envelope | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """The id stored for an enqueue; ``duplicate`` when an idempotency/unique key matched."""

    id: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that ran out of attempts or could not be handled."""

    id: str
    queue: str
    body: bytes
    reason: str
    failed_at: float


@dataclass(slots=True)
class QueueStats:
    """Counts for one queue at one moment; ``processed``/``failed`` are running totals."""

    queue: str
    ready: int = 0
    delayed: int = 0
    in_flight: int = 0
    dead: int = 0
    processed: int = 0
    failed: int = 0


@dataclass(slots=True)
class WorkerInfo:
    """A worker's heartbeat record."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    seen_at: float
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """The transport every backend implements."""

    name: str
    features: Features

    async def open(self) -> None:
        """Connect and create whatever schema/streams are needed. Idempotent."""

    async def close(self) -> None:
        """Release connections. Unsettled deliveries come back (timed leases: when they expire;
        session leases: now)."""

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes durably; one result per envelope, in order."""
        ...

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Up to ``limit`` ready messages, waiting at most ``wait`` seconds for one. Timed leases
        hold them for ``lease`` seconds; session leases ignore ``lease``."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply outcomes (ack / retry / dead / release) for a batch of deliveries, in order."""

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Push the lease of still-running deliveries ``lease`` seconds into the future (timed
        leases only; a session-lease backend does nothing)."""


@runtime_checkable
class SupportsEvents(Protocol):
    """Durable fan-out: every bound group gets its own copy of each event."""

    async def bind(self, pattern: str, group: str) -> None:
        """Persist that ``group`` receives events whose name matches ``pattern``."""

    async def publish(self, envelope: Envelope) -> int | None:
        """Deliver one copy to every bound group; the copy count, or None when the broker fans
        out and does not say (an exchange, consumer groups)."""
        ...


@runtime_checkable
class SupportsCron(Protocol):
    async def claim_tick(self, job: str, tick: float) -> bool:
        """True for exactly one caller per ``(job, tick)`` across all processes."""
        ...


@runtime_checkable
class SupportsCounters(Protocol):
    """Shared counters for rate limits; stored in the broker, not in process memory."""

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        """Count one hit in the fixed window of ``period`` s; ``(allowed, retry_after_s)``."""
        ...

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Token bucket refilled at ``rate``/s up to ``burst``; ``(allowed, retry_after_s)``."""
        ...


@runtime_checkable
class SupportsDeadLetters(Protocol):
    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]: ...

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Move dead letters back to their queue (attempts reset); all of them when ``ids=None``."""
        ...

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        ...


@runtime_checkable
class SupportsCapacity(Protocol):
    """A transport that pushes deliveries (a prefetch window) wants to know how many this
    process can run at once; the worker tells it before the first fetch."""

    def set_capacity(self, slots: int) -> None: ...


@runtime_checkable
class SupportsStats(Protocol):
    """Queue depths; a transport offers them when its broker can count (the worker's
    ``run(until_idle=True)`` needs them to know when it is done)."""

    async def stats(self) -> list[QueueStats]: ...


@runtime_checkable
class SupportsInspect(SupportsStats, Protocol):
    """Queue depths plus worker heartbeats."""

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...

    async def forget_worker(self, worker_id: str) -> None: ...


@runtime_checkable
class Coordination(SupportsCron, SupportsCounters, SupportsDeadLetters, SupportsInspect,
                   Protocol):
    """A coordination store: what a hive needs besides moving messages.

    SQLite, Redis, PostgreSQL and memory backends are one. A transport that is not gets these
    from a separate store through :class:`workhive.backends.composite.Composite`, which calls
    the three methods below in addition to the capability protocols.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Make ``holder`` own ``key`` unless someone does; return the owner (``holder`` when
        the claim succeeded). ``ttl=None`` holds it until :meth:`release_key`."""
        ...

    async def release_key(self, key: str, holder: str) -> None:
        """Drop ``key`` if ``holder`` still owns it."""

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters for browsing, replay and purge (ids are unique per letter)."""


@runtime_checkable
class SupportsResults(Protocol):
    """Task results and status records: opaque bytes (encoded by :mod:`workhive.results`)
    under a task id, gone after ``ttl`` seconds. The last write wins."""

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None: ...

    async def get_result(self, task_id: str) -> bytes | None:
        """The record, or None when there is none (never stored, or expired)."""
        ...


@runtime_checkable
class SupportsCancel(Protocol):
    """Cancellation: a pending or delayed task is deleted; one that is running (or whose
    state is unknown) is flagged, and the worker running it polls :meth:`cancelled`."""

    async def cancel(self, task_id: str, ttl: float) -> bool:
        """Delete the task if it waits in a queue (True). Otherwise flag ``task_id`` as
        cancelled for ``ttl`` seconds and return False."""
        ...

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        """Which of ``task_ids`` are flagged as cancelled."""
        ...


SUGGESTIONS: dict[Capability, str] = {
    Capability.QUEUE: "use the 'sqlite', 'redis', 'postgres', 'rabbitmq', 'nats' or 'kafka' "
                      "backend for durable tasks",
    Capability.EVENTS: "use the 'sqlite', 'redis', 'postgres', 'rabbitmq', 'nats' or 'kafka' "
                       "backend for durable groups",
    Capability.ORDERED_KEYS: "use the 'kafka' backend (or 'memory' in tests), which runs "
                             "messages of one ordering key one at a time, in order; or drop "
                             "ordering_key",
    Capability.RESULTS: "use the 'sqlite', 'redis', 'postgres' or 'memory' backend, or give "
                        "this one a coordination store that keeps results: Hive(..., "
                        "coordination='redis://...', 'postgresql://...' or "
                        "'sqlite:///coordination.db'), or worker.coordination in workhive.yaml",
    Capability.CANCEL: "use the 'sqlite', 'redis', 'postgres' or 'memory' backend, or give "
                       "this one a coordination store that keeps cancel flags: Hive(..., "
                       "coordination='redis://...', 'postgresql://...' or "
                       "'sqlite:///coordination.db'), or worker.coordination in workhive.yaml",
}
_COORDINATION_HINT = ("give it a coordination store: Hive(..., coordination='redis://...', "
                      "'nats://...' or 'sqlite:///coordination.db'), or worker.coordination in "
                      "workhive.yaml")


def require(backend: Backend, capability: Capability, what: str) -> None:
    """Raise :class:`CapabilityError` if ``backend`` does not declare ``capability``; the
    message says which setting fixes it."""
    if capability not in backend.features.capabilities:
        hint = SUGGESTIONS.get(capability, "")
        if not hint and capability in COORDINATION:
            hint = _COORDINATION_HINT
        raise CapabilityError(
            f"the {backend.name!r} backend does not support {capability.value} ({what})"
            + (f"; {hint}" if hint else "")
        )


def has(backend: Backend, capability: Capability) -> bool:
    """Whether ``backend`` declares ``capability``."""
    return capability in backend.features.capabilities


def events_of(backend: Backend, what: str) -> SupportsEvents:
    """The backend as a publisher/binder of events, or CapabilityError.

    Checks the methods, not :attr:`Capability.EVENTS`: at-most-once pub/sub backends publish
    without offering durable groups.
    """
    if not isinstance(backend, SupportsEvents):
        require(backend, Capability.EVENTS, what)
        raise CapabilityError(f"{backend.name!r} cannot publish events ({what})")
    return backend


def event_queue(group: str) -> str:
    """The queue that holds one subscriber group's copy of its events."""
    return f"@{group}"


def event_group(queue: str) -> str | None:
    """The subscriber group whose queue this is (``@billing`` -> ``billing``), else None."""
    return queue[1:] if queue.startswith("@") else None


def _words_match(pattern: Sequence[str], words: Sequence[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return _words_match(rest, words) or (bool(words) and _words_match(pattern, words[1:]))
    if not words:
        return False
    return head in ("*", words[0]) and _words_match(rest, words[1:])


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """Whether an event name matches a subscription pattern.

    Names are dot-separated words. ``*`` matches exactly one word, ``#`` zero or more words;
    anything else matches itself (``users.*`` matches ``users.created``, not
    ``users.created.eu``; ``users.#`` matches both and ``users``). These are AMQP topic
    semantics, so brokers route with the same meaning (:func:`to_amqp`).
    """
    return pattern == topic or _words_match(pattern.split("."), topic.split("."))


def to_amqp(pattern: str) -> str:
    """The AMQP topic binding key with the same meaning as ``pattern`` (identical words)."""
    return pattern


def fan_out(envelope: Envelope, groups: Sequence[str]) -> list[Envelope]:
    """One copy of an event per subscriber group, each in that group's queue.

    Each copy is its own message: id ``<event id>@<group>``, and idempotency/unique keys
    qualified by the group, so one group's copy never dedupes another's.
    """

    def scoped(key: str | None, group: str) -> str | None:
        return None if key is None else f"{key}@{group}"

    return [
        msgspec.structs.replace(
            envelope,
            id=f"{envelope.id}@{g}",
            group=g,
            queue=event_queue(g),
            idempotency_key=scoped(envelope.idempotency_key, g),
            unique_key=scoped(envelope.unique_key, g),
        )
        for g in sorted(set(groups))
    ]


__all__ = [
    "COORDINATION",
    "Action",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Capability",
    "CapabilityError",
    "Coordination",
    "DeadLetter",
    "Delivery",
    "EnqueueResult",
    "Envelope",
    "Features",
    "LeaseKind",
    "QueueStats",
    "SerializationError",
    "Settlement",
    "SupportsCancel",
    "SupportsCapacity",
    "SupportsCounters",
    "SupportsCron",
    "SupportsDeadLetters",
    "SupportsEvents",
    "SupportsInspect",
    "SupportsResults",
    "SupportsStats",
    "WorkerInfo",
    "band_of",
    "event_group",
    "event_queue",
    "events_of",
    "fan_out",
    "has",
    "require",
    "to_amqp",
    "topic_matches",
]
