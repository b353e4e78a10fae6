"""What a handler (and every middleware) sees about the message it is running."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workhive._envelope import Envelope
from workhive._task import Handler, TaskOptions
from workhive.backend import Delivery

if TYPE_CHECKING:
    from workhive.backend import EnqueueResult
    from workhive.hive import Hive


@dataclass(slots=True)
class TaskContext:
    """Per-attempt context. ``attempt`` counts from 0; ``retries_left`` is what remains after it.

    ``state`` is scratch space for middleware (one dict per attempt).
    """

    envelope: Envelope
    delivery: Delivery
    handler: Handler
    options: TaskOptions
    hive: Hive
    payload: Any = None
    state: dict[str, Any] = field(default_factory=dict)

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

    async def enqueue(self, name: str, payload: Any = None, **options: Any) -> EnqueueResult:
        """Enqueue follow-up work through the same hive."""
        return await self.hive.enqueue(name, payload, **options)

    async def publish(self, event: str, payload: Any = None, **options: Any) -> int | None:
        return await self.hive.publish(event, payload, **options)
