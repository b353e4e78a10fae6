"""Turn a handler's exception into a retry with exponential backoff, or a dead letter.

An explicit ``Retry`` that counts is capped by the same ``max_retries`` (a handler that always
asks to retry still ends in the dead-letter queue); ``Retry(count=False)`` is not capped.
A failure with retries left becomes :class:`~workhive.errors.Retry` (delay = backoff with equal
jitter); with none left it becomes :class:`~workhive.errors.Reject`. The original exception is
kept as ``__cause__`` so the worker records its traceback in the attempt history.

A task may narrow which failures are worth retrying: ``retry_on=(TimeoutError, ...)`` retries
only those (and their subclasses), ``dont_retry_on=(ValueError, ...)`` never retries those. A
failure that is not retried goes to the dead-letter queue at once, its reason saying why.
A :class:`~workhive.errors.Cancelled` task (a :class:`~workhive.errors.Skip`) is never retried.
"""

from __future__ import annotations

import random

from workhive._context import TaskContext
from workhive._task import TaskOptions
from workhive.errors import Reject, Retry, Skip
from workhive.middleware.base import CallNext, Middleware


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """``min(cap, base * 2**attempt)`` with equal jitter: half fixed, half random."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


def not_retried_because(exc: BaseException, options: TaskOptions) -> str | None:
    """Why the task's retry policy refuses to retry ``exc``, or None when it may retry."""
    name = type(exc).__name__
    if options.dont_retry_on and isinstance(exc, options.dont_retry_on):
        return f"{name} is in dont_retry_on"
    if options.retry_on is not None and not isinstance(exc, options.retry_on):
        return f"{name} is not in retry_on"
    return None


class Retries(Middleware):
    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        try:
            await call_next(ctx)
        except Retry as signal:
            if signal.count and ctx.retries_left <= 0:  # an explicit retry still has a budget
                raise Reject(f"{signal.reason} (no retries left after {ctx.attempt + 1} "
                             "attempts)") from signal
            raise
        except (Reject, Skip):  # Skip includes Cancelled
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            refused = not_retried_because(exc, ctx.options)
            if refused is not None:
                raise Reject(f"{reason} (not retried: {refused})") from exc
            if ctx.retries_left > 0:
                opts = ctx.options
                delay = backoff_delay(ctx.attempt, opts.retry_backoff, opts.retry_backoff_max)
                raise Retry(delay, reason=reason) from exc
            raise Reject(f"{reason} (after {ctx.attempt + 1} attempts)") from exc
