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
from collections import defaultdict
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

import msgspec

from workhive.backend import Capability, SupportsCancel, WorkerInfo, has
from workhive.browse import STATES, TaskState, browser_of
from workhive.errors import CapabilityError
from workhive.history import Bucket, history_of, summarize
from workhive.hive import Hive
from workhive.inspector import (
    DeadLetterView,
    Inspector,
    QueueRate,
    Snapshot,
    TaskNotFound,
    TaskView,
    dead_letter_json,
    dead_letters_of,
    task_json,
)
from workhive.pauses import pauses_of
from workhive.results import TaskStatus, read_status
from workhive.scheduler.loop import fire

#: chart ranges: name -> (seconds shown, seconds per point)
RANGES = {"1h": (3_600, 60), "6h": (6 * 3_600, 300), "1d": (86_400, 600)}
#: a worker whose heartbeat is older than this is shown as lost (it beats every 5 s)
STALE_AFTER = 12.0


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
        paused = await self.paused()
        queues = []
        for stat in snap.queues:
            row: dict[str, Any] = asdict(stat)
            row["paused"] = ("" if paused is None
                             else "paused" if stat.queue in paused else "running")
            rate = rates.get(stat.queue) if rates is not None else None
            row["processed_per_s"] = round(rate.processed_per_s, 3) if rate else None
            row["failed_per_s"] = round(rate.failed_per_s, 3) if rate else None
            queues.append(row)
        return {"backend": snap.backend, "taken_at": snap.taken_at,
                "rate_interval_s": round(interval, 3) if interval is not None else None,
                "queues": queues}

    async def workers(self) -> dict[str, Any]:
        """Live workers with the heartbeat's age, uptime and the counters the worker reports;
        ``lost`` when the last heartbeat is older than :data:`STALE_AFTER` seconds. Also
        ``running``: the tasks they run, with running time and progress (:func:`running_tasks`)."""
        snap = await self.inspector.snapshot()
        workers = []
        for w in snap.workers:
            row: dict[str, Any] = asdict(w)
            row.pop("extra")
            age = max(snap.taken_at - w.seen_at, 0.0)
            row["heartbeat_age_s"] = round(age, 1)
            row["uptime_s"] = round(max(snap.taken_at - w.started_at, 0.0), 1)
            row["in_flight"] = w.extra.get("in_flight")
            row["processed"] = w.extra.get("processed")
            row["lost"] = 1 if age > STALE_AFTER else 0
            row["state"] = "lost (no heartbeat)" if age > STALE_AFTER else "alive"
            workers.append(row)
        return {"backend": snap.backend, "taken_at": snap.taken_at, "workers": workers,
                "running": running_tasks(snap)}

    async def running(self) -> dict[str, dict[str, Any]]:
        """Running tasks by id, as the workers' last heartbeats report them."""
        return {r["id"]: r for r in running_tasks(await self.inspector.snapshot())}

    async def status(self, task_id: str) -> TaskStatus | None:
        """The task's result record (state, progress, value or error), or None when the
        backend keeps no results or the task did not ask for one (or it expired)."""
        if not has(self.hive.backend, Capability.RESULTS):
            return None
        record = await read_status(self.hive, task_id)
        return None if record.state == "pending" else record

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

    async def replay_or_purge_ids(self, verb: str, ids: list[str]) -> int:
        """Replay (``verb`` "replay") or purge these dead letters; how many there were."""
        dead = dead_letters_of(self.hive.backend, f"{verb}ing dead letters")
        await self.hive.open()
        if verb == "replay":
            return await dead.replay_dead(ids, None)
        return await dead.purge_dead(ids, None)

    async def cron(self, now: float | None = None) -> dict[str, Any]:
        """Cron jobs with their next fire time (declared in code: empty without ``--app``)
        and their last fire: the latest tick any live worker's heartbeat says it fired
        (``extra["cron"]``: job -> [tick, fired_at, outcome]), with that worker and outcome."""
        at = time.time() if now is None else now
        crons = self.inspector.cron_jobs(at)
        workers = (await self.inspector.snapshot()).workers if crons else []
        last = _latest(workers, "cron")
        runs = _latest(workers, "cron_runs")
        jobs = []
        for j in crons:
            tick, fired_at, outcome, worker = last.get(j.name, (None, None, "", ""))
            _, run_at, action, _ = runs.get(j.name, (None, None, "", ""))
            jobs.append({"job": j.name, "schedule": j.schedule, "next_fire": j.next_fire,
                         "next_in_s": round(max(j.next_fire - at, 0.0), 1), "target": j.target,
                         "last_fire": tick,
                         "last_ago_s": (round(max(at - tick, 0.0), 1) if tick is not None
                                        else None),
                         "last_fired_at": fired_at, "last_outcome": outcome,
                         "last_worker": worker, "last_run": RUN_OUTCOMES.get(action, action),
                         "last_run_at": run_at,
                         "failed": int(outcome.startswith("failed") or action in ("retry",
                                                                                  "dead"))})
        return {"now": at, "jobs": jobs}

    def registrations(self) -> dict[str, Any]:
        """Every declaration of the included modules, including what a flag kept out."""
        return {"registrations": [asdict(d) for d in self.inspector.declarations()]}

    # -- task browser -----------------------------------------------------------------------

    def can_browse(self) -> bool:
        return browser_of(self.hive.backend) is not None

    def can_cancel(self) -> bool:
        return has(self.hive.backend, Capability.CANCEL) and isinstance(self.hive.backend,
                                                                        SupportsCancel)

    async def tasks(self, queue: str, state: str, limit: int, offset: int,
                    search: str) -> dict[str, Any]:
        """A page of one queue's tasks in ``state`` (``dead``: its dead letters) and the total;
        ``search`` matches id, task name and error text."""
        if state == "dead":
            if search:
                views, total = await self.inspector.search_dead(search, queue, limit, offset)
            else:
                views = await self.inspector.dead_letters(queue, limit, offset)
                total = next((s.dead for s in (await self.inspector.snapshot()).queues
                              if s.queue == queue), len(views))
            rows = [dead_letter_json(v, full=False) for v in views]
        else:
            tasks, total = await self.inspector.tasks(queue, _state(state), limit, offset,
                                                      search)
            rows = [task_json(t, full=False) for t in tasks]
            if state == "in_flight":  # who runs each, for how long, how far it got
                running = await self.running()
                for row in rows:
                    now = running.get(row["id"], {})
                    row.update({k: now.get(k) for k in ("worker", "started_at", "running_s",
                                                        "progress", "message")})
        return {"queue": queue, "state": state, "search": search, "offset": offset,
                "limit": limit, "total": total, "tasks": rows}

    async def task(self, queue: str, task_id: str) -> TaskView:
        return await self.inspector.task(queue, task_id)

    async def delete_task(self, queue: str, task_id: str) -> bool:
        """Delete a waiting task (True), or ask its worker to stop a running one (False)."""
        backend = self.hive.backend
        if not self.can_cancel() or not isinstance(backend, SupportsCancel):
            raise CapabilityError(f"the {backend.name!r} backend cannot delete or cancel tasks")
        await self.task(queue, task_id)  # 404 for a task of another queue, or gone
        return await backend.cancel(task_id, 3_600.0)

    async def delete_tasks(self, queue: str, ids: list[str]) -> dict[str, int]:
        """Delete the waiting tasks among ``ids`` and ask the workers running the others to
        stop them; ids no longer in the queue (finished meanwhile) are counted apart."""
        counts = {"deleted": 0, "cancel_requested": 0, "not_found": 0}
        for task_id in ids:
            try:
                deleted = await self.delete_task(queue, task_id)
            except TaskNotFound:
                counts["not_found"] += 1
                continue
            counts["deleted" if deleted else "cancel_requested"] += 1
        return counts

    async def run_now(self, queue: str, task_id: str) -> bool:
        """Make a delayed task ready now (False when it is not delayed any more)."""
        store = browser_of(self.hive.backend)
        if store is None:
            raise CapabilityError(f"the {self.hive.backend.name!r} backend cannot list tasks")
        await self.hive.open()
        return await store.run_now(queue, task_id)

    # -- pause / resume -------------------------------------------------------------------

    async def paused(self) -> set[str] | None:
        """The paused queues; None when the backend cannot pause queues."""
        store = pauses_of(self.hive.backend)
        if store is None:
            return None
        await self.hive.open()
        return await store.paused_queues()

    async def set_paused(self, queue: str, paused: bool) -> None:
        store = pauses_of(self.hive.backend)
        if store is None:
            raise CapabilityError(f"the {self.hive.backend.name!r} backend cannot pause queues "
                                  "(memory, sqlite, redis and postgres can)")
        await self.hive.open()
        await store.set_paused(queue, paused)

    # -- cron -----------------------------------------------------------------------------

    async def trigger(self, job_name: str) -> str:
        """Fire a cron job now, as its tick would (the usual ticks are unaffected)."""
        job = self.hive.crons.get(job_name)
        if job is None:
            raise LookupError(f"no cron job {job_name!r} (cron jobs are declared in code: "
                              "start the dashboard with --app)")
        await self.hive.open()
        await fire(self.hive, job, time.time())
        return job.task or job.publish or job_name

    # -- history ----------------------------------------------------------------------------

    async def _buckets(self, range_name: str) -> tuple[list[Bucket] | None, int, int, float]:
        if range_name not in RANGES:
            raise ValueError(f"range must be one of {', '.join(RANGES)}, not {range_name!r}")
        span, step = RANGES[range_name]
        now = time.time()
        start = int((now - span) // step * step) + step
        store = history_of(self.hive.backend)
        if store is None:
            return None, span, step, now
        await self.hive.open()
        return await store.history(start), span, step, now

    async def history(self, range_name: str, queue: str | None = None,
                      task: str | None = None) -> dict[str, Any]:
        """Chart series over the range: per point, attempts that succeeded / failed (retried
        or dead), mean queue wait and p50/p95 run time (ms). ``available`` is False when the
        backend keeps no history."""
        buckets, span, step, now = await self._buckets(range_name)
        out: dict[str, Any] = {"range": range_name, "step_s": step, "available": buckets
                               is not None, "backend": self.hive.backend.name}
        last = int(now // step * step)
        points = list(range(last - span + step, last + step, step))
        per: dict[int, list[Bucket]] = defaultdict(list)
        for b in buckets or []:
            if (queue and b.queue != queue) or (task and b.task != task):
                continue
            per[b.minute // step * step].append(b)
        series: dict[str, list[Any]] = {k: [] for k in ("succeeded", "failed", "wait_ms",
                                                        "p50_ms", "p95_ms")}
        for t in points:
            total = summarize(per.get(t, []))
            series["succeeded"].append(total["succeeded"])
            series["failed"].append(total["retried"] + total["dead"])
            series["wait_ms"].append(total["wait_ms_avg"])
            series["p50_ms"].append(total["p50_ms"])
            series["p95_ms"].append(total["p95_ms"])
        out["t"] = points
        out.update(series)
        out["total"] = sum(series["succeeded"]) + sum(series["failed"])
        out["queues"] = sorted({b.queue for b in buckets or []})
        out["tasks"] = sorted({b.task for b in buckets or [] if not queue or b.queue == queue})
        return out

    async def task_breakdown(self, range_name: str) -> dict[str, Any]:
        """Per ``(queue, task)`` over the range: counts, failure rate, wait and run times."""
        buckets, _, _, _ = await self._buckets(range_name)
        groups: dict[tuple[str, str], list[Bucket]] = defaultdict(list)
        for b in buckets or []:
            groups[(b.queue, b.task)].append(b)
        rows = []
        for (queue, task), items in sorted(groups.items()):
            row = {"queue": queue, "task": task, **summarize(items)}
            row["failure_pct"] = (round(row["failure_rate"] * 100, 1)
                                  if row["failure_rate"] is not None else None)
            rows.append(row)
        rows.sort(key=lambda r: -r["attempts"])
        return {"range": range_name, "available": buckets is not None, "tasks": rows}


#: how a cron job's last run ended (the settlement of its task), in words
RUN_OUTCOMES = {"ack": "succeeded", "retry": "failed, will retry", "dead": "failed (dead letter)",
                "release": "returned to the queue (worker stopped)"}


def _latest(workers: list[WorkerInfo], key: str) -> dict[str, tuple[float, float, str, str]]:
    """Per cron job, the newest entry (by its second field, a time) of ``extra[key]`` across
    the workers' heartbeats: ``job -> [tick, at, what]``, returned with the worker's id."""
    out: dict[str, tuple[float, float, str, str]] = {}
    for w in workers:
        entries = w.extra.get(key)
        for job, entry in (entries.items() if isinstance(entries, dict) else ()):
            if not (isinstance(entry, list | tuple) and len(entry) == 3
                    and isinstance(entry[1], int | float)):
                continue
            tick = float(entry[0]) if isinstance(entry[0], int | float) else 0.0
            if job not in out or entry[1] > out[job][1]:
                out[job] = (tick, float(entry[1]), str(entry[2]), w.id)
    return out


def status_json(record: TaskStatus) -> dict[str, Any]:
    """A result record as plain JSON (the value is plain already: the worker checked it)."""
    data: dict[str, Any] = msgspec.to_builtins(record)
    return data


def running_tasks(snap: Snapshot) -> list[dict[str, Any]]:
    """Every running task the workers' heartbeats carry (``extra["running"]``: id -> [name,
    queue, started_at], and ``extra["progress"]``: id -> [name, fraction, message]), with its
    worker, running time and progress; a task that reported progress but is missing from
    ``running`` (a worker of an older version) is listed without a start time."""
    rows = []
    for w in snap.workers:
        running = w.extra.get("running")
        progress = w.extra.get("progress")
        running = running if isinstance(running, dict) else {}
        progress = progress if isinstance(progress, dict) else {}
        for task_id in [*running, *(t for t in progress if t not in running)]:
            entry = running.get(task_id)
            name, queue, started = (entry if isinstance(entry, list | tuple) and len(entry) == 3
                                    else (None, None, None))
            reported = progress.get(task_id)
            fraction, message = None, ""
            if isinstance(reported, list | tuple) and len(reported) == 3:
                name = name or reported[0]
                fraction, message = reported[1], reported[2]
            started = started if isinstance(started, int | float) else None
            rows.append({
                "id": str(task_id), "name": name, "queue": queue, "worker": w.id,
                "started_at": started,
                "running_s": (round(max(snap.taken_at - started, 0.0), 1)
                              if started is not None else None),
                "progress": fraction if isinstance(fraction, int | float) else None,
                "message": str(message),
                "href": (f"/queues/{quote(str(queue), safe='')}/tasks/"
                         f"{quote(str(task_id), safe='')}" if queue else None),
            })
    rows.sort(key=lambda r: (r["worker"], r["started_at"] or 0.0))
    return rows


def _state(name: str) -> TaskState:
    for state in STATES:
        if state == name:
            return state
    raise ValueError(f"state must be ready, delayed, in_flight or dead, not {name!r}")


__all__ = ["RANGES", "Board", "RateTracker", "running_tasks", "status_json"]
