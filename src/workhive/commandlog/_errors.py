"""Errors of the command-log package, rooted in :mod:`workhive.errors`.

::

    WorkhiveError
    ├── RegistryError
    │   └── UnknownCommandError     a command name no class was registered for
    ├── ValidationError
    │   └── CommandValidationError  a command whose fields do not validate (names command + field)
    └── WorkerError
        ├── ReplayError             a side effect (transaction) was attempted while replaying
        └── WorkerStartError        one or more workers failed to start
"""

from __future__ import annotations

from workhive.errors import RegistryError, ValidationError, WorkhiveError


class UnknownCommandError(RegistryError):
    """The log holds a command name this process has no class for (a newer producer?)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown command {name!r}: no Command class is registered for it")
        self.name = name


class CommandValidationError(ValidationError):
    """A command failed validation. ``command`` and ``field`` say where."""

    def __init__(self, command: str, reason: str, field: str | None = None) -> None:
        where = f" (field {field!r})" if field else ""
        super().__init__(f"command {command!r} is invalid{where}: {reason}")
        self.command = command
        self.field = field
        self.reason = reason


class WorkerError(WorkhiveError):
    """A command worker could not do what was asked."""


class ReplayError(WorkerError):
    """Raised when a handler opens a transaction while the worker replays the log.

    Replay rebuilds in-memory state only; the effects of replayed messages were committed the
    first time round, so writing them again would duplicate them.
    """


class WorkerStartError(WorkerError):
    """One or more workers failed in ``start``; the others were stopped again."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        names = ", ".join(f"{n}: {e!r}" for n, e in failures.items())
        super().__init__(f"{len(failures)} worker(s) failed to start: {names}")
        self.failures = failures
