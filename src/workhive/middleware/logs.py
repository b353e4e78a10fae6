"""Structured logs per attempt: task id, name, queue and attempt in ``extra``."""

from __future__ import annotations

import logging

from workhive._context import TaskContext
from workhive.errors import Reject, Retry, Skip
from workhive.middleware.base import CallNext, Middleware

logger = logging.getLogger("workhive.task")


def _extra(ctx: TaskContext) -> dict[str, object]:
    """Built only when a record is emitted: the success path stays allocation-free."""
    return {"task_id": ctx.id, "task": ctx.name, "queue": ctx.queue, "attempt": ctx.attempt}


class Logs(Middleware):
    """One log line per attempt outcome (retry, defer, dead letter, crash, done) on the
    ``workhive.task`` logger. Outermost by default, so it logs what the layers inside decided."""

    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        try:
            await call_next(ctx)
        except Retry as signal:
            extra = _extra(ctx)
            if signal.count:
                logger.warning("%s failed (attempt %d), retrying in %.2fs: %s", ctx.name,
                               ctx.attempt + 1, signal.delay or 0, signal.reason, extra=extra)
            else:
                logger.info("%s deferred %.2fs: %s", ctx.name, signal.delay or 0,
                            signal.reason, extra=extra)
            raise
        except Reject as signal:
            logger.error("%s dead-lettered: %s", ctx.name, signal.reason, extra=_extra(ctx))
            raise
        except Skip:
            raise
        except Exception:
            logger.exception("%s crashed", ctx.name, extra=_extra(ctx))
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s done", ctx.name, extra=_extra(ctx))
