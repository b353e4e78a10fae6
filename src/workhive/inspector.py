"""A read-only view over a hive and its backend, for the CLI and the dashboard.

Why a separate role: the CLI and the dashboard must show the same numbers, and neither should
know backend internals. Everything here goes through the capability Protocols
(:class:`~workhive.backend.SupportsInspect`, :class:`~workhive.backend.SupportsDeadLetters`),
so a backend lacking one gives a :class:`~workhive.errors.CapabilityError` naming it, not an
``AttributeError``. Nothing here writes: DLQ replay and purge are commands, not views.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from workhive._cron import next_tick
from workhive._envelope import Envelope, decode
from workhive.backend import (
    Backend,
    Capability,
    DeadLetter,
    QueueStats,
    SupportsDeadLetters,
    SupportsInspect,
    WorkerInfo,
    require,
)
from workhive.browse import STATES, QueuedTask, SupportsBrowse, TaskState, browser_of
from workhive.errors import CapabilityError, SerializationError, WorkhiveError
from workhive.hive import Hive

_PAGE = 500
#: a search reads at most this many tasks or dead letters (it decodes each one)
SEARCH_LIMIT = 20_000


class DeadLetterNotFound(WorkhiveError, LookupError):
    """No dead letter (or more than one) matches an id; the message says which."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Queue counts and live workers at one moment (``taken_at``, unix seconds)."""

    backend: str
    taken_at: float
    queues: list[QueueStats]
    workers: list[WorkerInfo]


@dataclass(frozen=True, slots=True)
class QueueRate:
    """Settlements per second between two snapshots (``failed`` counts retried attempts too)."""

    queue: str
    processed_per_s: float
    failed_per_s: float


S = TypeVar("S", DeadLetter, QueuedTask)


@dataclass(frozen=True, slots=True)
class StoredView(Generic[S]):
    """Something a backend stores (a dead letter, a queued task) with its envelope decoded.

    ``envelope`` is None, and ``decode_error`` says why, for bytes that do not decode: one
    malformed message is listed as such rather than failing the whole listing.
    """

    stored: S
    envelope: Envelope | None
    decode_error: str = ""

    @classmethod
    def of(cls, stored: S) -> Self:
        try:
            return cls(stored, decode(stored.body))
        except SerializationError as exc:
            return cls(stored, None, str(exc))

    @property
    def id(self) -> str:
        return self.stored.id

    @property
    def name(self) -> str:
        return self.envelope.name if self.envelope is not None else "<malformed>"


class DeadLetterView(StoredView[DeadLetter]):
    """A dead letter with its envelope decoded."""

    __slots__ = ()

    @property
    def letter(self) -> DeadLetter:
        return self.stored

    @property
    def attempts(self) -> int:
        """Attempts made: each failed attempt leaves one record in the history."""
        return len(self.envelope.history) if self.envelope is not None else 0


class TaskNotFound(WorkhiveError, LookupError):
    """No task with this id waits or runs in the queue (it may have finished)."""


class TaskView(StoredView[QueuedTask]):
    """A task waiting or running in a queue, with its envelope decoded."""

    __slots__ = ()

    @property
    def task(self) -> QueuedTask:
        return self.stored


def _matches(needle: str, ident: str, envelope: Envelope | None, *extra: str) -> bool:
    """Whether a search (case-insensitive) hits the id, the task name or an error text."""
    hay = [ident, *extra]
    if envelope is not None:
        hay.append(envelope.name)
        hay += [r.error for r in envelope.history] + [r.traceback for r in envelope.history]
    return any(needle in h.lower() for h in hay)


@dataclass(frozen=True, slots=True)
class CronEntry:
    """A registered cron job and when it fires next (``target`` is "task X" / "publish Y")."""

    name: str
    schedule: str
    next_fire: float
    target: str


@dataclass(frozen=True, slots=True)
class Declaration:
    """One task / subscriber / cron job a module declared, and whether its flag let it in."""

    kind: str
    name: str
    module: str
    detail: str
    flag: str | None = None
    enabled: bool = True


class Inspector:
    """Read-only questions about ``hive``; the caller opens and closes the hive."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive

    async def snapshot(self) -> Snapshot:
        """Per-queue counts (queues the hive consumes appear even when empty) and workers."""
        inspect = inspect_of(self.hive.backend, "queue statistics")
        await self.hive.open()
        stats = {s.queue: s for s in await inspect.stats()}
        for queue in self.hive.queues():
            stats.setdefault(queue, QueueStats(queue))
        workers = sorted(await inspect.workers(), key=lambda w: w.id)
        return Snapshot(self.hive.backend.name, time.time(),
                        sorted(stats.values(), key=lambda s: s.queue), workers)

    @staticmethod
    def rates(before: Snapshot, after: Snapshot) -> dict[str, QueueRate]:
        """Per-queue rates between two snapshots; counters that went backwards read as 0."""
        elapsed = max(after.taken_at - before.taken_at, 1e-9)
        old = {s.queue: s for s in before.queues}
        rates = {}
        for stat in after.queues:
            prev = old.get(stat.queue, QueueStats(stat.queue))
            rates[stat.queue] = QueueRate(
                stat.queue,
                max(stat.processed - prev.processed, 0) / elapsed,
                max(stat.failed - prev.failed, 0) / elapsed,
            )
        return rates

    def _dead(self) -> SupportsDeadLetters:
        return dead_letters_of(self.hive.backend, "dead-letter queue")

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetterView]:
        dead = self._dead()
        await self.hive.open()
        return [DeadLetterView.of(d) for d in await dead.dead_letters(queue, limit, offset)]

    async def find_dead(self, prefix: str, queue: str | None = None) -> list[DeadLetterView]:
        """Dead letters whose id starts with ``prefix`` (ids are long; people paste a prefix)."""
        dead = self._dead()
        await self.hive.open()
        found: list[DeadLetterView] = []
        offset = 0
        while True:
            page = await dead.dead_letters(queue, _PAGE, offset)
            found += [DeadLetterView.of(d) for d in page if d.id.startswith(prefix)]
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    async def dead_letter(self, id_or_prefix: str, queue: str | None = None) -> DeadLetterView:
        """The dead letter with this id, else the one whose id starts with it.

        Raises :class:`DeadLetterNotFound` (``ambiguous=True`` when several match) with a
        message a person can act on; the CLI and the dashboard both resolve ids here.
        """
        if not id_or_prefix.strip():
            raise DeadLetterNotFound("an empty dead-letter id matches nothing")
        matches = await self.find_dead(id_or_prefix, queue)
        exact = [m for m in matches if m.id == id_or_prefix]
        if exact or len(matches) == 1:
            return (exact or matches)[0]
        if not matches:
            where = f" in queue {queue!r}" if queue else ""
            raise DeadLetterNotFound(f"no dead letter with id {id_or_prefix!r}{where} (it may "
                                     "have been replayed or purged already)")
        raise DeadLetterNotFound(f"id prefix {id_or_prefix!r} is ambiguous: it matches "
                                 f"{len(matches)} dead letters; give more characters",
                                 ambiguous=True)

    async def search_dead(self, needle: str, queue: str | None = None, limit: int = 100,
                          offset: int = 0) -> tuple[list[DeadLetterView], int]:
        """Dead letters whose id, task name, reason or error text contains ``needle``
        (case-insensitive), a page of them and how many match (of the first
        :data:`SEARCH_LIMIT` read)."""
        dead = self._dead()
        await self.hive.open()
        found: list[DeadLetterView] = []
        needle, seen = needle.lower(), 0
        while seen < SEARCH_LIMIT:
            page = await dead.dead_letters(queue, _PAGE, seen)
            found += [v for v in map(DeadLetterView.of, page)
                      if _matches(needle, v.id, v.envelope, v.letter.reason)]
            seen += len(page)
            if len(page) < _PAGE:
                break
        return found[offset:offset + limit], len(found)

    def _browser(self) -> SupportsBrowse:
        store = browser_of(self.hive.backend)
        if store is None:
            raise CapabilityError(f"the {self.hive.backend.name!r} backend cannot list the tasks "
                                  "of a queue (memory, sqlite, redis and postgres can); its "
                                  "counts are on the overview")
        return store

    async def tasks(self, queue: str, state: TaskState, limit: int = 50, offset: int = 0,
                    search: str = "") -> tuple[list[TaskView], int]:
        """A page of the queue's tasks in ``state`` and the total; with ``search``, only
        those whose id, name or error text contains it (of the first :data:`SEARCH_LIMIT`)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        store = self._browser()
        await self.hive.open()
        if not search:
            rows, total = await store.browse(queue, state, limit, offset)
            return [TaskView.of(t) for t in rows], total
        found: list[TaskView] = []
        needle, seen = search.lower(), 0
        while seen < SEARCH_LIMIT:
            rows, _ = await store.browse(queue, state, _PAGE, seen)
            found += [v for v in map(TaskView.of, rows) if _matches(needle, v.id, v.envelope)]
            seen += len(rows)
            if len(rows) < _PAGE:
                break
        return found[offset:offset + limit], len(found)

    async def task(self, queue: str, task_id: str) -> TaskView:
        """One task of the queue by id; :class:`TaskNotFound` when it is not there."""
        store = self._browser()
        await self.hive.open()
        found = await store.find_task(queue, task_id)
        if found is None:
            raise TaskNotFound(f"no task {task_id!r} waits or runs in queue {queue!r} (it may "
                               "have finished, been deleted or gone to the dead letters)")
        return TaskView.of(found)

    def cron_jobs(self, now: float | None = None) -> list[CronEntry]:
        """The hive's cron jobs with their next fire time after ``now`` (pure, no backend)."""
        when = time.time() if now is None else now
        entries = []
        for job in self.hive.crons.values():
            target = f"task {job.task}" if job.task is not None else f"publish {job.publish}"
            entries.append(CronEntry(job.name, job.schedule, next_tick(job.schedule, when), target))
        return sorted(entries, key=lambda e: (e.next_fire, e.name))

    def declarations(self) -> list[Declaration]:
        """Everything the included modules declared, including what a feature flag kept out."""
        hive = self.hive
        subscribed = {s.name for s in hive.subscribers}
        out: list[Declaration] = []
        for module in hive.modules:
            for task in module.tasks:
                out.append(Declaration("task", task.name, module.name,
                                       f"queue {task.options.queue}", task.flag,
                                       task.name in hive.tasks))
            for sub in module.subscribers:
                out.append(Declaration("subscriber", sub.pattern, module.name,
                                       f"group {sub.group}", sub.flag, sub.name in subscribed))
            for job in module.crons:
                target = f"task {job.task}" if job.task else f"publish {job.publish}"
                out.append(Declaration("cron", job.name, module.name,
                                       f"{job.schedule} -> {target}", job.flag,
                                       job.name in hive.crons))
        return out


def inspect_of(backend: Backend, what: str) -> SupportsInspect:
    """The backend as :class:`SupportsInspect`, or CapabilityError naming ``what``.

    (Not :func:`workhive.backend.capability`: mypy refuses a Protocol as its ``type[P]``.)
    """
    require(backend, Capability.INSPECT, what)
    if not isinstance(backend, SupportsInspect):  # pragma: no cover - a backend lying
        raise CapabilityError(f"{backend.name!r} declares inspect but lacks its methods")
    return backend


def dead_letters_of(backend: Backend, what: str) -> SupportsDeadLetters:
    """The backend as :class:`SupportsDeadLetters`, or CapabilityError naming ``what``."""
    require(backend, Capability.DEAD_LETTER, what)
    if not isinstance(backend, SupportsDeadLetters):  # pragma: no cover - a backend lying
        raise CapabilityError(f"{backend.name!r} declares dead_letter but lacks its methods")
    return backend


def task_json(view: TaskView, *, full: bool) -> dict[str, Any]:
    """A stored task as JSON (the dashboard API); ``full`` adds payload, headers and the
    history of failed attempts with tracebacks."""
    env = view.envelope
    history = env.history if env is not None else ()
    data: dict[str, Any] = {
        "id": view.id, "queue": view.task.queue, "state": view.task.state, "name": view.name,
        "at": view.task.at or None, "attempt": env.attempt if env is not None else None,
        "enqueued_at": (env.enqueued_at or None) if env is not None else None,
        "last_error": history[-1].error if history else "",
    }
    if full:
        data["payload"] = env.payload if env is not None else None
        data["headers"] = dict(env.headers) if env is not None else {}
        data["priority"] = env.priority if env is not None else None
        data["max_retries"] = env.max_retries if env is not None else None
        data["decode_error"] = view.decode_error or None
        data["history"] = [{"attempt": r.attempt, "at": r.at, "error": r.error,
                            "traceback": r.traceback} for r in history]
    return data


def dead_letter_json(view: DeadLetterView, *, full: bool) -> dict[str, Any]:
    """A dead letter as JSON (CLI ``--json`` and the dashboard API); ``full`` adds payload,
    decode error and the attempt history with tracebacks."""
    env = view.envelope
    data: dict[str, Any] = {"id": view.id, "queue": view.letter.queue, "name": view.name,
                            "kind": env.kind if env is not None else None,
                            "attempts": view.attempts, "reason": view.letter.reason,
                            "failed_at": view.letter.failed_at}
    if full:
        data["payload"] = env.payload if env is not None else None
        data["decode_error"] = view.decode_error or None
        data["history"] = [{"attempt": r.attempt, "at": r.at, "error": r.error,
                            "traceback": r.traceback} for r in (env.history if env else ())]
    return data
