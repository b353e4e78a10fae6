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
from typing import TYPE_CHECKING, cast

from workhive._task import CronDef
from workhive.backend import SupportsCron
from workhive.errors import BackendError
from workhive.scheduler.cron import next_tick

if TYPE_CHECKING:
    from workhive.hive import Hive

logger = logging.getLogger(__name__)


async def run_cron(hive: Hive, stopping: asyncio.Event) -> None:
    """Sleep to the earliest next tick, claim it, fire it; until ``stopping`` is set."""
    locks = cast(SupportsCron, hive.backend)
    now = time.time()
    upcoming = {name: next_tick(job.schedule, now) for name, job in hive.crons.items()}
    while not stopping.is_set():
        name = min(upcoming, key=upcoming.__getitem__)
        tick = upcoming[name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), max(0.0, tick - time.time()))
            return  # stopping was set
        job = hive.crons[name]
        try:
            if await locks.claim_tick(name, tick):
                await fire(hive, job, tick)
        except BackendError as exc:
            logger.error("cron %s: tick %.0f not fired: %s", name, tick, exc)
        except Exception:
            logger.exception("cron %s: tick %.0f raised", name, tick)
        upcoming[name] = next_tick(job.schedule, max(tick, time.time()))


async def fire(hive: Hive, job: CronDef, tick: float) -> None:
    """Enqueue the job's task or publish its event for one tick."""
    headers = {"cron": job.name, "cron_tick": f"{tick:.0f}"}
    if job.task is not None:
        await hive.enqueue(job.task, job.payload, headers=headers,
                           idempotency_key=f"cron:{job.name}:{tick:.0f}")
        logger.info("cron %s: enqueued %s", job.name, job.task)
    elif job.publish is not None:
        payload = job.fn() if job.fn is not None else job.payload
        if asyncio.iscoroutine(payload):
            payload = await payload
        copies = await hive.publish(job.publish, payload, headers=headers)
        logger.info("cron %s: published %s to %d group(s)", job.name, job.publish, copies)
