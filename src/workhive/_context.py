"""What a handler (and every middleware) sees about the message it is running."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from workhive._envelope import Envelope
from workhive._task import Handler, TaskOptions
from workhive.backend import Delivery
from workhive.errors import ValidationError

if TYPE_CHECKING:
    import asyncio

    from workhive.backend import Backend, EnqueueResult


class TaskHive(Protocol):
    """What a running task may use of its :class:`~workhive.hive.Hive`.

    A protocol rather than the class so this module (below the hive, the worker and every
    middleware) imports none of them; any ``Hive`` satisfies it.
    """

    backend: Backend

    async def enqueue(
        self, name: str, payload: Any = None, *args: Any, **options: Any
    ) -> EnqueueResult: ...

    async def publish(
        self, event: str, payload: Any = None, *args: Any, **options: Any
    ) -> int | None: ...


class ProgressSink(Protocol):
    """Where :meth:`TaskContext.progress` reports (the worker's tracker, which records
    results and progress); a protocol so this module does not import the tracker above it."""

    async def progress(self, ctx: TaskContext, fraction: float, message: str) -> None: ...


@dataclass(slots=True)
class TaskContext:
    """Per-attempt context. ``attempt`` counts from 0; ``retries_left`` is what remains after it.

    ``state`` is scratch space for middleware (one dict per attempt). ``cancelled`` turns true
    when someone cancels this task while it runs: a sync handler should check it in its loop
    and return (an async handler is cancelled by the worker instead).
    """

    envelope: Envelope
    delivery: Delivery
    handler: Handler
    options: TaskOptions
    hive: TaskHive
    payload: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    progress_fraction: float | None = None
    progress_message: str = ""
    tracker: ProgressSink | None = field(default=None, repr=False)
    runner: asyncio.Task[Any] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def name(self) -> str:
        return self.envelope.name

    @property
    def queue(self) -> str:
        return self.envelope.queue

    @property
    def attempt(self) -> int:
        return self.envelope.attempt

    @property
    def max_retries(self) -> int:
        env_value = self.envelope.max_retries
        return self.options.max_retries if env_value is None else env_value

    @property
    def retries_left(self) -> int:
        return max(self.max_retries - self.attempt, 0)

    @property
    def timeout(self) -> float | None:
        env_value = self.envelope.timeout
        return self.options.timeout if env_value is None else env_value

    @property
    def headers(self) -> dict[str, str]:
        return self.envelope.headers

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report how far this task is (``fraction`` in [0, 1]) with a short ``message``:
        kept in its result record (``handle.status()``) when it asked for one, and shown by
        ``workhive status`` while it runs."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or \
                not 0.0 <= fraction <= 1.0:
            raise ValidationError(f"progress must be a number from 0 to 1, got {fraction!r}")
        if not isinstance(message, str):
            raise ValidationError(f"progress message must be a string, got {message!r}")
        self.progress_fraction, self.progress_message = float(fraction), message
        if self.tracker is not None:
            await self.tracker.progress(self, self.progress_fraction, message)

    async def enqueue(self, name: str, payload: Any = None, **options: Any) -> EnqueueResult:
        """Enqueue follow-up work through the same hive."""
        return await self.hive.enqueue(name, payload, **options)

    async def publish(self, event: str, payload: Any = None, **options: Any) -> int | None:
        return await self.hive.publish(event, payload, **options)
