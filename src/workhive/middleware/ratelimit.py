"""Rate limits stored in the backend (Redis counters, SQL rows), not in process memory.

Limits such as Chatear's read as ``RateLimit(10, 86400)`` (10 deletions a day in all) and
``RateLimit(2, 86400, key="user_id")`` (2 recovery emails per user per day). Every attempt
counts as one hit. Over the limit the attempt is deferred to when the window allows (not a
failure, not counted against ``max_retries``) or rejected to the dead-letter queue.
"""

from __future__ import annotations

import random
from typing import Any, cast

from workhive._context import TaskContext
from workhive._task import RateLimit, TaskOptions
from workhive.backend import SupportsCounters
from workhive.errors import Reject, Retry
from workhive.middleware.base import CallNext, Middleware


def limit_key(task: str, rule: RateLimit, payload: Any) -> str:
    """``rl:<task>`` or ``rl:<task>:<value of the key field>``."""
    if rule.key is None:
        return f"rl:{task}"
    value = payload.get(rule.key) if isinstance(payload, dict) else getattr(payload, rule.key, None)
    return f"rl:{task}:{value}"


class RateLimiter(Middleware):
    def applies(self, options: TaskOptions) -> bool:
        return options.rate_limit is not None

    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        rule = ctx.options.rate_limit
        if rule is None:
            await call_next(ctx)
            return
        counters = cast(SupportsCounters, ctx.hive.backend)
        key = limit_key(ctx.name, rule, ctx.envelope.payload)
        if rule.kind == "window":
            allowed, retry_after = await counters.hit_window(key, rule.period, rule.limit)
        else:
            rate = rule.limit / rule.period
            allowed, retry_after = await counters.take_token(key, rate, rule.burst or rule.limit)
        if allowed:
            await call_next(ctx)
            return
        reason = f"rate limit {rule.limit}/{rule.period:g}s reached for {key}"
        if rule.on_limit == "reject":
            raise Reject(reason)
        # a little jitter so deferred tasks do not stampede at the window edge
        raise Retry(retry_after + random.uniform(0, min(1.0, retry_after * 0.1)),
                    count=False, reason=reason)
