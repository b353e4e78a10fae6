"""What workers receive: the App's dependencies at start/stop, and a per-worker handler context.

:class:`WorkerContext` is created once per worker and mutated per message (``message``,
``replaying``) rather than allocated per message: dispatch is the hot path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from workhive.commandlog._commands import Command
from workhive.commandlog._errors import ReplayError, WorkerError
from workhive.commandlog._executor import Executor
from workhive.commandlog._log import MessageLog, Transaction
from workhive.commandlog._message import Message

logger = logging.getLogger(__name__)
S = TypeVar("S")


@dataclass
class AppContext:
    """Dependencies the App hands to ``LogWorker.start`` / ``LogWorker.stop``."""

    log: MessageLog
    executor: Executor
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class ContextOwner(Protocol):
    """What a :class:`WorkerContext` needs of the worker that owns it (a ``CommandWorker``)."""

    @property
    def name(self) -> str: ...

    def _checkpoint_committed(self, last_id: int) -> None: ...


class WorkerContext(Generic[S]):
    """Passed to every handler and periodic function of one :class:`CommandWorker`.

    ``replaying`` is ``True`` while ``start`` rebuilds state from already-processed messages:
    handlers update ``state`` and skip side effects. In replay, :meth:`execute` appends nothing
    and :meth:`transaction` raises :class:`ReplayError`, so a forgotten check cannot duplicate
    work that was committed the first time.
    """

    __slots__ = ("_worker", "app", "message", "replaying", "state")

    def __init__(self, worker: ContextOwner, state: S) -> None:
        self._worker = worker
        self.state = state
        self.app: AppContext | None = None
        self.message: Message | None = None
        self.replaying = False

    @property
    def worker_name(self) -> str:
        return self._worker.name

    @property
    def executor(self) -> Executor:
        if self.app is None:
            raise WorkerError(f"worker {self._worker.name!r} is not started")
        return self.app.executor

    @property
    def log(self) -> MessageLog:
        return self.executor.log

    async def execute(self, command: Command) -> int | None:
        """Execute a follow-up command; returns its id, or ``None`` while replaying.

        The new message's metadata records which worker and message caused it. Inside
        :meth:`transaction` on a broker log (NATS, Kafka) the command is published when the
        block exits, so the id returned here is ``0``.
        """
        if self.replaying:
            logger.debug("replay: not executing %s", type(command).command_name)
            return None
        meta = {"worker": self._worker.name}
        if self.message is not None:
            meta["caused_by"] = str(self.message.id)
        return await self.executor.execute(command, meta)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction on the log's database that also saves this worker's checkpoint.

        Write your handler's rows through the yielded transaction: they, any commands
        executed inside the block and the checkpoint (the current message id) commit
        together, so after a crash the message is either fully done or not done at all.

        On a broker log (NATS, Kafka) there is no database: commands executed inside the block
        are published when it exits normally (dropped if it raises), then the checkpoint is
        saved; SQL through the transaction raises ``CapabilityError``. Delivery is at least
        once there.
        """
        if self.replaying:
            raise ReplayError(
                f"worker {self._worker.name!r} opened a transaction while replaying "
                f"message {self.message.id if self.message else '?'}; guard side effects "
                "with `if ctx.replaying: return`"
            )
        message = self.message
        async with self.log.transaction() as tx:
            yield tx
            if message is not None:
                await tx.save_checkpoint(self._worker.name, message.id)
        if message is not None:
            self._worker._checkpoint_committed(message.id)
