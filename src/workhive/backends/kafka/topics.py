"""Creating topics on first use.

Why workhive creates them: a queue, a subscriber group or a delay tier appears when code first
uses it, and brokers with ``auto.create.topics.enable=false`` (the recommended production
setting) would otherwise refuse the first produce. Existing topics are never changed: their
partition count stays what it is (Kafka can only raise it, and Tansu cannot at all).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from workhive.backends.kafka.settings import KafkaSettings
from workhive.errors import BackendError

_ALREADY_EXISTS = 36


class Topics:
    """Creates each topic at most once per process (an existing one is left alone)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._admin: AIOKafkaAdminClient | None = None
        self._made: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, topics: Sequence[str], *, partitions: int,
                     wide: Sequence[str] = ()) -> None:
        """Create the topics not seen yet; those in ``wide`` get the configured partition
        count instead of ``partitions``."""
        async with self._lock:
            missing = [t for t in dict.fromkeys(topics) if t not in self._made]
            if not missing:
                return
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self.settings.client_kwargs())
                await admin.start()
                self._admin = admin
            new = [NewTopic(t, self.settings.partitions if t in wide else partitions,
                            self.settings.replication) for t in missing]
            response = await self._admin.create_topics(new)
            for topic, code, *rest in response.topic_errors:
                if code not in (0, _ALREADY_EXISTS):
                    message = rest[0] if rest and rest[0] else f"error code {code}"
                    raise BackendError(f"kafka at {self.settings.where} could not create topic "
                                       f"{topic!r}: {message}")
            self._made.update(missing)

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        self._made.clear()
        if admin is not None:
            await admin.close()
