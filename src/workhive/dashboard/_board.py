"""What the dashboard knows, asked only through :mod:`workhive.inspector`.

Why a layer between the routes and the inspector: the HTML pages and the ``/api`` endpoints
must show the same numbers, so both render the plain dicts built here. It is also where the
few things the inspector does not offer are composed from inspector calls: rates that survive
several open browser tabs (:class:`RateTracker`), looking up exactly one dead letter
(:meth:`Board.dead_letter`), and replay/purge (through :func:`~workhive.inspector.dead_letters_of`,
as ``workhive dlq`` does).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from workhive.hive import Hive
from workhive.inspector import (
    DeadLetterView,
    Inspector,
    QueueRate,
    Snapshot,
    dead_letters_of,
)


class RateTracker:
    """Per-queue rates between refreshes, shared by every client of one dashboard.

    Each refresh computes rates against the previous snapshot. Two tabs refreshing a moment
    apart would otherwise measure over a few milliseconds and show noise, so a snapshot
    younger than ``min_interval`` seconds after the baseline reuses the last rates instead.
    Not thread-safe; the app runs on one event loop.
    """

    def __init__(self, min_interval: float = 1.0) -> None:
        self.min_interval = min_interval
        self._base: Snapshot | None = None
        self._rates: dict[str, QueueRate] | None = None
        self._interval: float | None = None

    def update(self, snap: Snapshot) -> tuple[dict[str, QueueRate] | None, float | None]:
        """Rates (None until a second snapshot) and the seconds they were measured over."""
        base = self._base
        if base is None or snap.taken_at < base.taken_at:  # first call, or the clock went back
            self._base, self._rates, self._interval = snap, None, None
        elif snap.taken_at - base.taken_at >= self.min_interval:
            self._rates = Inspector.rates(base, snap)
            self._interval = snap.taken_at - base.taken_at
            self._base = snap
        return self._rates, self._interval


class Board:
    """The dashboard's questions about one hive; the caller owns opening/closing the hive."""

    def __init__(self, hive: Hive, *, min_rate_interval: float = 1.0) -> None:
        self.hive = hive
        self.inspector = Inspector(hive)
        self.tracker = RateTracker(min_rate_interval)

    async def queues(self) -> dict[str, Any]:
        """Queue counts plus rates since the previous refresh (``null`` on the first)."""
        snap = await self.inspector.snapshot()
        rates, interval = self.tracker.update(snap)
        queues = []
        for stat in snap.queues:
            row: dict[str, Any] = asdict(stat)
            rate = rates.get(stat.queue) if rates is not None else None
            row["processed_per_s"] = round(rate.processed_per_s, 3) if rate else None
            row["failed_per_s"] = round(rate.failed_per_s, 3) if rate else None
            queues.append(row)
        return {"backend": snap.backend, "taken_at": snap.taken_at,
                "rate_interval_s": round(interval, 3) if interval is not None else None,
                "queues": queues}

    async def workers(self) -> dict[str, Any]:
        """Live workers with the heartbeat's age and the counters the worker reports."""
        snap = await self.inspector.snapshot()
        workers = []
        for w in snap.workers:
            row: dict[str, Any] = asdict(w)
            row["heartbeat_age_s"] = round(max(snap.taken_at - w.seen_at, 0.0), 1)
            row["in_flight"] = w.extra.get("in_flight")
            row["processed"] = w.extra.get("processed")
            workers.append(row)
        return {"backend": snap.backend, "taken_at": snap.taken_at, "workers": workers}

    async def dead_letters(self, queue: str | None, limit: int,
                           offset: int) -> list[DeadLetterView]:
        return await self.inspector.dead_letters(queue, limit, offset)

    async def dead_letter(self, dead_id: str) -> DeadLetterView:
        """The dead letter with this id or unique id prefix (as ``workhive dlq``)."""
        return await self.inspector.dead_letter(dead_id)

    async def replay(self, dead_id: str | None, queue: str | None = None) -> int:
        """Put one dead letter (``dead_id``) or all of them (``None``, see ``queue``) back."""
        dead = dead_letters_of(self.hive.backend, "replaying dead letters")
        ids = None if dead_id is None else [(await self.dead_letter(dead_id)).id]
        await self.hive.open()
        return await dead.replay_dead(ids, queue)

    async def purge(self, dead_id: str | None, queue: str | None = None) -> int:
        """Delete one dead letter (``dead_id``) or all of them (``None``, see ``queue``)."""
        dead = dead_letters_of(self.hive.backend, "purging dead letters")
        ids = None if dead_id is None else [(await self.dead_letter(dead_id)).id]
        await self.hive.open()
        return await dead.purge_dead(ids, queue)

    def cron(self, now: float | None = None) -> dict[str, Any]:
        """Cron jobs with their next fire time (declared in code: empty without ``--app``)."""
        at = time.time() if now is None else now
        jobs = [{"job": j.name, "schedule": j.schedule, "next_fire": j.next_fire,
                 "next_in_s": round(max(j.next_fire - at, 0.0), 1), "target": j.target}
                for j in self.inspector.cron_jobs(at)]
        return {"now": at, "jobs": jobs}

    def registrations(self) -> dict[str, Any]:
        """Every declaration of the included modules, including what a flag kept out."""
        return {"registrations": [asdict(d) for d in self.inspector.declarations()]}
