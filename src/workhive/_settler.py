"""Handing settlements to the backend in batches (:mod:`workhive._outcome` builds them).

Why batches: one ``settle`` call per message would make the broker round trip the ceiling of a
worker's throughput. The settler collects outcomes and flushes them in one call; while a flush
is in flight the next batch accumulates, so batches grow with load and stay at one message when
idle. A failed flush keeps its batch and retries (the messages' leases still protect them). The
settler is never cancelled mid-flush: :meth:`Settler.close` lets the current flush finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from workhive.backend import Backend, Settlement

logger = logging.getLogger(__name__)

class Settler:
    """Batches settlements for one worker. ``on_handover(n)`` is told how many deliveries left
    (negative) or came back to (positive) the worker's unsettled count."""

    def __init__(self, backend: Backend, on_handover: Callable[[int], None]) -> None:
        self.backend = backend
        self.on_handover = on_handover
        self.pending: list[Settlement] = []
        self._has_pending = asyncio.Event()
        self._closing = False

    def add(self, settlement: Settlement) -> None:
        self.pending.append(settlement)
        self._has_pending.set()

    async def run(self) -> None:
        """Flush whenever something is pending, until :meth:`close`."""
        while not self._closing:
            await self._has_pending.wait()
            self._has_pending.clear()
            await self.flush_once()

    def close(self) -> None:
        """Ask :meth:`run` to return after the flush in progress (if any)."""
        self._closing = True
        self._has_pending.set()

    async def flush_once(self) -> bool:
        if not self.pending:
            return True
        batch, self.pending = self.pending, []
        # hand the slots back as the batch leaves, so the next fetch queues right behind this
        # settle instead of waiting a round trip
        self.on_handover(-len(batch))
        try:
            await self.backend.settle(batch)
            return True
        except Exception as exc:
            logger.error("settle of %d message(s) failed (%s); will retry", len(batch), exc)
            self.on_handover(len(batch))
            self.pending[:0] = batch
            await asyncio.sleep(0.5)
            self._has_pending.set()
            return False

    async def flush_all(self, attempts: int = 20) -> None:
        """Flush what is left at shutdown; give up (leases expire, messages come back) after
        ``attempts`` failures."""
        for _ in range(attempts):
            if await self.flush_once() and not self.pending:
                return
        if self.pending:
            logger.error("gave up settling %d message(s); they will be redelivered after their "
                         "lease expires", len(self.pending))
