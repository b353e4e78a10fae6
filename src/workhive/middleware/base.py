"""The onion: ``async def __call__(ctx, call_next)``.

The worker builds the chain once at start-up. The framework owns the outermost layer (turning
what comes out into an ack / retry / dead-letter decision, see :mod:`workhive.worker`) and the
innermost (calling the handler). A middleware lists the task options it reads in ``options``;
an option no middleware reads is refused when the module is included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from workhive._context import TaskContext
from workhive._task import TaskOptions

CallNext = Callable[[TaskContext], Awaitable[None]]


class Middleware:
    """Base class: override ``__call__``; call ``await call_next(ctx)`` to continue."""

    options: ClassVar[frozenset[str]] = frozenset()

    def applies(self, options: TaskOptions) -> bool:
        """Whether this layer does anything for a task with ``options``; the worker leaves it
        out of that task's chain when not (the chain is built once per task at start-up)."""
        return True

    async def __call__(self, ctx: TaskContext, call_next: CallNext) -> None:
        await call_next(ctx)


def build_chain(middleware: Sequence[Middleware], innermost: CallNext) -> CallNext:
    """Compose once: ``middleware[0]`` is outermost."""
    chain = innermost
    for mw in reversed(middleware):
        chain = _bind(mw, chain)
    return chain


def _bind(mw: Middleware, call_next: CallNext) -> CallNext:
    async def layer(ctx: TaskContext) -> None:
        await mw(ctx, call_next)

    return layer
