"""Per-attempt timeout; a timed-out attempt raises TaskTimeout and counts as a failure.

Async handlers are cancelled. A sync handler runs in a thread that Python cannot kill: the
attempt is still failed at the deadline and its slot freed, but the thread runs to completion.
"""

from __future__ import annotations

import asyncio

from workhive._context import TaskContext
from workhive.errors import TaskTimeout
from workhive.middleware.base import CallNext, Middleware


class Timeouts(Middleware):
    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        timeout = ctx.timeout
        if timeout is None:
            await call_next(ctx)
            return
        try:
            async with asyncio.timeout(timeout):
                await call_next(ctx)
        except TimeoutError as exc:
            raise TaskTimeout(f"{ctx.name} timed out after {timeout:g}s") from exc
