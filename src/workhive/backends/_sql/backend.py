"""Everything the SQLite and PostgreSQL backends do the same way, over a :class:`Database`.

:class:`SQLBackend` is a whole backend but for its transport: events, cron ticks, rate-limit
counters, key claims, dead letters, stats, heartbeats, results and cancel, history, paused
queues and the task browser, each an operation of this package run by the engine's
:class:`Database`. The SQLite and PostgreSQL backends subclass it and add what truly differs:
how they connect, how an idle fetch waits, and the hot claim / settle / enqueue statements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

from workhive._envelope import Envelope
from workhive.backend import DeadLetter, EnqueueResult, QueueStats, WorkerInfo
from workhive.backends._sql import (
    browse,
    coordination,
    deadletters,
    housekeeping,
    inspection,
    results,
)
from workhive.backends._sql import history as stored_history
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op
from workhive.browse import QueuedTask, TaskState
from workhive.history import Bucket

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Database(Protocol):
    """One engine's connection(s): what :class:`SQLBackend` needs of it."""

    dialect: Dialect
    #: the engine's own housekeeping statements, run after the shared ones
    housekeeping: tuple[str, ...]

    async def open(self) -> None:
        """Connect, and create or upgrade the layout. Idempotent."""
        ...

    async def close(self) -> None:
        """Disconnect; leased messages stay leased until their lease runs out."""
        ...

    async def run(self, op: Op[T], doing: str, *, tx: bool) -> T:
        """Run ``op``; with ``tx`` its statements commit together (or not at all). Driver
        errors come out as :class:`~workhive.errors.BackendError` naming ``doing``."""
        ...

    def insert(self, envelopes: Sequence[Envelope]) -> Op[list[EnqueueResult]]:
        """Store envelopes (keys deduped) and wake other processes' idle fetches."""
        ...

    def woke(self) -> None:
        """Wake this process's idle fetches: something became ready."""
        ...


class SQLBackend:
    """The shared capabilities of the SQL backends (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._d = db.dialect
        self._next_housekeeping = 0.0

    async def open(self) -> None:
        """Connect, creating the tables if needed (or upgrading an older layout). Idempotent;
        the first call of any method opens too."""
        await self._db.open()

    async def close(self) -> None:
        """Disconnect; leased messages stay leased until their lease runs out."""
        await self._db.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _housekeep(self) -> None:
        """Every few minutes per client, after a write: sweep what expired. Failures are
        logged, never raised: the caller's own write already succeeded."""
        if time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + housekeeping.EVERY
        try:
            await self._db.run(housekeeping.sweep(self._d, self._db.housekeeping),
                               "housekeeping", tx=True)
        except Exception as exc:
            logger.warning("%s housekeeping failed: %s", self._d.name, exc)

    # -- events, cron, counters -----------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        """Persist that ``group`` receives events matching ``pattern`` (idempotent)."""
        await self._db.run(coordination.bind(self._d, pattern, group), "bind", tx=False)

    async def publish(self, envelope: Envelope) -> int:
        """Store one copy per bound group in one transaction; returns the copy count."""
        copies = await self._db.run(coordination.publish(self._d, self._db.insert, envelope),
                                    "publish", tx=True)
        if copies:
            self._db.woke()
        return copies

    async def claim_tick(self, job: str, tick: float) -> bool:
        won = await self._db.run(coordination.claim_tick(self._d, job, tick), "claim_tick",
                                 tx=False)
        await self._housekeep()
        return won

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        """Fixed window; ``retry_after`` is the time to its end."""
        verdict = await self._db.run(coordination.hit_window(self._d, key, period, limit),
                                     "hit_window", tx=False)
        await self._housekeep()
        return verdict

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Token bucket refilled and charged in one statement."""
        return await self._db.run(coordination.take_token(self._d, key, rate, burst),
                                  "take_token", tx=False)

    # -- coordination for a composite's transport -----------------------------------------

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        """Own ``key`` unless a live claim holds it; the owner (see ``Coordination``)."""
        owner = await self._db.run(coordination.claim_key(self._d, key, holder, ttl),
                                   "claim_key", tx=False)
        await self._housekeep()
        return owner

    async def release_key(self, key: str, holder: str) -> None:
        await self._db.run(coordination.release_key(self._d, key, holder), "release_key",
                           tx=False)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Store a transport's dead letters here, where :meth:`dead_letters` and
        :meth:`purge_dead` see them (``replay_dead`` would move them into *this* backend's
        queues; a composite replays onto its transport itself)."""
        if letters:
            await self._db.run(deadletters.keep_dead(self._d, letters), "keep_dead", tx=True)

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Dead letters in the order they died."""
        return await self._db.run(deadletters.dead_letters(self._d, queue, limit, offset),
                                  "dead_letters", tx=False)

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-enqueue dead letters as fresh envelopes (new id, attempt 0)."""
        count = await self._db.run(
            deadletters.replay_dead(self._d, self._db.insert, ids, queue), "replay_dead", tx=True)
        if count:
            self._db.woke()
        return count

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Delete dead letters (all of them when both filters are ``None``)."""
        return await self._db.run(deadletters.purge_dead(self._d, ids, queue), "purge_dead",
                                  tx=False)

    # -- inspection -----------------------------------------------------------------------

    async def stats(self) -> list[QueueStats]:
        """Per-queue counts; an expired lease counts as ready."""
        return await self._db.run(inspection.stats(self._d), "stats", tx=False)

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        await self._db.run(inspection.heartbeat(self._d, info, ttl), "heartbeat", tx=True)

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat has not expired, by id."""
        return await self._db.run(inspection.workers(self._d), "workers", tx=False)

    async def forget_worker(self, worker_id: str) -> None:
        await self._db.run(inspection.forget_worker(self._d, worker_id), "forget_worker",
                           tx=False)

    # -- results and cancel ---------------------------------------------------------------

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        await self._db.run(results.store_result(self._d, task_id, record, ttl), "store_result",
                           tx=False)
        await self._housekeep()

    async def get_result(self, task_id: str) -> bytes | None:
        return await self._db.run(results.get_result(self._d, task_id), "get_result", tx=False)

    async def cancel(self, task_id: str, ttl: float) -> bool:
        """True when the task was waiting and is deleted; else flagged for ``ttl`` s."""
        deleted = await self._db.run(results.cancel(self._d, task_id, ttl), "cancel", tx=True)
        await self._housekeep()
        return deleted

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        if not task_ids:
            return set()
        return await self._db.run(results.cancelled(self._d, task_ids), "cancelled", tx=False)

    # -- history, paused queues, task browser ---------------------------------------------

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        """Add the buckets to the stored rows of the same ``(minute, queue, task)``."""
        if buckets:
            await self._db.run(stored_history.record_history(self._d, buckets),
                               "record_history", tx=True)
            await self._housekeep()

    async def history(self, since: float) -> list[Bucket]:
        return await self._db.run(stored_history.history(self._d, since), "history", tx=False)

    async def set_paused(self, queue: str, paused: bool) -> None:
        """Pause (``True``) or resume (``False``) ``queue``; idempotent."""
        await self._db.run(stored_history.set_paused(self._d, queue, paused), "set_paused",
                           tx=False)

    async def paused_queues(self) -> set[str]:
        return await self._db.run(stored_history.paused_queues(self._d), "paused_queues",
                                  tx=False)

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        """A page of the queue's tasks in ``state`` and how many there are."""
        return await self._db.run(browse.browse(self._d, queue, state, limit, offset), "browse",
                                  tx=False)

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        return await self._db.run(browse.find_task(self._d, queue, task_id), "find_task",
                                  tx=False)

    async def run_now(self, queue: str, task_id: str) -> bool:
        """Make a delayed task ready now; False when it is not delayed any more."""
        moved = await self._db.run(browse.run_now(self._d, queue, task_id), "run_now", tx=True)
        if moved:
            self._db.woke()
        return moved
