"""Turn a handler's exception into a retry with exponential backoff, or a dead letter.

An explicit ``Retry`` that counts is capped by the same ``max_retries`` (a handler that always
asks to retry still ends in the dead-letter queue); ``Retry(count=False)`` is not capped.
A failure with retries left becomes :class:`~workhive.errors.Retry` (delay = backoff with equal
jitter); with none left it becomes :class:`~workhive.errors.Reject`. The original exception is
kept as ``__cause__`` so the worker records its traceback in the attempt history.
"""

from __future__ import annotations

import random

from workhive._context import TaskContext
from workhive.errors import Reject, Retry, Skip
from workhive.middleware.base import CallNext, Middleware


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """``min(cap, base * 2**attempt)`` with equal jitter: half fixed, half random."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class Retries(Middleware):
    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        try:
            await call_next(ctx)
        except Retry as signal:
            if signal.count and ctx.retries_left <= 0:  # an explicit retry still has a budget
                raise Reject(f"{signal.reason} (no retries left after {ctx.attempt + 1} "
                             "attempts)") from signal
            raise
        except (Reject, Skip):
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if ctx.retries_left > 0:
                opts = ctx.options
                delay = backoff_delay(ctx.attempt, opts.retry_backoff, opts.retry_backoff_max)
                raise Retry(delay, reason=reason) from exc
            raise Reject(f"{reason} (after {ctx.attempt + 1} attempts)") from exc
