"""The memory backend's task browser (:class:`~workhive.browse.SupportsBrowse`).

Kept beside :mod:`workhive.backends.memory` so the reference backend stays short to read. A
listing copies and sorts the queue's items (ready in fetch order, delayed by eta, in flight
by lease deadline): fine for the test-sized queues this backend holds.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import TYPE_CHECKING

from workhive.browse import STATES, QueuedTask, TaskState

if TYPE_CHECKING:
    from workhive.backends.memory import _Item


class MemoryBrowse:
    """Mixed into :class:`~workhive.backends.memory.MemoryBackend`, whose state it reads."""

    if TYPE_CHECKING:
        _ready: dict[str, list[_Item]]
        _delayed: list[tuple[float, int, _Item]]
        _leased: dict[str, tuple[float, _Item]]
        _changed: asyncio.Condition

        def _promote(self, now: float) -> float | None: ...

    def _listing(self, queue: str, state: TaskState) -> list[QueuedTask]:
        self._promote(time.time())
        if state == "ready":
            return [QueuedTask(i.id, queue, "ready", i.body)
                    for i in sorted(self._ready.get(queue, []))]
        if state == "delayed":
            return [QueuedTask(i.id, queue, "delayed", i.body, eta)
                    for eta, _, i in sorted(self._delayed, key=lambda e: e[:2])
                    if i.queue == queue]
        return [QueuedTask(i.id, queue, "in_flight", i.body, deadline)
                for deadline, i in sorted(self._leased.values(), key=lambda e: e[0])
                if i.queue == queue]

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        rows = self._listing(queue, state)
        return rows[offset:offset + limit], len(rows)

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        for state in STATES:
            for task in self._listing(queue, state):
                if task.id == task_id:
                    return task
        return None

    async def run_now(self, queue: str, task_id: str) -> bool:
        for entry in self._delayed:
            item = entry[2]
            if item.queue == queue and item.id == task_id:
                self._delayed.remove(entry)
                heapq.heapify(self._delayed)
                item.sort_key = (item.sort_key[0], 0.0, item.sort_key[2])
                heapq.heappush(self._ready.setdefault(queue, []), item)
                async with self._changed:
                    self._changed.notify_all()
                return True
        return False
