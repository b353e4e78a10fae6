"""Command-log workers: an append-only log of typed commands, and workers that follow it.

See ``docs/commandlog.md``. The pieces, in the order data flows::

    Executor.execute(cmd) -> CommandRegistry.encode (validate) -> MessageLog.append -> appliers
    App -> CommandWorker.work() -> MessageLog.read_after -> handler(ctx, cmd, msg)
"""

from __future__ import annotations

from workhive.commandlog._app import App, open_log
from workhive.commandlog._commands import Command, CommandRegistry
from workhive.commandlog._context import AppContext, WorkerContext
from workhive.commandlog._errors import (
    CommandValidationError,
    ReplayError,
    UnknownCommandError,
    WorkerError,
    WorkerStartError,
)
from workhive.commandlog._executor import Executor
from workhive.commandlog._log import MessageLog, Transaction
from workhive.commandlog._message import Message
from workhive.commandlog._worker import CommandWorker, FailedMessage, LogWorker, LogWorkerInfo

__all__ = [
    "App",
    "AppContext",
    "Command",
    "CommandRegistry",
    "CommandValidationError",
    "CommandWorker",
    "Executor",
    "FailedMessage",
    "LogWorker",
    "LogWorkerInfo",
    "Message",
    "MessageLog",
    "ReplayError",
    "Transaction",
    "UnknownCommandError",
    "WorkerContext",
    "WorkerError",
    "WorkerStartError",
    "open_log",
]
