"""The LogWorker protocol and CommandWorker, "50-100 workers without boilerplate".

Lifecycle (driven by :class:`~workhive.commandlog.App`):

* ``start(ctx)`` loads the durable checkpoint and, unless ``replay=False``, replays messages
  ``1..checkpoint`` with ``ctx.replaying = True`` to rebuild the worker's private state.
* ``work()`` reads up to ``batch_size`` messages after ``last_processed_id``, routes each by
  command name to its handler, runs due periodic functions and saves the checkpoint. It returns
  how many messages it moved past, so the App knows to call again at once.
* ``stop(ctx)`` saves the checkpoint.

Delivery: handlers run at least once. A handler that writes through ``ctx.transaction()``
commits the checkpoint with its writes: exactly-once effects in that database. Otherwise the
checkpoint is saved once per batch that had a handled message, so a crash re-runs at most the
handled messages of one batch (``batch_size=1`` makes that the in-flight message only).

Errors: a handler exception or an undecodable (poison) message is logged with the command name
and message id, counted, kept in ``info().recent_failures`` and skipped; the worker goes on.
"""

from __future__ import annotations

import collections
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, overload, runtime_checkable

import msgspec

from workhive.commandlog._commands import Command
from workhive.commandlog._context import AppContext, WorkerContext
from workhive.commandlog._errors import WorkerError
from workhive.commandlog._message import Message

logger = logging.getLogger(__name__)
S = TypeVar("S")
C = TypeVar("C", bound=Command)

Handler = Callable[[WorkerContext[S], C, Message], Awaitable[None] | None]
Periodic = Callable[[WorkerContext[S]], Awaitable[None] | None]
_UNSAVED_LIMIT = 10_000  # ids a worker may move past without handling before it saves anyway
_SAVE_EVERY = 5.0  # seconds


class FailedMessage(msgspec.Struct, frozen=True):
    """A message a worker skipped because it could not be decoded or its handler raised."""

    message_id: int
    command: str
    error: str
    replaying: bool = False


class LogWorkerInfo(msgspec.Struct, frozen=True):
    """A snapshot for ``workhive workers``, dashboards and tests."""

    name: str
    description: str
    running: bool
    last_processed_id: int
    checkpoint: int
    processed: int
    failed: int
    commands: list[str]
    recent_failures: list[FailedMessage]


@runtime_checkable
class LogWorker(Protocol):
    """What the App runs: anything with this lifecycle, not only CommandWorker."""

    async def start(self, ctx: AppContext) -> None: ...

    async def work(self) -> int: ...

    async def stop(self, ctx: AppContext) -> None: ...

    def info(self) -> LogWorkerInfo: ...


class _Route:
    __slots__ = ("decoder", "handler", "is_async", "target")

    def __init__(self, target: type[Command] | str, handler: Any) -> None:
        self.target = target
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.decoder: msgspec.json.Decoder[Any] | None = None


class _Every:
    __slots__ = ("due", "fn", "interval", "is_async")

    def __init__(self, interval: float, fn: Any) -> None:
        self.interval = interval
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.due = 0.0


class CommandWorker(Generic[S]):
    """Follows the log from its checkpoint and routes commands by name to handlers."""

    def __init__(
        self,
        name: str,
        description: str = "",
        state: S = None,  # type: ignore[assignment]
        *,
        replay: bool = True,
        batch_size: int = 1000,
        max_failures_kept: int = 100,
    ) -> None:
        if not name:
            raise WorkerError("a worker needs a name (its checkpoint is stored under it)")
        self.name = name
        self.description = description
        self.state = state
        self.replay = replay
        self.batch_size = batch_size
        self.ctx: WorkerContext[S] = WorkerContext(self, state)
        self._pending: dict[str, _Route] = {}
        self._routes: dict[str, tuple[Any, Any, bool]] = {}
        self._every: list[_Every] = []
        self._last = 0
        self._saved = 0
        self._saved_at = 0.0
        self._processed = 0
        self._failed = 0
        self._failures: collections.deque[FailedMessage] = collections.deque(
            maxlen=max_failures_kept
        )
        self._running = False

    # -- declaration -----------------------------------------------------------------------
    @overload
    def on_command(self, command: type[C], handler: Handler[S, C]) -> None: ...
    @overload
    def on_command(self, command: str, handler: Handler[S, Any]) -> None: ...
    def on_command(self, command: type[C] | str, handler: Handler[S, Any]) -> None:
        """Route ``command`` (a Command class or its name) to ``handler(ctx, cmd, msg)``."""
        key = command if isinstance(command, str) else command.command_name
        if key in self._pending:
            raise WorkerError(f"worker {self.name!r} already handles {key!r}")
        self._pending[key] = _Route(command, handler)

    def every(self, seconds: float, fn: Periodic[S]) -> None:
        """Run ``fn(ctx)`` from ``work()`` about every ``seconds`` (jittered by +-10%)."""
        if seconds <= 0:
            raise WorkerError(f"worker {self.name!r}: every() needs a positive interval")
        self._every.append(_Every(seconds, fn))

    @property
    def last_processed_id(self) -> int:
        return self._last

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, ctx: AppContext) -> None:
        """Resolve routes, load the checkpoint and replay up to it without side effects."""
        self.ctx.app = ctx
        registry = ctx.executor.registry
        for key, route in self._pending.items():
            if not isinstance(route.target, str):
                registry.register(route.target)
            route.decoder = registry.decoder_for(key)  # UnknownCommandError: fail fast
            self._routes[key] = (route.decoder, route.handler, route.is_async)
        checkpoint = await ctx.log.get_checkpoint(self.name)
        self._last = 0 if self.replay else checkpoint
        while self._last < checkpoint and not ctx.stopping.is_set():
            batch = await ctx.log.read_after(
                self._last, min(self.batch_size, checkpoint - self._last)
            )
            if not batch:
                break
            await self._dispatch([m for m in batch if m.id <= checkpoint], True)
        self._last = self._saved = checkpoint
        self._saved_at = time.monotonic()
        now = time.monotonic()
        for job in self._every:
            job.due = now
        self._running = True
        logger.info(
            "worker %r started at checkpoint %d (%d commands, %d periodic)",
            self.name,
            checkpoint,
            len(self._routes),
            len(self._every),
            extra={"worker": self.name, "checkpoint": checkpoint},
        )

    async def work(self) -> int:
        """Process one batch after ``last_processed_id``, then due periodic work."""
        app = self.ctx.app
        if app is None:
            raise WorkerError(f"worker {self.name!r}: work() before start()")
        batch = await app.log.read_after(self._last, self.batch_size)
        handled = await self._dispatch(batch, False) if batch else 0
        if self._every:
            await self._run_periodic()
        unsaved = self._last - self._saved
        if unsaved > 0 and (
            handled or unsaved >= _UNSAVED_LIMIT or time.monotonic() - self._saved_at >= _SAVE_EVERY
        ):
            await self._save(app)
        return len(batch)

    async def stop(self, ctx: AppContext) -> None:
        """Save the checkpoint; the worker can be started again later."""
        if self._running and self._last > self._saved:
            await self._save(ctx)
        self._running = False
        logger.info("worker %r stopped at %d", self.name, self._last, extra={"worker": self.name})

    def info(self) -> LogWorkerInfo:
        return LogWorkerInfo(
            name=self.name,
            description=self.description,
            running=self._running,
            last_processed_id=self._last,
            checkpoint=self._saved,
            processed=self._processed,
            failed=self._failed,
            commands=sorted(self._pending),
            recent_failures=list(self._failures),
        )

    def next_wakeup(self) -> float | None:
        """Seconds until the next periodic function is due (``None`` without any)."""
        if not self._every:
            return None
        return max(0.0, min(job.due for job in self._every) - time.monotonic())

    # -- internals -------------------------------------------------------------------------
    async def _dispatch(self, batch: list[Message], replaying: bool) -> int:
        """The hot loop: route, decode, call. Returns how many messages had a handler."""
        ctx = self.ctx
        ctx.replaying = replaying
        routes = self._routes
        handled = 0
        for msg in batch:
            route = routes.get(msg.name)
            if route is not None:
                handled += 1
                decoder, handler, is_async = route
                ctx.message = msg
                try:
                    command = decoder.decode(msg.payload)
                    if is_async:
                        await handler(ctx, command, msg)
                    else:
                        handler(ctx, command, msg)
                except Exception as exc:
                    self._report(msg, exc, replaying)
            self._last = msg.id
        ctx.message = None
        ctx.replaying = False
        if batch:
            self._processed += handled
        return handled

    def _report(self, msg: Message, exc: Exception, replaying: bool) -> None:
        self._failed += 1
        poison = isinstance(exc, msgspec.DecodeError | msgspec.ValidationError)
        what = "cannot be decoded (poison message)" if poison else "handler failed"
        self._failures.append(FailedMessage(msg.id, msg.name, repr(exc), replaying))
        logger.error(
            "worker %r: message %d (%s) %s%s; skipped",
            self.name,
            msg.id,
            msg.name,
            what,
            " during replay" if replaying else "",
            exc_info=exc,
            extra={"worker": self.name, "command": msg.name, "message_id": msg.id},
        )

    async def _run_periodic(self) -> None:
        now = time.monotonic()
        ctx = self.ctx
        for job in self._every:
            if now < job.due:
                continue
            job.due = now + job.interval * random.uniform(0.9, 1.1)
            try:
                if job.is_async:
                    await job.fn(ctx)
                else:
                    job.fn(ctx)
            except Exception:
                logger.exception(
                    "worker %r: periodic %s failed",
                    self.name,
                    getattr(job.fn, "__name__", job.fn),
                    extra={"worker": self.name},
                )

    async def _save(self, app: AppContext) -> None:
        await app.log.save_checkpoint(self.name, self._last)
        self._checkpoint_committed(self._last)

    def _checkpoint_committed(self, last_id: int) -> None:
        self._saved = max(self._saved, last_id)
        self._saved_at = time.monotonic()
