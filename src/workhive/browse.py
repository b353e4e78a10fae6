"""Listing the tasks waiting in a queue: the task browser's view of a backend.

Why a protocol of its own: queue *counts* (:class:`~workhive.backend.SupportsStats`) are cheap
on every broker, but listing messages is not (a Kafka topic or a RabbitMQ queue cannot be
read without consuming it). Backends that store tasks in a table or a hash can list them:
memory, SQLite, Redis and PostgreSQL implement :class:`SupportsBrowse`; the dashboard says so
on the page for the others. Deleting a waiting task (or flagging a running one) is
:class:`~workhive.backend.SupportsCancel`; browsing only adds "run a delayed task now".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from workhive.backend import Backend

TaskState = Literal["ready", "delayed", "in_flight"]
STATES: tuple[TaskState, ...] = ("ready", "delayed", "in_flight")


@dataclass(frozen=True, slots=True)
class QueuedTask:
    """One stored message. ``at``: when a delayed task becomes ready, or when a running one's
    lease runs out (unix seconds; 0 for a ready one)."""

    id: str
    queue: str
    state: TaskState
    body: bytes
    at: float = 0.0


@runtime_checkable
class SupportsBrowse(Protocol):
    """A backend that can list the tasks of a queue by state."""

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        """A page of the queue's tasks in ``state`` (oldest first) and how many there are."""
        ...

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        """The task with this id in this queue, whatever its state; None when gone."""
        ...

    async def run_now(self, queue: str, task_id: str) -> bool:
        """Make a delayed task ready now; False when it is not delayed (any more)."""
        ...


def browser_of(backend: Backend) -> SupportsBrowse | None:
    """The backend as :class:`SupportsBrowse`, or None when it cannot list tasks."""
    return backend if isinstance(backend, SupportsBrowse) else None
