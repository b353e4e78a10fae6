"""What every log that lives on a broker (NATS JetStream, Kafka) does the same way.

A broker log has no database to run a transaction in, so its appends and checkpoint saves go
one of two ways: inside ``transaction()`` they are kept by the transaction (see
:mod:`._buffered`) and written when the block exits; outside, they are written at once.
:class:`BrokerLog` makes that choice once; each log says only how it writes
(:meth:`BrokerLog._write`, :meth:`BrokerLog._save_direct`) and how it connects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar, Self

from workhive.commandlog._buffered import buffered_transaction, pending_for
from workhive.commandlog._log import Entry, MessageLog, Transaction


class BrokerLog(MessageLog, ABC):
    """Base of a broker log whose appends go through ``_write(entries, dedupe)``."""

    #: the log's name in errors (``"nats"``, ``"kafka"``)
    kind: ClassVar[str]

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _write(self, entries: Sequence[Entry], dedupe: str | None) -> list[int]:
        """Store ``entries`` in order now and return their ids, in entry order.

        ``dedupe`` is a transaction's key (see :meth:`~._buffered.BufferedTransaction.dedupe_key`)
        or ``None`` for a plain append.
        """

    @abstractmethod
    async def _save_direct(self, worker: str, last_id: int) -> None:
        """Store ``worker``'s checkpoint now."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def append_many(self, entries: Sequence[Entry]) -> list[int]:
        """Store every entry and return their ids, in entry order (see ``_write``).

        Inside ``transaction()`` the entries are buffered instead and ids are ``0``.
        """
        if not entries:
            return []
        tx = pending_for(self)
        if tx is not None:
            return tx.buffer(entries)
        return await self._write(entries, None)

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        """Store ``worker``'s checkpoint; inside ``transaction()``, after its appends."""
        tx = pending_for(self)
        if tx is not None:
            await tx.save_checkpoint(worker, last_id)
            return
        await self._save_direct(worker, last_id)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """No database transaction: appends are buffered and written when the block exits
        normally, then the checkpoints are saved (see :mod:`workhive.commandlog._buffered`)."""
        async with buffered_transaction(self, self.kind, self._write, self._save_direct) as tx:
            yield tx
