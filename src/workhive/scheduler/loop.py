"""Fire cron ticks: each tick of each job runs once across every worker process.

Every worker runs this loop; at a tick they all race for ``claim_tick(job, tick)`` in the backend
(a unique row in SQLite, ``SET NX`` in Redis) and only the winner enqueues the task or publishes
the event. The winner's enqueue is what makes the tick durable: if it crashes between claim and
enqueue, that tick is lost (at-most-once per tick; the next tick is unaffected).

Missed-tick policy: ticks that fell while no worker was running are **skipped**, not replayed.
A worker starting at 10:07 fires the 10:10 tick next, never a burst of 10:01..10:06.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol, cast

from workhive._cron import next_tick
from workhive._task import CronDef
from workhive.backend import Backend, EnqueueResult, SupportsCron
from workhive.errors import BackendError, CapabilityError

logger = logging.getLogger(__name__)


class CronHive(Protocol):
    """What the tick loop uses of a :class:`~workhive.hive.Hive`: its jobs, its backend (to
    claim ticks) and its enqueue/publish (to fire them). A protocol, so the runtime does not
    import the hive that starts it."""

    backend: Backend
    crons: dict[str, CronDef]

    async def enqueue(
        self, name: str, payload: Any = None, *args: Any, **options: Any
    ) -> EnqueueResult: ...

    async def publish(
        self, event: str, payload: Any = None, *args: Any, **options: Any
    ) -> int | None: ...


async def run_cron(hive: CronHive, stopping: asyncio.Event,
                   fired: dict[str, list[Any]] | None = None) -> None:
    """Sleep to the earliest next tick, claim it, fire it; until ``stopping`` is set.

    ``fired``: job -> ``[tick, fired_at, outcome]`` of the last tick this loop claimed (the
    worker's heartbeat carries it, so dashboards show each job's last fire and outcome)."""
    locks = cast(SupportsCron, hive.backend)
    now = time.time()
    upcoming = {name: next_tick(job.schedule, now) for name, job in hive.crons.items()}
    while not stopping.is_set():
        name = min(upcoming, key=upcoming.__getitem__)
        tick = upcoming[name]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, tick - time.time())):
                await stopping.wait()
            return  # stopping was set
        job = hive.crons[name]
        claimed, outcome = False, ""
        try:
            claimed = await locks.claim_tick(name, tick)
            if claimed:
                outcome = await fire(hive, job, tick)
        except (BackendError, CapabilityError) as exc:  # outage, or publish where no events
            logger.error("cron %s: tick %.0f not fired: %s", name, tick, exc)
            outcome = f"failed: {type(exc).__name__}: {exc}"
        except Exception as exc:
            logger.exception("cron %s: tick %.0f raised", name, tick)
            outcome = f"failed: {type(exc).__name__}: {exc}"
        if claimed and fired is not None:  # this worker won the tick: it tells how it went
            fired[name] = [tick, time.time(), outcome]
        upcoming[name] = next_tick(job.schedule, max(tick, time.time()))


async def fire(hive: CronHive, job: CronDef, tick: float) -> str:
    """Enqueue the job's task or publish its event for one tick; what happened, in words."""
    headers = {"cron": job.name, "cron_tick": f"{tick:.0f}"}
    if job.task is not None:
        sent = await hive.enqueue(job.task, job.payload, headers=headers,
                                  idempotency_key=f"cron:{job.name}:{tick:.0f}")
        logger.info("cron %s: enqueued %s", job.name, job.task)
        return (f"enqueued {job.task} (already enqueued for this tick)" if sent.duplicate
                else f"enqueued {job.task} as {sent.id}")
    if job.publish is not None:
        payload = job.fn() if job.fn is not None else job.payload
        if asyncio.iscoroutine(payload):
            payload = await payload
        copies = await hive.publish(job.publish, payload, headers=headers)
        logger.info("cron %s: published %s to %d group(s)", job.name, job.publish, copies)
        return (f"published {job.publish}" if copies is None
                else f"published {job.publish} to {copies} group(s)")
    return "nothing fired (the job names no task and no event)"
