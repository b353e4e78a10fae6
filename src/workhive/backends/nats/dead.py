"""Dead letters of the ``nats`` backend, in their own stream: listing, replay, purge, and a
transport's kept letters.

Why a stream: dead letters must be browsable, replayable and purgeable from the CLI and the
dashboard, long after the work-queue stream removed the original. Each letter is one message on
``P.x.<queue>`` in the limits-retention ``P_DEAD`` stream; its body is a small MessagePack
record (id, queue, stored bytes, reason, time), so malformed bytes are kept exactly. Listing
reads the stream oldest first through an ephemeral consumer; replay and purge delete the
letters by stream sequence. Replay enqueues through the backend's own ``enqueue`` (handed in),
so a replayed task is published exactly like a new one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from nats.aio.msg import Msg

from workhive._envelope import Envelope, decode, replay_copy
from workhive.backend import DeadLetter, EnqueueResult, event_group
from workhive.backends.nats.connection import NatsConnection
from workhive.backends.nats.naming import untoken
from workhive.errors import SerializationError


class _Letter(msgspec.Struct, array_like=True):
    id: str
    queue: str
    body: bytes
    reason: str
    failed_at: float


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Letter).decode

Enqueue = Callable[[Sequence[Envelope]], Awaitable[list[EnqueueResult]]]


class NatsDeadLetters:
    """:class:`~workhive.backend.SupportsDeadLetters` and ``keep_dead`` over one
    :class:`~workhive.backends.nats.connection.NatsConnection`; ``enqueue`` publishes the
    copies a replay makes."""

    def __init__(self, conn: NatsConnection, enqueue: Enqueue) -> None:
        self._conn = conn
        self._names = conn.names
        self._enqueue = enqueue

    def message(self, letter: DeadLetter) -> tuple[str, bytes, dict[str, str]]:
        """Subject, body and headers of ``letter`` on the dead stream (the id deduplicates)."""
        body = _encode(_Letter(letter.id, letter.queue, letter.body, letter.reason,
                               letter.failed_at))
        return self._names.dead_subject(letter.queue), body, {"Nats-Msg-Id": f"dead:{letter.id}"}

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            subject, body, headers = self.message(letter)
            await self._conn.guard(self._conn.js.publish(subject, body, headers=headers))

    def _dead_filter(self, queue: str | None) -> str:
        return self._names.dead_subject(queue) if queue else self._names.dead_root + ">"

    async def _letters(self, queue: str | None) -> list[tuple[int, DeadLetter]]:
        out = []
        async with contextlib.aclosing(self._conn.scan(self._names.dead,
                                                       self._dead_filter(queue))) as scan:
            async for msg in scan:
                out.append((_seq(msg), _letter(msg)))
        return out

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        skipped = 0
        async with contextlib.aclosing(self._conn.scan(self._names.dead,
                                                       self._dead_filter(queue))) as scan:
            async for msg in scan:
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(_letter(msg))
                if len(out) >= limit:
                    break
        return out

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Enqueue a fresh copy of each chosen letter in the queue it died in, then delete it.
        Letters whose bytes are not an envelope cannot be replayed and stay."""
        chosen = None if ids is None else set(ids)
        copies: list[Envelope] = []
        seqs: list[int] = []
        for seq, letter in await self._letters(queue):
            if chosen is not None and letter.id not in chosen:
                continue
            try:
                env = decode(letter.body)
            except SerializationError:
                continue
            copy = replay_copy(env)
            copies.append(msgspec.structs.replace(copy, queue=letter.queue,
                                                  group=event_group(letter.queue) or copy.group))
            seqs.append(seq)
        if copies:
            await self._enqueue(copies)
        for seq in seqs:
            await self._conn.guard(self._conn.js.delete_msg(self._names.dead, seq))
        return len(copies)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        if ids is None:
            answer = await self._conn.request(f"$JS.API.STREAM.PURGE.{self._names.dead}",
                                              {"filter": self._dead_filter(queue)})
            return int(answer.get("purged", 0))
        chosen = set(ids)
        purged = 0
        for seq, letter in await self._letters(queue):
            if letter.id in chosen:
                await self._conn.guard(self._conn.js.delete_msg(self._names.dead, seq))
                purged += 1
        return purged


def _seq(msg: Msg) -> int:
    return int(msg.reply.split(".")[-4]) if msg.reply else 0


def _letter(msg: Msg) -> DeadLetter:
    try:
        rec = _decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # bytes someone published to the dead subject by hand: show them as they are
        return DeadLetter(f"seq-{_seq(msg)}", untoken(msg.subject.rsplit(".", 1)[-1]), msg.data,
                          "not a workhive dead letter", time.time())
    return DeadLetter(rec.id, rec.queue, rec.body, rec.reason, rec.failed_at)
