"""The "disable" backend: accepts every enqueue and publish, logs it, runs nothing.

Use it to run an app with background work switched off (``WORKHIVE_BACKEND=noop``). It declares
every capability but durable queues, so an app declares and enqueues as usual while starting
a worker on it is refused with a clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from workhive._envelope import Envelope
from workhive.backend import Capability, Delivery, EnqueueResult, Features, Settlement

logger = logging.getLogger(__name__)


class NoopBackend:
    name = "noop"
    #: every producer-side capability: it accepts whatever an app sends, and runs no worker.
    features = Features(frozenset(Capability) - {
        Capability.QUEUE, Capability.INSPECT, Capability.DEAD_LETTER
    }, lease="none", ordered_keys=True)

    def __init__(self) -> None:
        self.accepted = 0

    @classmethod
    def from_url(cls, url: str = "noop://", **_: Any) -> NoopBackend:
        return cls()

    async def open(self) -> None:
        logger.info("noop backend: background work is disabled; enqueues are logged and dropped")

    async def close(self) -> None:
        return None

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        for env in envelopes:
            self.accepted += 1
            logger.info("noop: dropped %s %s", env.kind, env.name,
                        extra={"task_id": env.id, "queue": env.queue})
        return [EnqueueResult(env.id) for env in envelopes]

    async def publish(self, envelope: Envelope) -> int:
        await self.enqueue([envelope])
        return 0

    async def bind(self, pattern: str, group: str) -> None:
        return None

    async def claim_tick(self, job: str, tick: float) -> bool:
        return False

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        return True, 0.0

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        return True, 0.0

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        return []

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        return None

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        return None
