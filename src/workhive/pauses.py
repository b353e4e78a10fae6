"""Paused queues: workers stop fetching a queue while it is paused; enqueues still land.

Why in the backend: the dashboard that pauses a queue and the workers that must obey run in
different processes (often on different hosts), so the set of paused queues is shared state
(:class:`SupportsPause`). A worker asks for it at most every :attr:`PauseWatch.every` seconds,
not before every fetch, so a pause takes effect within about a second; tasks already running
finish normally.

Where the set lives: in the backend itself (memory, SQLite, Redis, PostgreSQL, NATS), else in
the coordination store of a transport built with ``coordination=`` (RabbitMQ, Kafka): see
:func:`pauses_of`. A transport that receives messages before ``fetch`` asks for them
(:class:`ConsumesAhead`, RabbitMQ) is also told the paused set, so it stops receiving a
paused queue's messages and gives back the ones it holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence, Set
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from workhive.errors import BackendError

if TYPE_CHECKING:
    from workhive.backend import Backend

logger = logging.getLogger(__name__)


@runtime_checkable
class SupportsPause(Protocol):
    """A backend that can pause queues (memory, SQLite, Redis, PostgreSQL, NATS)."""

    async def set_paused(self, queue: str, paused: bool) -> None:
        """Pause (``True``) or resume (``False``) ``queue``; idempotent."""

    async def paused_queues(self) -> set[str]:
        """The queues paused right now."""
        ...


@runtime_checkable
class ConsumesAhead(Protocol):
    """A transport that receives a queue's messages before ``fetch`` asks for them (RabbitMQ's
    prefetch window). Left out of ``fetch`` they would not run, but they would stay held
    unacknowledged for the whole pause (RabbitMQ's ``consumer_timeout`` closes a channel
    that holds one too long); told the paused queues, it stops receiving theirs and gives
    back what it holds. A queue is received again when ``fetch`` asks for it."""

    async def stop_consuming(self, queues: Set[str]) -> None:
        """Stop receiving messages of ``queues`` (the paused ones) and give back theirs."""


def pauses_of(backend: Backend) -> SupportsPause | None:
    """Where ``backend`` keeps its paused queues: itself, else (a transport built with
    ``coordination=``) the transport when it can pause, then its coordination store; None
    when nothing can."""
    for candidate in (backend, getattr(backend, "transport", None),
                      getattr(backend, "coordination", None)):
        if isinstance(candidate, SupportsPause):
            return candidate
    return None


class PauseWatch:
    """The worker's cached view of the paused queues, refreshed every ``every`` seconds.

    If the backend cannot be asked, the last known set stays in force (a broker hiccup
    neither resumes nor pauses anything). A :class:`ConsumesAhead` backend is told the set at
    each refresh (it acts only on paused queues it still receives).
    """

    def __init__(self, backend: Backend, every: float = 1.0) -> None:
        self.store = pauses_of(backend)
        self.consumer = backend if isinstance(backend, ConsumesAhead) else None
        self.every = every
        self._paused: set[str] = set()
        self._checked = -float("inf")

    async def active(self, queues: Sequence[str]) -> list[str]:
        """``queues`` without the paused ones."""
        if self.store is None:
            return list(queues)
        now = time.monotonic()
        if now - self._checked >= self.every:
            self._checked = now
            try:
                self._paused = await self.store.paused_queues()
                if self.consumer is not None:
                    await self.consumer.stop_consuming(self._paused)
            except (BackendError, OSError) as exc:
                logger.warning("could not apply the paused queues (keeping the last known): "
                               "%s", exc)
        return [q for q in queues if q not in self._paused]

    def is_paused(self, queue: str) -> bool:
        """Whether ``queue`` was paused when last asked (an idle check skips paused queues:
        their tasks wait for a resume, not for this worker)."""
        return queue in self._paused


class InMemoryPauses:
    """:class:`SupportsPause` in a set (the memory backend keeps its paused queues in one)."""

    def __init__(self) -> None:
        self._paused: set[str] = set()

    async def set_paused(self, queue: str, paused: bool) -> None:
        if paused:
            self._paused.add(queue)
        else:
            self._paused.discard(queue)

    async def paused_queues(self) -> set[str]:
        return set(self._paused)
