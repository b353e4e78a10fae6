"""The MessageLog contract, layered as eventsourcing does: append/read, ordered, tracked.

* **append/read**: ``append`` / ``append_many`` return the ids the log assigned;
  ``read_after(last_id, limit)`` returns messages with ``id > last_id`` in id order. This is the
  hot path: implementations read in one query per batch and build :class:`Message` structs
  without per-row Python logic.
* **ordered** (gap-safe): once ``read_after`` has returned id *n*, no message with an id below
  *n* can appear later. A reader that only remembers the last id it saw never skips a message.
  SQLite gets this from its single writer; PostgreSQL serialises appends with a transaction-scoped
  advisory lock, so ids commit in the order they were drawn; NATS JetStream (stream sequence)
  and Kafka (offset + 1 of a one-partition topic) assign ids on the server in commit order.
* **tracked**: checkpoints (``worker -> last processed id``) live in the same store, and
  ``transaction()`` lets a handler's own writes, any commands it appends and the worker's
  checkpoint commit together. Broker logs have no database: their ``transaction()`` buffers
  appends until it exits and saves the checkpoint after them (``_buffered.py``).

``wait_for(after_id, timeout)`` waits without busy-polling until the head passes ``after_id``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from workhive.commandlog._message import Message

#: (name, payload, metadata) as accepted by ``append_many``.
Entry = tuple[str, bytes, dict[str, str] | None]


@runtime_checkable
class Transaction(Protocol):
    """An open transaction on the log's own database.

    ``execute`` / ``fetch`` take SQL in the store's dialect (``?`` for SQLite, ``$1`` for
    PostgreSQL). ``connection`` is the driver connection for anything else; on SQLite use
    :meth:`run` to call it on the log's writer thread. On broker logs (NATS, Kafka)
    ``connection`` is ``None`` and ``execute`` / ``fetch`` raise ``CapabilityError``.
    """

    connection: Any

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    async def save_checkpoint(self, worker: str, last_id: int) -> None: ...


@runtime_checkable
class MessageLog(Protocol):
    """An append-only, ordered, durable log of commands with strictly increasing ids."""

    url: str  # for display: never holds a password (see workhive._redact)

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def append(
        self, name: str, payload: bytes, metadata: dict[str, str] | None = None
    ) -> int:
        """Append one message; its id (the logs that subclass this share this one)."""
        return (await self.append_many([(name, payload, metadata)]))[0]

    async def append_many(self, entries: Sequence[Entry]) -> list[int]: ...

    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]: ...

    async def head(self) -> int: ...

    async def wait_for(self, after_id: int, timeout: float) -> bool: ...

    async def get_checkpoint(self, worker: str) -> int: ...

    async def save_checkpoint(self, worker: str, last_id: int) -> None: ...

    async def checkpoints(self) -> dict[str, tuple[int, float]]: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


#: The transaction the current task has open, so that an append made inside it (a handler
#: executing a command) joins it instead of waiting for the writer it already holds.
current_transaction: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "workhive_commandlog_transaction", default=None
)


class HeadWatcher:
    """Shared wake-up for every reader of one log: one notifier, any number of waiters.

    The log calls :meth:`advance` whenever it learns of a new head (its own append, a
    PostgreSQL NOTIFY, a SQLite ``data_version`` change). ``wait`` parks on an
    :class:`asyncio.Event` that is replaced after each wake, so 100 idle workers cost 100
    futures and no polling of their own.
    """

    def __init__(self) -> None:
        self.head = 0
        self._event = asyncio.Event()
        self.waiters = 0

    def advance(self, head: int) -> None:
        if head > self.head:
            self.head = head
            event, self._event = self._event, asyncio.Event()
            event.set()

    async def wait(self, after_id: int, timeout: float) -> bool:
        if self.head > after_id:
            return True
        self.waiters += 1
        try:
            async with asyncio.timeout(timeout):
                while self.head <= after_id:
                    await self._event.wait()
        except TimeoutError:
            return False
        finally:
            self.waiters -= 1
        return True
