"""The Executor: the one way commands enter the log (validate -> append -> apply).

State appliers are the application's read model: plain functions ``(command, message) -> None``
registered per command class, called after the append succeeded. They must not perform side
effects (those belong in command workers), because :meth:`Executor.replay` calls them again on
every start to rebuild the state from the log.

Inside ``transaction()`` on a broker log (NATS, Kafka) an append is buffered until the block
exits and its id is ``0`` until then; the appliers run after the publish, with the real id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from workhive.commandlog._buffered import pending_for
from workhive.commandlog._commands import Command, CommandRegistry
from workhive.commandlog._log import MessageLog
from workhive.commandlog._message import Message

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=Command)
Applier = Callable[[Any, Message], object]


class Executor:
    """Validates, appends and applies commands. Safe to share between tasks of one loop."""

    def __init__(self, log: MessageLog, registry: CommandRegistry | None = None) -> None:
        self.log = log
        self.registry = registry if registry is not None else CommandRegistry()
        self._appliers: dict[str, list[Applier]] = {}

    def on(self, cls: type[C], applier: Callable[[C, Message], object]) -> None:
        """Apply every executed (and replayed) ``cls`` command to state with ``applier``."""
        self.registry.register(cls)
        self._appliers.setdefault(cls.command_name, []).append(applier)

    async def execute(self, command: Command, metadata: dict[str, str] | None = None) -> int:
        """Validate ``command``, append it durably, apply it; return its message id.

        Raises :class:`~workhive.commandlog.CommandValidationError` before anything is
        written. An applier failure is logged, not raised: the command is already durable and
        the state is rebuilt from the log on the next start.
        """
        payload = self.registry.encode(command)
        name = type(command).command_name
        buffered = pending_for(self.log)
        first = len(buffered.entries) if buffered is not None else 0
        message_id = await self.log.append(name, payload, metadata)
        appliers = self._appliers.get(name)
        if appliers and buffered is not None:
            buffered.after_commit(
                lambda ids: self._apply(appliers, command, Message(
                    ids[first], name, payload, time.time(), metadata or {}))
            )
        elif appliers:
            message = Message(message_id, name, payload, time.time(), metadata or {})
            self._apply(appliers, command, message)
        return message_id

    async def execute_many(self, commands: Sequence[Command]) -> list[int]:
        """Validate all, append all in one transaction, then apply each; return the ids."""
        entries = [(type(c).command_name, self.registry.encode(c), None) for c in commands]
        buffered = pending_for(self.log)
        first = len(buffered.entries) if buffered is not None else 0
        ids = await self.log.append_many(entries)

        def apply_all(ids: list[int]) -> None:
            now = time.time()
            for command, (name, payload, _), message_id in zip(commands, entries, ids, strict=True):
                appliers = self._appliers.get(name)
                if appliers:
                    self._apply(appliers, command, Message(message_id, name, payload, now))

        if buffered is not None:
            buffered.after_commit(lambda all_ids: apply_all(all_ids[first:first + len(entries)]))
        else:
            apply_all(ids)
        return ids

    def _apply(self, appliers: list[Applier], command: Command, message: Message) -> None:
        for applier in appliers:
            try:
                applier(command, message)
            except Exception:
                logger.exception(
                    "state applier failed for command %r (message %d)",
                    message.name,
                    message.id,
                    extra={"command": message.name, "message_id": message.id},
                )

    async def replay(self, after_id: int = 0, batch_size: int = 1000) -> int:
        """Rebuild application state by applying every logged command; return the last id.

        Unknown command names (written by a newer producer) are skipped with a warning.
        """
        last = after_id
        while True:
            batch = await self.log.read_after(last, batch_size)
            if not batch:
                return last
            for message in batch:
                appliers = self._appliers.get(message.name)
                if appliers is None:
                    if message.name not in self.registry:
                        self.registry.decode_or_skip(message)  # warns once per unknown name
                    continue
                try:
                    command = self.registry.decode(message)
                except Exception:
                    logger.exception(
                        "cannot decode message %d (%r); skipped", message.id, message.name
                    )
                    continue
                self._apply(appliers, command, message)
            last = batch[-1].id
