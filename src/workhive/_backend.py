"""The contract between workhive and a broker.

A backend is small on purpose: open/close, ``enqueue`` envelopes, ``fetch`` a batch of leased
deliveries, ``settle`` a batch of outcomes, ``extend`` leases. Everything else is a separate
capability Protocol (events, cron locks, counters, dead letters, inspection) that a backend
declares in :attr:`Backend.capabilities`; :func:`require` turns a missing one into a clear
:class:`~workhive.errors.CapabilityError` instead of a silent drop.

Contracts every backend keeps (the conformance suite checks them):

* ``fetch`` never returns a message whose ``eta`` is in the future, returns higher ``priority``
  first within a queue, and leases what it returns for ``lease`` seconds. A delivery whose lease
  runs out without a settlement becomes fetchable again (lost-worker recovery).
* ``settle`` is the only acknowledgement. Settling a delivery whose lease was lost is a no-op
  (the message belongs to whoever re-fetched it), never an error.
* Batched calls are atomic per message, not per batch; order of settlements does not matter.
* A backend translates its driver's errors into :mod:`workhive.errors` (``BackendUnavailable``
  when the broker cannot be reached).
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from workhive._envelope import Envelope
from workhive.errors import CapabilityError


class Capability(enum.StrEnum):
    """What a backend can do beyond accepting messages."""

    QUEUE = "queue"  # durable tasks with ack / retry
    DELAY = "delay"  # eta / delay
    PRIORITY = "priority"  # higher priority fetched first
    DEAD_LETTER = "dead_letter"  # SupportsDeadLetters
    UNIQUE = "unique"  # idempotency keys and unique tasks
    LEASES = "leases"  # expired leases are redelivered (killed worker recovery)
    EVENTS = "events"  # SupportsEvents: durable fan-out to subscriber groups
    CRON = "cron"  # SupportsCron: once-per-tick locks
    COUNTERS = "counters"  # SupportsCounters: shared rate-limit counters
    INSPECT = "inspect"  # SupportsInspect: queue stats and worker heartbeats


@dataclass(slots=True)
class Delivery:
    """One leased message. ``receipt`` is the backend's private handle (row id + lease token...)."""

    queue: str
    body: bytes
    receipt: Any = None


Action = Literal["ack", "retry", "dead", "release"]


@dataclass(slots=True)
class Settlement:
    """What to do with a delivery.

    ``ack``: done, remove. ``retry``: store ``body`` (the next-attempt envelope) and make it
    fetchable at ``eta``. ``dead``: move to the dead-letter queue with ``reason`` (``body`` may
    replace the stored bytes). ``release``: give it back untouched, fetchable now (shutdown).
    """

    delivery: Delivery
    action: Action
    body: bytes | None = None
    eta: float = 0.0
    reason: str = ""


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
    """The core every backend implements."""

    name: str
    capabilities: frozenset[Capability]

    async def open(self) -> None:
        """Connect and create whatever schema/streams are needed. Idempotent."""

    async def close(self) -> None:
        """Release connections. Unsettled deliveries stay leased until their lease expires."""

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes durably; one result per envelope, in order."""
        ...

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready messages, waiting at most ``wait`` seconds for one."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply outcomes (ack / retry / dead / release) for a batch of deliveries."""

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Push the lease of still-running deliveries ``lease`` seconds into the future."""


@runtime_checkable
class SupportsEvents(Protocol):
    """Durable fan-out: every bound group gets its own copy of each event."""

    async def bind(self, pattern: str, group: str) -> None:
        """Persist that ``group`` receives events whose name matches ``pattern``."""

    async def publish(self, envelope: Envelope) -> int:
        """Store one copy per bound group (see :func:`fan_out`); returns the copy count."""
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
class SupportsInspect(Protocol):
    async def stats(self) -> list[QueueStats]: ...

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...

    async def forget_worker(self, worker_id: str) -> None: ...


_PROTOCOL_OF: dict[Capability, type[Any]] = {
    Capability.EVENTS: SupportsEvents,
    Capability.CRON: SupportsCron,
    Capability.COUNTERS: SupportsCounters,
    Capability.DEAD_LETTER: SupportsDeadLetters,
    Capability.INSPECT: SupportsInspect,
}

SUGGESTIONS: dict[Capability, str] = {
    Capability.QUEUE: "use the 'sqlite', 'redis' or 'postgres' backend for durable tasks",
    Capability.EVENTS: "use the 'sqlite', 'redis' or 'postgres' backend for durable groups",
}


def require(backend: Backend, capability: Capability, what: str) -> None:
    """Raise :class:`CapabilityError` if ``backend`` does not declare ``capability``."""
    if capability not in backend.capabilities:
        hint = SUGGESTIONS.get(capability, "")
        raise CapabilityError(
            f"the {backend.name!r} backend does not support {capability.value} ({what})"
            + (f"; {hint}" if hint else "")
        )


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


def topic_matches(pattern: str, topic: str) -> bool:
    """Glob match (``users.*``, ``*``); exact names match themselves."""
    return pattern == topic or fnmatch.fnmatchcase(topic, pattern)


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
