"""Dead letters in their own stream, and queue statistics read from stream and consumer state.

Why a stream: dead letters must be browsable, replayable and purgeable from the CLI and the
dashboard, long after the work-queue stream removed the original. Each letter is one message on
``P.x.<queue>`` in the limits-retention ``P_DEAD`` stream; its body is a small MessagePack
record (id, queue, stored bytes, reason, time), so malformed bytes are kept exactly. Listing
reads the stream oldest first through an ephemeral consumer; replay and purge delete the
letters by stream sequence.

Stats cost a handful of requests whatever the number of queues: per-subject message counts of
the task, delay and dead streams (``stream_info(subjects_filter=...)``) and one consumer list
per stream (``num_ack_pending`` = in flight, ``num_pending`` = an event group's backlog, or a
queue's scheduled tasks on its ``s_<queue>`` counter).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import msgspec
from nats.aio.msg import Msg

from workhive._envelope import Envelope, decode, replay_copy
from workhive.backend import DeadLetter, EnqueueResult, QueueStats, event_group
from workhive.backends.nats.kv import NatsCoordination
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


class NatsDeadLetters(NatsCoordination):
    """``SupportsDeadLetters``, ``keep_dead`` and ``stats``."""

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        raise NotImplementedError

    def _letter_message(self, letter: DeadLetter) -> tuple[str, bytes, dict[str, str]]:
        body = _encode(_Letter(letter.id, letter.queue, letter.body, letter.reason,
                               letter.failed_at))
        return self.names.dead_subject(letter.queue), body, {"Nats-Msg-Id": f"dead:{letter.id}"}

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            subject, body, headers = self._letter_message(letter)
            await self._guard(self.js.publish(subject, body, headers=headers))

    def _dead_filter(self, queue: str | None) -> str:
        return self.names.dead_subject(queue) if queue else self.names.dead_root + ">"

    async def _letters(self, queue: str | None) -> list[tuple[int, DeadLetter]]:
        out = []
        async with contextlib.aclosing(self._scan(self.names.dead,
                                                  self._dead_filter(queue))) as scan:
            async for msg in scan:
                out.append((_seq(msg), _letter(msg)))
        return out

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        skipped = 0
        async with contextlib.aclosing(self._scan(self.names.dead,
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
            await self.enqueue(copies)
        for seq in seqs:
            await self._guard(self.js.delete_msg(self.names.dead, seq))
        return len(copies)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        if ids is None:
            answer = await self._request(f"$JS.API.STREAM.PURGE.{self.names.dead}",
                                         {"filter": self._dead_filter(queue)})
            return int(answer.get("purged", 0))
        chosen = set(ids)
        purged = 0
        for seq, letter in await self._letters(queue):
            if letter.id in chosen:
                await self._guard(self.js.delete_msg(self.names.dead, seq))
                purged += 1
        return purged

    # -- stats ------------------------------------------------------------------------------

    async def _subject_counts(self, stream: str, root: str) -> dict[str, int]:
        info = await self._guard(self.js.stream_info(stream, subjects_filter=root + ">"))
        counts: dict[str, int] = {}
        for subject, count in (info.state.subjects or {}).items():
            queue = self.names.queue_of(subject)
            counts[queue] = counts.get(queue, 0) + count
        return counts

    async def stats(self) -> list[QueueStats]:
        """Per-queue counts. A task moving between two places (due: delay stream or schedule
        -> task subject; retried: in flight -> delay) is first added to where it goes, then
        removed from where it was; so the places are read *source first* (consumers, then
        the delay stream, then the task subjects) and a moving task is counted once or twice,
        never zero times. ``run_until_idle`` relies on that: a task missed by one snapshot
        would let it stop while the task is still to come."""
        await self._flush_totals()
        n = self.names
        by_queue: dict[str, QueueStats] = {}

        def get(q: str) -> QueueStats:
            return by_queue.setdefault(q, QueueStats(q))

        leased: dict[str, int] = {}  # queue -> in flight from the task stream
        for info in await self._guard(self.js.consumers_info(n.tasks)):
            if info.name.startswith("q_"):
                queue = untoken(info.name[2:].rsplit("_", 1)[0])
                leased[queue] = leased.get(queue, 0) + (info.num_ack_pending or 0)
                get(queue).in_flight += info.num_ack_pending or 0
            elif info.name.startswith("s_"):  # a never-pulled schedule counter
                get(untoken(info.name[2:])).delayed += info.num_pending or 0
        for info in await self._guard(self.js.consumers_info(n.events)):
            if info.name.startswith("g_"):
                stat = get("@" + untoken(info.name[2:].rsplit("_", 1)[0]))
                stat.ready += info.num_pending or 0
                stat.in_flight += info.num_ack_pending or 0
        for queue, count in (await self._subject_counts(n.delay, n.delay_root)).items():
            get(queue).delayed += count
        for queue, count in (await self._subject_counts(n.tasks, n.task_root)).items():
            get(queue).ready += max(0, count - leased.get(queue, 0))  # the stream holds both
        for queue, count in (await self._subject_counts(n.dead, n.dead_root)).items():
            get(queue).dead += count
        for tok, (done, failed) in (await self._read_totals()).items():
            stat = get(untoken(tok))
            stat.processed, stat.failed = done, failed
        return sorted(by_queue.values(), key=lambda s: s.queue)


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
