"""The worker's side of results, progress and cancellation.

Kept out of :mod:`workhive.worker` so the runtime stays one concept: the worker hands each
handler call to :meth:`Tracker.execute` and each settlement to :meth:`Tracker.finish`.

* **Results**: only for messages that carry :data:`~workhive.results.RESULT_HEADER`, so a task
  that did not ask costs nothing: no write, no extra task.
* **Cancellation**: every :attr:`poll` seconds, while something runs, one call asks the backend
  which running ids are flagged (:class:`~workhive.backend.SupportsCancel`). An async handler
  is cancelled; a sync one (a thread Python cannot stop) sees ``ctx.cancelled`` turn true. Either
  way the attempt ends as :class:`~workhive.errors.Cancelled`: acknowledged, never retried.
  A broker cannot delete a waiting task, so its cancel only flags it
  (:class:`CancelsOnArrival`): there, each fetched batch is checked against the flags in one
  call (:meth:`Tracker.screen`) and a flagged task is settled the same way, unrun. Backends
  that delete waiting tasks themselves skip that call.
* **Progress** (``ctx.progress``) goes to the record and to the worker's heartbeat, so
  ``workhive status`` shows it for every task, asked-for results or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from workhive._context import TaskContext
from workhive._envelope import Envelope
from workhive._validate import payload as plain_value
from workhive.backend import (
    Backend,
    Capability,
    Delivery,
    Settlement,
    SupportsCancel,
    SupportsResults,
)
from workhive.errors import Cancelled, Reject, Retry, WorkhiveError
from workhive.results import RESULT_HEADER, TaskStatus, encode_status

logger = logging.getLogger(__name__)

_TRACEBACK_LIMIT = 8000
_NONE: frozenset[str] = frozenset()


@runtime_checkable
class CancelsOnArrival(Protocol):
    """A backend whose cancel cannot delete a waiting task, only flag it: a broker transport
    with its cancel flags in a coordination store
    (:class:`~workhive.backends.composite.Composite`). When ``cancel_on_arrival`` is true the
    worker checks every fetched batch against the flags before running it."""

    cancel_on_arrival: bool


class _Id(msgspec.Struct):
    """The one field :meth:`Tracker.screen` reads of a message (the rest is skipped)."""

    id: str


_id_decoder = msgspec.msgpack.Decoder(_Id)


def _id_of(body: bytes) -> str | None:
    try:
        return _id_decoder.decode(body).id
    except Exception:  # malformed: the worker dead-letters it when it decodes it in full
        return None


def result_ttl(env: Envelope) -> float | None:
    """The ttl the message asked its result to be kept for, or None."""
    raw = env.headers.get(RESULT_HEADER)
    if raw is None:
        return None
    try:
        ttl = float(raw)
    except ValueError:
        return None
    return ttl if math.isfinite(ttl) and ttl > 0 else None  # a hand-written header, say


class Tracker:
    def __init__(self, backend: Backend, poll: float = 1.0) -> None:
        self.backend = backend
        self.poll = poll
        self.running: dict[str, TaskContext] = {}
        self.started: dict[str, float] = {}  # task id -> when its handler started (unix s)
        self._values: dict[str, Any] = {}
        self._results = (backend if isinstance(backend, SupportsResults)
                         and backend.features.has(Capability.RESULTS) else None)
        self._cancel = (backend if isinstance(backend, SupportsCancel)
                        and backend.features.has(Capability.CANCEL) else None)
        #: check each fetched batch against the cancel flags (see :meth:`screen`)
        self.screens = self._cancel is not None and isinstance(backend, CancelsOnArrival) \
            and backend.cancel_on_arrival is True

    # -- one attempt ------------------------------------------------------------------------

    async def execute(self, ctx: TaskContext, start: Callable[[], Awaitable[Any]]) -> None:
        """Run the handler (``start()``), keeping its return value for :meth:`finish`.

        A cancel request cancels the *current* task (the worker's task for this message) while
        the handler runs, and takes that one cancellation back (``uncancel``) to end the
        attempt as :class:`Cancelled`; a shutdown's or a timeout's cancellation passes through
        untouched. No task of its own per message: this is the hot path.
        """
        ctx.tracker = self
        self.running[ctx.id] = ctx
        self.started[ctx.id] = time.time()
        keep = RESULT_HEADER in ctx.envelope.headers
        try:
            if keep:
                await self._write(ctx.envelope, "running")
            this = asyncio.current_task()
            ctx.runner = this if self._cancel is not None else None
            try:
                value = await start()
            except asyncio.CancelledError:
                if ctx.cancelled and this is not None and this.cancelling() == 1:
                    this.uncancel()  # ours alone: a cancel request, not a shutdown
                    raise Cancelled() from None
                raise
            finally:
                ctx.runner = None
            if ctx.cancelled:  # a sync handler that noticed it, or an async one that
                if ctx.handler.is_async and this is not None and this.cancelling() == 1:
                    this.uncancel()  # swallowed our CancelledError: take it back all the same
                raise Cancelled()
            if keep:
                self._values[ctx.id] = value
        finally:
            self.running.pop(ctx.id, None)
            self.started.pop(ctx.id, None)

    async def progress(self, ctx: TaskContext, fraction: float, message: str) -> None:
        await self._write(ctx.envelope, "running", progress=fraction, message=message)

    @staticmethod
    def records(env: Envelope | None) -> bool:
        """Whether ``env`` asked for its result: only then does the worker call :meth:`finish`
        (a plain check, so the hot path awaits nothing more)."""
        return env is not None and RESULT_HEADER in env.headers

    async def finish(self, env: Envelope, settlement: Settlement,
                     outcome: BaseException | None) -> None:
        """Record how the attempt ended (the message asked for its result: :meth:`records`)."""
        value = self._values.pop(env.id, None)
        if result_ttl(env) is None or self._results is None or settlement.action == "release":
            return
        if isinstance(outcome, Cancelled):
            await self._write(env, "cancelled")
        elif settlement.action == "ack":
            try:
                plain = plain_value(value, f"the result of task {env.name!r}")
            except WorkhiveError as exc:
                await self._write(env, "failed", error=exc)
            else:
                await self._write(env, "succeeded", value=plain)
        elif settlement.action == "retry":
            if isinstance(outcome, Retry) and not outcome.count:
                return  # deferred (a rate limit): not a failure, nothing new to say
            await self._write(env, "retrying", error=outcome)
        else:
            await self._write(env, "failed", error=outcome, reason=settlement.reason)

    async def _write(self, env: Envelope, state: str, *, value: Any = None,
                     error: BaseException | None = None, reason: str = "",
                     progress: float | None = None, message: str = "") -> None:
        ttl = result_ttl(env)
        if ttl is None or self._results is None:
            return
        cause = _cause(error)
        record = TaskStatus(
            id=env.id, state=state, value=value,  # type: ignore[arg-type]
            error_type=_qualname(cause) if cause is not None else "",
            error_message=str(cause) if cause is not None else reason,
            traceback=_traceback(cause), progress=progress, message=message,
            attempt=env.attempt, updated_at=time.time())
        try:
            await self._results.store_result(env.id, encode_status(record), ttl)
        except Exception as exc:  # a result store hiccup must not fail the task itself
            logger.error("could not store the %s state of task %s: %s", state, env.id, exc)

    # -- fetched batches (backends that cancel on arrival) -------------------------------

    async def screen(self, deliveries: Sequence[Delivery]) -> frozenset[str]:
        """The ids among ``deliveries`` flagged as cancelled while they waited: one call for
        the batch. The worker settles those as cancelled without running them (:meth:`drop`).
        When the flags cannot be read, every task runs, and a flagged one is still stopped by
        the running-task poll (:meth:`watch`)."""
        if self._cancel is None or not deliveries:
            return _NONE
        ids = [task_id for d in deliveries if (task_id := _id_of(d.body)) is not None]
        if not ids:
            return _NONE
        try:
            return frozenset(await self._cancel.cancelled(ids))
        except Exception as exc:
            logger.warning("could not read cancel requests for %d fetched task(s); running "
                           "them: %s", len(ids), exc)
            return _NONE

    @staticmethod
    def drop(env: Envelope, queue: str) -> Cancelled:
        """The outcome of a task cancelled while it waited: settled as cancelled, unrun."""
        logger.info("Dropped %s %s (%s) from queue %s: cancelled while it waited", env.kind,
                    env.name, env.id, queue, extra={"task_id": env.id, "task": env.name,
                                                    "queue": queue})
        return Cancelled("cancelled before it started")

    # -- background -------------------------------------------------------------------------

    async def watch(self) -> None:
        """Poll the backend's cancel flags for the running tasks until cancelled."""
        if self._cancel is None:
            return
        while True:
            await asyncio.sleep(self.poll)
            if not self.running:
                continue
            try:
                flagged = await self._cancel.cancelled(list(self.running))
            except Exception as exc:
                logger.warning("could not read cancel requests: %s", exc)
                continue
            for task_id in flagged:
                ctx = self.running.get(task_id)
                if ctx is not None and not ctx.cancelled:
                    logger.info("Cancelling task %s (%s) by request", task_id, ctx.name)
                    ctx.cancelled = True
                    if ctx.handler.is_async and ctx.runner is not None:
                        ctx.runner.cancel()

    def snapshot(self, running: list[TaskContext] | None = None) -> dict[str, Any]:
        """Progress of running tasks for the heartbeat: id -> [name, fraction, message]."""
        contexts = running if running is not None else list(self.running.values())
        return {c.id: [c.name, c.progress_fraction, c.progress_message] for c in contexts
                if c.progress_fraction is not None}

    def running_tasks(self, limit: int = 100) -> dict[str, list[Any]]:
        """The running tasks for the heartbeat, oldest first (at most ``limit``, so a worker
        with thousands of slots keeps its heartbeat small): id -> [name, queue, started_at].
        Dashboards show which worker runs a task, and for how long, from it."""
        oldest = sorted(self.started.items(), key=lambda item: item[1])[:limit]
        return {task_id: [ctx.name, ctx.delivery.queue, at] for task_id, at in oldest
                if (ctx := self.running.get(task_id)) is not None}


def _cause(error: BaseException | None) -> BaseException | None:
    """The exception to report: what a Retry / Reject signal wraps, else the error itself."""
    if isinstance(error, Retry | Reject) and error.__cause__ is not None:
        return error.__cause__
    return error


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else \
        f"{cls.__module__}.{cls.__qualname__}"


def _traceback(exc: BaseException | None) -> str:
    if exc is None or exc.__traceback__ is None:
        return ""
    with contextlib.suppress(Exception):
        return "".join(traceback.format_exception(exc))[-_TRACEBACK_LIMIT:]
    return ""
