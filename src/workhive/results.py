"""Task results, status, progress and cancellation, as a producer sees them.

A task asks for its result to be kept with ``@module.task(store_result=True, result_ttl=...)``,
or one call asks with ``enqueue(..., store_result=True)``. The request travels in the envelope
(header :data:`RESULT_HEADER`, the ttl in seconds), so the worker needs no shared registry and a
producer that enqueues by name can ask too. The worker then writes one small record per state
change (running, progress, retrying, and the final succeeded / failed / cancelled) to the
backend's :class:`~workhive.backend.SupportsResults` store, each write renewing the ttl.

:class:`ResultHandle` reads that record: ``await handle.status()`` at any time,
``await handle.result(timeout=)`` waits for the final state and returns the value, or raises
:class:`~workhive.errors.TaskFailed` (with the remote type, message and traceback) or
:class:`~workhive.errors.TaskCancelled`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import msgspec

from workhive.backend import Backend, Capability, SupportsCancel, SupportsResults, require
from workhive.errors import (
    CapabilityError,
    ResultTimeout,
    SerializationError,
    TaskCancelled,
    TaskFailed,
    ValidationError,
)

if TYPE_CHECKING:
    from workhive._task import TaskOptions

R = TypeVar("R")


class ResultsHive(Protocol):
    """What reading a result or cancelling a task uses of a :class:`~workhive.hive.Hive`: its
    backend, opened on demand. A protocol, so the worker's result tracker (which imports this
    module) does not reach the hive that builds workers."""

    backend: Backend

    async def open(self) -> None: ...

#: envelope header asking the worker to keep the result; its value is the ttl in seconds
RESULT_HEADER = "workhive-result-ttl"
#: how long results are kept when neither the task nor the call says
DEFAULT_RESULT_TTL = 86_400.0
#: how long a cancel request for a task that is not waiting in a queue is remembered
CANCEL_TTL = 86_400.0

State = Literal["pending", "running", "retrying", "succeeded", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class TaskStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One task's record. ``pending``: nothing recorded yet (not started, or no result was
    asked for, or it expired). ``progress`` is a fraction in [0, 1] with a short ``message``.
    ``error_*`` describe the last failure (``retrying``) or the final one (``failed``)."""

    id: str
    state: State = "pending"
    value: Any = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    progress: float | None = None
    message: str = ""
    attempt: int = 0
    updated_at: float = 0.0

    @property
    def done(self) -> bool:
        return self.state in FINAL


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TaskStatus)


def encode_status(status: TaskStatus) -> bytes:
    return _encoder.encode(status)


def decode_status(data: bytes) -> TaskStatus:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SerializationError(f"a stored task result is not readable: {exc}") from exc


def result_keep(store_result: bool | None, result_ttl: float | None,
                options: TaskOptions | None) -> float | None:
    """How long to keep one run's result (None: not at all): the call's choice, else the
    task's declaration. ``result_ttl`` alone means "keep it"; ``store_result=False`` wins."""
    if store_result is False:
        return None
    if result_ttl is not None:
        if not math.isfinite(result_ttl) or result_ttl <= 0:
            raise ValidationError(
                f"result_ttl must be a finite number of seconds > 0, got {result_ttl!r}")
        return result_ttl
    if store_result or (options is not None and options.store_result):
        declared = options.result_ttl if options is not None else None
        return declared or DEFAULT_RESULT_TTL
    return None


def results_of(hive: ResultsHive, what: str) -> SupportsResults:
    """The hive's result store, or a :class:`CapabilityError` that says how to get one."""
    backend = hive.backend
    require(backend, Capability.RESULTS, what)
    if not isinstance(backend, SupportsResults):  # declared but not implemented: a bug
        raise CapabilityError(f"the {backend.name!r} backend declares results but cannot "
                              f"store them ({what})")
    return backend


def cancel_of(hive: ResultsHive, what: str) -> SupportsCancel:
    backend = hive.backend
    require(backend, Capability.CANCEL, what)
    if not isinstance(backend, SupportsCancel):
        raise CapabilityError(f"the {backend.name!r} backend declares cancel but cannot "
                              f"cancel ({what})")
    return backend


async def read_status(hive: ResultsHive, task_id: str) -> TaskStatus:
    """The task's record (state ``pending`` when there is none)."""
    await hive.open()
    data = await results_of(hive, f"status of task {task_id}").get_result(task_id)
    return TaskStatus(id=task_id) if data is None else decode_status(data)


async def cancel_task(hive: ResultsHive, task_id: str) -> bool:
    """Cancel ``task_id``: True when it was still waiting and is now deleted; False when it
    was flagged for the worker that runs (or will run) it. Where results are kept, a deleted
    task's record says ``cancelled`` at once; a flagged one's when its worker stops it.

    A broker (RabbitMQ, Kafka, NATS) cannot delete one waiting message: with a coordination
    store that keeps cancel flags, every cancel is a flag (False), and a task that still waits
    is dropped unrun when a worker receives it."""
    await hive.open()
    deleted = await cancel_of(hive, f"cancel task {task_id}").cancel(task_id, CANCEL_TTL)
    backend = hive.backend
    if deleted and isinstance(backend, SupportsResults) and \
            backend.features.has(Capability.RESULTS):
        record = TaskStatus(id=task_id, state="cancelled", updated_at=time.time())
        await backend.store_result(task_id, encode_status(record), DEFAULT_RESULT_TTL)
    return deleted


class ResultHandle(Generic[R]):
    """A task that was enqueued: its ``id``, whether the enqueue was a ``duplicate``, and its
    status, result and cancellation. ``convert`` turns the stored value (plain builtins) into
    the handler's declared return type, when a typed task handle knows it."""

    __slots__ = ("_convert", "duplicate", "hive", "id")

    def __init__(self, hive: ResultsHive, task_id: str, *, duplicate: bool = False,
                 convert: Callable[[Any], Any] | None = None) -> None:
        self.hive = hive
        self.id = task_id
        self.duplicate = duplicate
        self._convert = convert

    def __repr__(self) -> str:
        return f"ResultHandle(id={self.id!r}, duplicate={self.duplicate})"

    async def status(self) -> TaskStatus:
        """The current record; refused with :class:`CapabilityError` where results cannot be
        kept."""
        return await read_status(self.hive, self.id)

    async def result(self, timeout: float | None = None, *, poll: float = 0.05) -> R:
        """Wait for the final state: the value, or :class:`TaskFailed` /
        :class:`TaskCancelled`; :class:`ResultTimeout` after ``timeout`` seconds.

        Waits by polling the store (from ``poll`` seconds, doubling to 1 s), so it works with
        every store and across processes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = poll
        while True:
            status = await self.status()
            if status.done:
                return self._outcome(status)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ResultTimeout(f"task {self.id} did not finish within {timeout:g}s "
                                        f"(state: {status.state})")
                pause = min(pause, left)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _outcome(self, status: TaskStatus) -> R:
        if status.state == "failed":
            raise TaskFailed(self.id, status.error_type, status.error_message, status.traceback)
        if status.state == "cancelled":
            raise TaskCancelled(self.id)
        value = status.value
        if self._convert is not None and value is not None:
            value = self._convert(value)
        return value  # type: ignore[no-any-return]

    async def cancel(self) -> bool:
        """See :func:`cancel_task`."""
        return await cancel_task(self.hive, self.id)


__all__ = [
    "CANCEL_TTL",
    "DEFAULT_RESULT_TTL",
    "RESULT_HEADER",
    "ResultHandle",
    "State",
    "TaskStatus",
    "cancel_task",
    "decode_status",
    "encode_status",
    "read_status",
    "result_keep",
]
