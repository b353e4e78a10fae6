"""``transaction()`` for logs that live on a broker (NATS JetStream, Kafka): no database.

A broker cannot commit a handler's own writes, its appends and a checkpoint atomically, so
pretending otherwise would be a lie. What :class:`BufferedTransaction` does instead:

* appends made inside the block (``log.append``, ``ctx.execute``) are **buffered**, and published
  in order when the block exits normally; an exception discards them, as a rollback would;
* checkpoints saved inside the block are written **after** the publish;
* ``execute`` / ``fetch`` raise :class:`~workhive.errors.CapabilityError`: there is no database
  here to run SQL in. Effects that must commit exactly once with the checkpoint belong in a SQL
  log (``sqlite:///…``, ``postgresql://…``).

Appends inside the block return id ``0`` (the broker assigns ids at publish); the real ids are in
:attr:`BufferedTransaction.ids` after the block, and the Executor runs its state appliers then,
with the real ids (see :func:`pending_for`).

Delivery stays at least once: a crash after the publish and before the checkpoint runs the
handler again. On NATS the re-published entries carry the same ``Nats-Msg-Id`` (derived from the
checkpoint being saved), so the stream drops them within its duplicate window; on Kafka they are
appended again. Handlers must be idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from workhive.commandlog._log import Entry, current_transaction
from workhive.errors import CapabilityError

#: publish(entries, dedupe_key or None) -> ids, in the order of ``entries``
Publish = Callable[[Sequence[Entry], str | None], Awaitable[list[int]]]
#: save(worker, last_id)
Save = Callable[[str, int], Awaitable[None]]


class BufferedTransaction:
    """What ``transaction()`` yields on a broker log (see the module docstring)."""

    connection: Any = None  # there is no database connection

    def __init__(self, log: object, kind: str) -> None:
        self.log = log
        self.kind = kind
        self.entries: list[Entry] = []
        self.saves: dict[str, int] = {}
        self.ids: list[int] = []  # filled at commit, in the order of ``entries``
        self._after: list[Callable[[list[int]], None]] = []

    def _refuse(self, what: str) -> CapabilityError:
        return CapabilityError(
            f"{what}: a {self.kind} log has no database transaction to run SQL in. Keep writes "
            "that must commit exactly once with the checkpoint in a SQL log (sqlite:///… or "
            "postgresql://…), or make the handler idempotent (delivery is at least once)."
        )

    async def execute(self, sql: str, *args: Any) -> None:
        raise self._refuse("transaction.execute()")

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise self._refuse("transaction.fetch()")

    async def save_checkpoint(self, worker: str, last_id: int) -> None:
        """Record the checkpoint; it is written after the buffered appends are published."""
        self.saves[worker] = last_id

    def buffer(self, entries: Sequence[Entry]) -> list[int]:
        """Keep ``entries`` for the commit; their ids are not known yet (``0`` each)."""
        self.entries.extend(entries)
        return [0] * len(entries)

    def after_commit(self, callback: Callable[[list[int]], None]) -> None:
        """Call ``callback(ids)`` once the buffered entries are published (not on rollback)."""
        self._after.append(callback)

    def dedupe_key(self) -> str | None:
        """A key that is the same when the same handler runs again for the same message.

        It is the checkpoint(s) this transaction saves (``worker@id``); without one there is
        nothing stable to derive it from, and ``None`` lets the log pick unique ids.
        """
        if not self.saves:
            return None
        return ",".join(f"{w}@{i}" for w, i in sorted(self.saves.items()))


def pending_for(log: object) -> BufferedTransaction | None:
    """The buffered transaction the current task has open on ``log``, if any."""
    tx = current_transaction.get()
    return tx if isinstance(tx, BufferedTransaction) and tx.log is log else None


@asynccontextmanager
async def buffered_transaction(
    log: object, kind: str, publish: Publish, save: Save
) -> AsyncIterator[BufferedTransaction]:
    """Yield a :class:`BufferedTransaction`; on normal exit publish, then save checkpoints.

    Nested use in the same task joins the outer transaction.
    """
    outer = pending_for(log)
    if outer is not None:
        yield outer
        return
    tx = BufferedTransaction(log, kind)
    token = current_transaction.set(tx)
    try:
        yield tx
    finally:
        current_transaction.reset(token)
    if tx.entries:
        tx.ids = await publish(tx.entries, tx.dedupe_key())
    for worker, last_id in tx.saves.items():
        await save(worker, last_id)
    for callback in tx._after:
        callback(tx.ids)
