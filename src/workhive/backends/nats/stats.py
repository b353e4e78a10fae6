"""Queue statistics of the ``nats`` backend, read from stream and consumer state.

Stats cost a handful of requests whatever the number of queues: per-subject message counts of
the task, delay and dead streams (``stream_info(subjects_filter=...)``) and one consumer list
per stream (``num_ack_pending`` = in flight, ``num_pending`` = an event group's backlog, or a
queue's scheduled tasks on its ``s_<queue>`` counter). The ``processed``/``failed`` totals come
from the counter keys of :mod:`.kv`.
"""

from __future__ import annotations

from workhive.backend import QueueStats
from workhive.backends.nats.connection import NatsConnection
from workhive.backends.nats.kv import NatsCoordination
from workhive.backends.nats.naming import untoken


class NatsStats:
    """``stats`` over one :class:`~workhive.backends.nats.connection.NatsConnection`, with the
    totals of its :class:`~workhive.backends.nats.kv.NatsCoordination`."""

    def __init__(self, conn: NatsConnection, kv: NatsCoordination) -> None:
        self._conn = conn
        self._kv = kv

    async def _subject_counts(self, stream: str, root: str) -> dict[str, int]:
        info = await self._conn.guard(self._conn.js.stream_info(stream,
                                                                subjects_filter=root + ">"))
        counts: dict[str, int] = {}
        for subject, count in (info.state.subjects or {}).items():
            queue = self._conn.names.queue_of(subject)
            counts[queue] = counts.get(queue, 0) + count
        return counts

    async def stats(self) -> list[QueueStats]:
        """Per-queue counts. A task moving between two places (due: delay stream or schedule
        -> task subject; retried: in flight -> delay) is first added to where it goes, then
        removed from where it was; so the places are read *source first* (consumers, then
        the delay stream, then the task subjects) and a moving task is counted once or twice,
        never zero times. ``run_until_idle`` relies on that: a task missed by one snapshot
        would let it stop while the task is still to come."""
        await self._kv.flush_totals()
        conn, n = self._conn, self._conn.names
        by_queue: dict[str, QueueStats] = {}

        def get(q: str) -> QueueStats:
            return by_queue.setdefault(q, QueueStats(q))

        leased: dict[str, int] = {}  # queue -> in flight from the task stream
        for info in await conn.guard(conn.js.consumers_info(n.tasks)):
            if info.name.startswith("q_"):
                queue = untoken(info.name[2:].rsplit("_", 1)[0])
                leased[queue] = leased.get(queue, 0) + (info.num_ack_pending or 0)
                get(queue).in_flight += info.num_ack_pending or 0
            elif info.name.startswith("s_"):  # a never-pulled schedule counter
                get(untoken(info.name[2:])).delayed += info.num_pending or 0
        for info in await conn.guard(conn.js.consumers_info(n.events)):
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
        for tok, (done, failed) in (await self._kv.read_totals()).items():
            stat = get(untoken(tok))
            stat.processed, stat.failed = done, failed
        return sorted(by_queue.values(), key=lambda s: s.queue)
