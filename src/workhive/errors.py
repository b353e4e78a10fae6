"""One exception tree for everything workhive raises.

::

    WorkhiveError
    ├── ConfigError                 bad workhive.yaml / env / arguments (names key and file)
    │   └── CapabilityError         the backend cannot do what was configured or asked
    │                               (delay on redis-pubsub, results without a store...)
    ├── RegistryError               duplicate or unknown task / subscriber / cron job
    │   └── UnknownTaskError
    ├── SerializationError          a payload that cannot be encoded, bytes that are not an envelope
    ├── ValidationError             an enqueue option or payload the API refuses (names which)
    ├── BackendError                anything a broker or store did wrong
    │   └── BackendUnavailable      cannot reach the broker (enqueue while Redis is down...)
    └── TaskError                   raised around a handler failure
        ├── TaskTimeout             the attempt ran past the task's timeout
        ├── TaskFailed              a task's stored result is a failure (remote type, traceback)
        ├── TaskCancelled           a task's stored result says it was cancelled
        └── ResultTimeout           no result arrived within ``result(timeout=)``

Control-flow signals (:class:`Retry`, :class:`Reject`, :class:`Skip`, :class:`Cancelled`) are
*not* errors: a handler
raises them to steer the worker, and they never count as a crash.
"""

from __future__ import annotations


class WorkhiveError(Exception):
    """Root of every error workhive raises on purpose."""


class ConfigError(WorkhiveError):
    """Configuration is invalid. The message names the key and, when known, the file."""


class RegistryError(WorkhiveError):
    """A task, subscriber or cron job was declared twice, or asked for and never declared."""


class UnknownTaskError(RegistryError):
    """A message names a task this worker has no handler for."""


class SerializationError(WorkhiveError):
    """A payload cannot be encoded (objects, lone surrogates, ints beyond 64 bits), or bytes in
    the store could not be decoded into an envelope."""


class ValidationError(WorkhiveError):
    """An enqueue option is invalid, or a payload does not match its handler's type."""


class BackendError(WorkhiveError):
    """The broker or store failed; driver errors are translated into this branch."""


class BackendUnavailable(BackendError):
    """The broker cannot be reached. Nothing was written; it is safe to retry the call."""


class CapabilityError(ConfigError):
    """The backend does not support what was asked; the message says which backend can.

    A refusal of the set-up, not a broker failure: nothing was sent and retrying cannot help,
    so it is a :class:`ConfigError`, and ``except BackendError`` (meant for outages) does not
    swallow it."""


class TaskError(WorkhiveError):
    """A handler failed."""


class TaskTimeout(TaskError):
    """An attempt ran longer than the task's ``timeout``; it counts as a failed attempt."""


class TaskFailed(TaskError):
    """The task ran and failed for good (dead-lettered); raised by ``await handle.result()``.

    Carries what the worker recorded: ``remote_type`` (the exception's qualified class name),
    ``remote_message`` and ``remote_traceback`` (text: the exception lived in another process).
    """

    def __init__(self, task_id: str, remote_type: str, remote_message: str,
                 remote_traceback: str = "") -> None:
        super().__init__(f"task {task_id} failed: {remote_type}: {remote_message}")
        self.task_id = task_id
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback


class TaskCancelled(TaskError):
    """The task was cancelled (before it ran, or cooperatively while it ran)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} was cancelled")
        self.task_id = task_id


class ResultTimeout(TaskError, TimeoutError):
    """``await handle.result(timeout=...)`` gave up waiting; the task may still finish."""


class Retry(Exception):
    """Raise from a handler to retry later without treating the attempt as a crash.

    ``delay`` overrides the backoff. With ``count=False`` the attempt is not counted against
    ``max_retries`` (used by rate limits that defer work).
    """

    def __init__(self, delay: float | None = None, *, count: bool = True, reason: str = "") -> None:
        super().__init__(reason or "retry requested")
        self.delay = delay
        self.count = count
        self.reason = reason


class Reject(Exception):
    """Raise from a handler to send the message straight to the dead-letter queue."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Skip(Exception):
    """Raise from a handler to drop the message as done (acknowledged, no retry, no DLQ)."""


class Cancelled(Skip):
    """The task was cancelled by request (``handle.cancel()``, ``workhive cancel ID``) while it
    ran: like :class:`Skip` the message is settled as done, never retried nor dead-lettered
    (and counted as skipped); its result says ``cancelled``.

    The worker raises it when it cancels an async handler or when a sync handler returns after
    ``ctx.cancelled`` became true; a handler may raise it itself to stop early.
    """

    def __init__(self, reason: str = "cancelled by request") -> None:
        super().__init__(reason)
        self.reason = reason
