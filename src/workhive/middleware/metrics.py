"""In-process counters and run-time totals per task, read by the worker summary and status.

They are per process and reset on restart; shared totals live in the backend's queue stats.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from workhive._context import TaskContext
from workhive.errors import Reject, Retry, Skip
from workhive.middleware.base import CallNext, Middleware


@dataclass(slots=True)
class TaskCounts:
    succeeded: int = 0
    retried: int = 0
    deferred: int = 0
    dead: int = 0
    skipped: int = 0
    seconds: float = 0.0


class Metrics(Middleware):
    def __init__(self) -> None:
        self.counts: defaultdict[str, TaskCounts] = defaultdict(TaskCounts)

    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        counts = self.counts[ctx.name]
        started = time.perf_counter()
        try:
            await call_next(ctx)
            counts.succeeded += 1
        except Retry as signal:
            if signal.count:
                counts.retried += 1
            else:
                counts.deferred += 1
            raise
        except Skip:
            counts.skipped += 1
            raise
        except (Reject, Exception):
            counts.dead += 1
            raise
        finally:
            counts.seconds += time.perf_counter() - started
