"""The ``nats`` backend: tasks, delays, priorities, events, dead letters and coordination on
NATS JetStream (nats-py), with nothing else to run beside it.

How the contract maps onto JetStream (names in :mod:`~workhive.backends.nats.naming`):

* **enqueue** publishes the envelope to ``P.q.<queue>.<band>`` of the work-queue stream
  ``P_TASKS`` (``Nats-Msg-Id = <id>:<attempt>:<crc>``, so a retried publish is dropped as a
  duplicate). One with a future ``eta`` becomes a message schedule in ``P_TASKS`` on servers
  that have them (2.12+, :mod:`.schedule`), else goes to the delay stream (:mod:`.delay`).
  Unique and idempotency keys are claimed in KV first (:mod:`.kv`).
* **fetch** asks the durable consumer of each (queue, band), highest band first, with ``no_wait``
  pulls; when everything is empty it waits on a core subscription (the queues' subjects, or
  their headers-only republish when the stream has schedules), so a new task wakes it at once,
  and re-polls at least every 250 ms (naks, expired leases).
* **lease** = the consumer's ``ack_wait``, set to the ``lease`` the worker fetches with (30 s by
  default; a fetch with another lease updates the consumer, so give all workers of a queue the
  same lease). **extend** sends ``+WPI`` (in progress), which restarts the server's timer.
  A settle after this client's copy of the deadline passed is dropped (the server may have
  redelivered the message, and it would honour a stale ack).
* **settle**: ack = a confirmed ack (the server answers each; :class:`~.pull.Acker` waits for
  every answer of the batch at once); retry = publish the next attempt
  (work or delay subject), then ack; dead = publish to ``P_DEAD``, then ack; release = ``-NAK``.
* **events**: ``P.e.<event name>`` in the interest-retention ``P_EVENTS`` stream; ``bind`` makes
  one durable consumer per (group, pattern filter); a group's queue is ``@group``; its retries
  go through the task stream like any queue's.

:class:`NatsBackend` is the transport (enqueue, fetch, settle, extend) over one
:class:`~.connection.NatsConnection`; every other concept is a part built on that connection,
to which its methods hand the call: coordination in KV (:mod:`.kv`), dead letters
(:mod:`.dead`, handed ``enqueue`` for replays), events (:mod:`.events`) and statistics
(:mod:`.stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from workhive._envelope import Envelope, encode, new_id
from workhive.backend import (
    Capability,
    DeadLetter,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    WorkerInfo,
    band_of,
    event_group,
)
from workhive.backends.nats.connection import NatsConnection
from workhive.backends.nats.dead import NatsDeadLetters
from workhive.backends.nats.delay import DUE, Forwarder
from workhive.backends.nats.events import NatsEvents
from workhive.backends.nats.kv import NatsCoordination
from workhive.backends.nats.naming import (
    Names,
    msg_id,
    token,
)
from workhive.backends.nats.pull import Acker, Lease, Puller
from workhive.backends.nats.schedule import schedule_headers
from workhive.backends.nats.settings import NatsSettings
from workhive.backends.nats.stats import NatsStats
from workhive.errors import BackendError

__all__ = ["NatsBackend", "NatsSettings"]

_REPOLL = 0.25  # longest wait between polls of an idle fetch (naks and expiries wake nobody)
_DELAY_CHECK = 30.0  # with schedules: how often a worker looks for tasks left in the delay stream


class NatsBackend:
    """Durable backend on NATS JetStream; every capability of :mod:`workhive.backend`."""

    name = "nats"

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self.features = Features(frozenset(Capability), lease="timed",
                                 priority_bands=settings.priority_bands, delay_resolution=0.3)
        self._conn = conn = NatsConnection(settings)
        self._kv = NatsCoordination(conn)
        self._dead = NatsDeadLetters(conn, self.enqueue)
        self._events = NatsEvents(conn)
        self._stats = NatsStats(conn, self._kv)
        self._forwarder: Forwarder | None = None
        self._acker: Acker | None = None
        self._delay_checked = -_DELAY_CHECK
        self._background: list[asyncio.Task[None]] = []
        self._counted: dict[str, asyncio.Future[None]] = {}  # queue -> its s_<queue> is made

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.redacted_url!r}, " \
               f"stream={self.settings.stream!r})"

    @property
    def names(self) -> Names:
        return self._conn.names

    @property
    def nc(self) -> Client:
        return self._conn.nc

    @property
    def js(self) -> JetStreamContext:
        return self._conn.js

    @property
    def schedules(self) -> bool:
        """Whether this process publishes delays as message schedules (else to the delay
        stream); known once open."""
        return self._conn.schedules

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsBackend:
        """``nats://[user:password@]host:port?stream=APP`` plus options (see NatsSettings)."""
        return cls(NatsSettings.from_url(url, **options))

    async def open(self) -> None:
        """Connect; create the streams, the forward consumer and the KV buckets. Idempotent."""
        await self._conn.open(self._prepare)

    async def _prepare(self) -> None:
        await self._kv.create_buckets()
        self._background = [asyncio.create_task(self._every(1.0, self._kv.flush_totals))]

    async def _every(self, seconds: float, call: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await call()
            except Exception as exc:  # the next round retries; never kill the loop
                self._conn.note(exc)

    async def close(self) -> None:
        """Stop the forwarder, write the totals, close. Unsettled deliveries come back after
        their ``ack_wait``."""
        try:
            if self._forwarder is not None:
                forwarder, self._forwarder = self._forwarder, None
                await forwarder.stop()
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            self._background = []
            if self._conn.is_open:
                await self._quietly(self._kv.flush_totals())
            if self._acker is not None:
                acker, self._acker = self._acker, None
                await acker.stop()
        finally:
            await self._conn.close()

    async def wipe(self) -> None:
        """Delete every stream and bucket of this prefix (tests, benchmark clean-up)."""
        self._counted.clear()
        await self._conn.wipe()

    # -- producer -------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        send: list[tuple[Envelope, bytes]] = []
        for env in envelopes:
            if env.idempotency_key is not None:
                holder = await self._kv.claim_idempotency(env.idempotency_key, env.id)
                if holder != env.id:
                    results.append(EnqueueResult(holder, duplicate=True))
                    continue
            if env.unique_key is not None:
                owner = await self._kv.claim_key(f"unique:{env.unique_key}", env.id, None)
                if owner != env.id:
                    results.append(EnqueueResult(owner, duplicate=True))
                    continue
            body = encode(env)
            send.append((env, body))
            results.append(EnqueueResult(env.id))
        for start in range(0, len(send), 500):
            chunk = send[start:start + 500]
            try:
                await self._conn.guard(self._publish_all([
                    (env.queue, env.priority, body, msg_id(env.id, env.attempt, body), env.eta)
                    for env, body in chunk]))
            except BackendError:
                for env, _ in send[start:]:
                    if env.unique_key is not None:
                        await self._quietly(
                            self._kv.release_key(f"unique:{env.unique_key}", env.id))
                raise
        return results

    async def _quietly(self, call: Any) -> None:
        try:
            await call
        except BackendError as exc:
            self._conn.note(exc)

    async def _publish_all(self, items: list[tuple[str, int, bytes, str, float | None]]) -> None:
        await asyncio.gather(*(self._publish(*item) for item in items))

    async def _publish(self, queue: str, priority: int, body: bytes, msg_id: str,
                       eta: float | None) -> None:
        subject = self.names.task_subject(queue, band_of(priority, self.settings.priority_bands))
        headers = {"Nats-Msg-Id": msg_id}
        if eta is not None and eta > time.time():
            if self._conn.schedules:
                await self._count_schedules(queue)  # before the schedule: stats always see it
                headers.update(schedule_headers(eta, subject))
                subject = self.names.schedule_subject(subject, msg_id)
            else:
                subject = self.names.delay_subject(subject)
                headers[DUE] = repr(eta)
        await self.js.publish(subject, body, headers=headers)

    async def _count_schedules(self, queue: str) -> None:
        """Make ``s_<queue>`` once per process (concurrent callers share the one request)."""
        made = self._counted.get(queue)
        if made is None or (made.done() and (made.cancelled() or made.exception())):
            config = ConsumerConfig(
                durable_name=Names.schedule_counter(queue),
                filter_subject=self.names.schedule_filter(queue),
                ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                description="workhive: counts the scheduled tasks of a queue; never pulled")
            made = self._counted[queue] = asyncio.ensure_future(self._add_counter(config))
        await asyncio.shield(made)

    async def _add_counter(self, config: ConsumerConfig) -> None:
        await self.js.add_consumer(self.names.tasks, config)

    # -- consumer -------------------------------------------------------------------------

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        if not queues or limit <= 0:
            return []
        if self._forwarder is None and await self._delay_stream_in_use():
            self._forwarder = Forwarder(self._conn)
            self._forwarder.start()
        end = time.monotonic() + wait
        wake: tuple[asyncio.Event, list[Subscription]] | None = None
        try:
            while True:
                out = await self._poll(queues, limit, lease)
                remaining = end - time.monotonic()
                if out or remaining <= 0:
                    return out
                if wake is None:  # subscribe, then poll again: nothing slips in between
                    wake = await self._wake_on(queues)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, _REPOLL)):
                        await wake[0].wait()
                wake[0].clear()
        finally:
            if wake is not None:
                for sub in wake[1]:
                    await self._quietly(self._conn.guard(sub.unsubscribe()))

    async def _delay_stream_in_use(self) -> bool:
        """Whether this worker must run a forwarder: always without schedules; with them only
        while ``P_DELAY`` still holds tasks (published before the server was upgraded, or by a
        process with ``schedules=off``), looked at every 30 s."""
        if not self.schedules:
            return True
        if time.monotonic() - self._delay_checked < _DELAY_CHECK:
            return False
        info = await self._conn.guard(self.js.stream_info(self.names.delay))
        self._delay_checked = time.monotonic()
        return bool(info.state.messages)

    async def _wake_on(self, queues: Sequence[str]) -> tuple[asyncio.Event, list[Subscription]]:
        event = asyncio.Event()

        async def on_msg(_: Msg) -> None:
            event.set()

        subjects = [f"{self._conn.wake_root}{token(q)}.*" for q in queues]
        for q in queues:
            group = event_group(q)
            if group is not None:
                subjects += self._events.filter_subjects(group)
        subs = [await self._conn.guard(self.nc.subscribe(s, cb=on_msg)) for s in set(subjects)]
        return event, subs

    async def _poll(self, queues: Sequence[str], limit: int, lease: float) -> list[Delivery]:
        out: list[Delivery] = []
        timeout = self.settings.request_timeout
        for queue in queues:
            for puller, pattern in await self._pullers_of(queue, lease):
                if len(out) >= limit:
                    return out
                for arrived, msg in await self._conn.guard(puller.pull(limit - len(out), timeout)):
                    receipt = Lease(msg, _deadline(arrived, puller.ack_wait), puller.ack_wait)
                    if pattern is None or self._events.owns(queue, puller.consumer, pattern,
                                                            msg):
                        out.append(Delivery(queue, msg.data, receipt))
                    else:  # another consumer of the group delivers it, or it does not match
                        await self._conn.guard(self.nc.publish(msg.reply, b"+ACK"))
        return out

    async def _pullers_of(self, queue: str, lease: float) -> list[tuple[Puller, str | None]]:
        """The queue's band consumers, highest first, then (``@group``) its event consumers
        with their patterns."""
        bands = range(self.settings.priority_bands - 1, -1, -1)
        out: list[tuple[Puller, str | None]] = []
        for band in bands:
            config = ConsumerConfig(filter_subject=self.names.task_subject(queue, band))
            out.append((await self._conn.puller(self.names.tasks, Names.task_consumer(queue, band),
                                                config, lease), None))
        group = event_group(queue)
        if group is not None:
            out += await self._events.pullers(group, lease)
        return out

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        now = time.time()
        live = [s for s in settlements if isinstance(s.delivery.receipt, Lease) and
                (s.delivery.receipt.deadline > now or s.delivery.receipt.published)]
        await self._conn.guard(self._apply(live))

    async def _apply(self, live: list[Settlement]) -> None:
        steps = [self._republish(s) for s in live
                 if s.action in ("retry", "dead") and not s.delivery.receipt.published]
        await asyncio.gather(*steps)
        acks = [s.delivery.receipt for s in live
                if s.action != "release" and not s.delivery.receipt.acked]
        if self._acker is None:
            self._acker = Acker(self.nc)
        await self._acker.ack([r.msg.reply for r in acks], self.settings.request_timeout)
        for r in acks:
            r.acked = True
        for s in live:
            if s.action == "release" and not s.delivery.receipt.acked:
                await self.nc.publish(s.delivery.receipt.msg.reply, b"-NAK")
                s.delivery.receipt.acked = True
            if s.action == "ack":
                self._kv.count(s.delivery.queue, 1, 0)
            elif s.action in ("retry", "dead"):
                self._kv.count(s.delivery.queue, 0, 1)
        await self.nc.flush()
        for s in live:
            env = s.envelope
            if s.action in ("ack", "dead") and env is not None and env.unique_key is not None:
                await self._kv.release_key(f"unique:{env.unique_key}", env.id)

    async def _republish(self, s: Settlement) -> None:
        receipt: Lease = s.delivery.receipt
        body = s.body or s.delivery.body
        env = s.envelope
        if s.action == "retry":
            mid = msg_id(env.id if env else new_id(), env.attempt if env else 0, body)
            await self._publish(s.delivery.queue, env.priority if env else 0, body, mid,
                                s.eta or None)
        else:
            letter = DeadLetter(env.id if env else new_id(), s.delivery.queue, body, s.reason,
                                time.time())
            subject, data, headers = self._dead.message(letter)
            await self.js.publish(subject, data, headers=headers)
        receipt.published = True

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        now = time.time()
        live = [d.receipt for d in deliveries
                if isinstance(d.receipt, Lease) and d.receipt.deadline > now]
        for r in live:
            await self._conn.guard(self.nc.publish(r.msg.reply, b"+WPI"))
            r.deadline = _deadline(now, r.ack_wait)
        if live:
            await self._conn.guard(self.nc.flush())

    # -- parts: each method hands the call to the part that owns the concept ---------------

    async def publish(self, envelope: Envelope) -> int | None:
        return await self._events.publish(envelope)

    async def bind(self, pattern: str, group: str) -> None:
        await self._events.bind(pattern, group)

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        return await self._dead.dead_letters(queue, limit, offset)

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        return await self._dead.replay_dead(ids, queue)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        return await self._dead.purge_dead(ids, queue)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        await self._dead.keep_dead(letters)

    async def stats(self) -> list[QueueStats]:
        return await self._stats.stats()

    async def claim_tick(self, job: str, tick: float) -> bool:
        return await self._kv.claim_tick(job, tick)

    async def hit_window(self, name: str, period: float, limit: int) -> tuple[bool, float]:
        return await self._kv.hit_window(name, period, limit)

    async def take_token(self, name: str, rate: float, burst: int) -> tuple[bool, float]:
        return await self._kv.take_token(name, rate, burst)

    async def claim_key(self, name: str, holder: str, ttl: float | None) -> str:
        return await self._kv.claim_key(name, holder, ttl)

    async def release_key(self, name: str, holder: str) -> None:
        await self._kv.release_key(name, holder)

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._kv.set_paused(queue, paused)

    async def paused_queues(self) -> set[str]:
        return await self._kv.paused_queues()

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        await self._kv.heartbeat(info, ttl)

    async def workers(self) -> list[WorkerInfo]:
        return await self._kv.workers()

    async def forget_worker(self, worker_id: str) -> None:
        await self._kv.forget_worker(worker_id)


def _deadline(arrived: float, ack_wait: float) -> float:
    """When a delivery's lease is gone as far as this client can tell (a margin early: an ack
    arriving after the server redelivered would still be honoured by it)."""
    return arrived + ack_wait - min(0.5, ack_wait * 0.05)
