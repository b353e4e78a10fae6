"""The ``redis-pubsub`` backend: an event bus on plain Redis PUBLISH / PSUBSCRIBE.

Why it exists: teams coming from Go services already run their events this way and want the same
wire behaviour. Why it is *not* the default for events: Redis pub/sub is fire-and-forget.

* **At-most-once.** An event published while no process listens is gone; one that arrives while
  a handler crashes is gone; there is no retry, no lease, no dead-letter queue.
* **Every listening process gets every event.** ``bind(pattern, group)`` only subscribes *this
  process*; members of a "group" do not share work, each one handles every event.
* **No tasks.** ``enqueue`` raises :class:`~workhive.errors.CapabilityError` pointing to the
  durable ``redis`` backend, which gives groups their own queue, retries and a DLQ.

It therefore declares no capability (:attr:`features` lists none: ``EVENTS`` means *durable*
fan-out). ``publish``/``bind``/``fetch`` work; ``settle`` and ``extend`` are no-ops.

Channels are ``<prefix>:ev:<event name>``. One ``PSUBSCRIBE <prefix>:ev:*`` per process
receives everything under the prefix and matches bindings locally with
:func:`~workhive.backend.topic_matches`, so glob semantics equal the durable backends' and one
event matching two patterns of a group is still delivered once to that group.

On Redis Cluster (``redis-pubsub://host:port?cluster=true``) the subscription lives on one node
and Redis forwards every PUBLISH to all nodes, so it works unchanged; ``publish`` returns None
there (a node counts only its own listeners), and while the subscribed node is down nothing
arrives (at-most-once, as ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio.client import PubSub

from workhive._envelope import Envelope, decode, encode
from workhive.backend import (
    Delivery,
    EnqueueResult,
    Features,
    Settlement,
    event_queue,
    fan_out,
    topic_matches,
)
from workhive.backends.redis.connection import RedisConnection
from workhive.backends.redis.settings import UNREACHABLE, RedisSettings
from workhive.errors import CapabilityError, SerializationError

__all__ = ["RedisPubSubBackend"]

logger = logging.getLogger(__name__)

_RECONNECT_MAX = 5.0


class RedisPubSubBackend:
    """Events over Redis pub/sub: at-most-once, every listening process gets every event."""

    name = "redis-pubsub"
    features = Features(frozenset(), lease="none")

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        # no stored keys: an older version's queues do not matter
        self._conn = RedisConnection(settings, check_layout=False)
        self._patterns: set[tuple[str, str]] = set()  # (pattern, group)
        self._buffers: dict[str, deque[Delivery]] = {}  # event queue -> received copies
        self._arrived = asyncio.Event()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisPubSubBackend:
        """``redis-pubsub://[:password@]host:port/db?prefix=app`` (or a plain ``redis://`` URL)."""
        return cls(RedisSettings.from_url(url, **options))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.settings.redacted_url!r}, "
                f"prefix={self.settings.prefix!r})")

    def _channel(self, name: str) -> str:
        return f"{self.settings.prefix}:ev:{name}"

    async def open(self) -> None:
        """Connect and check the server answers; idempotent."""
        await self._conn.open()

    async def close(self) -> None:
        """Stop listening; events still buffered in this process are dropped (at-most-once)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._conn.close()

    async def wipe(self) -> None:
        """Delete every key under this backend's prefix (tests, ``workhive`` resets)."""
        await self._conn.wipe()

    # -- refused: tasks -------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        raise CapabilityError(
            "the 'redis-pubsub' backend carries events only, at most once, and cannot store "
            "tasks; use the durable 'redis' backend (redis://...) for tasks and durable groups"
        )

    # -- events -------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> int | None:
        """PUBLISH the event; returns how many *processes* were listening (0: it is lost).

        On a cluster Redis forwards the message to every node but counts only the listeners
        of the node that took the PUBLISH, so the count is unknown there: None.
        """
        body = encode(envelope)
        channel = self._channel(envelope.name)
        receivers = await self._conn.guard(lambda r: r.publish(channel, body))
        if self.settings.mode == "cluster":
            return None
        if not receivers:
            logger.debug("redis-pubsub: nobody listened to %s; the event is gone", envelope.name)
        return int(receivers)

    async def bind(self, pattern: str, group: str) -> None:
        """Subscribe this process (not a durable group) to events matching ``pattern``.

        Returns once Redis confirmed the subscription, so an event published after ``bind``
        returns reaches this process.
        """
        self._patterns.add((pattern, group))
        self._buffers.setdefault(event_queue(group), deque())
        if self._pubsub is not None:
            return
        pubsub = (await self._conn.ready()).pubsub(ignore_subscribe_messages=False)
        try:
            await pubsub.psubscribe(self._channel("*"))
            while True:  # wait for the confirmation before returning
                msg = await pubsub.get_message(timeout=self.settings.socket_timeout)
                if msg is None:
                    raise TimeoutError("no PSUBSCRIBE confirmation from redis")
                if msg["type"] == "psubscribe":
                    break
        except (*UNREACHABLE, TimeoutError) as exc:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise self.settings.unavailable(exc) from exc
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._read(pubsub), name="workhive-redis-pubsub")

    async def _read(self, pubsub: PubSub) -> None:
        """Move received events into per-group buffers; reconnect (and resubscribe) on faults."""
        backoff = 0.1
        prefix_len = len(self._channel(""))
        while True:
            try:
                msg = await pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except UNREACHABLE as exc:
                logger.warning("redis-pubsub: lost %s (%s); events published meanwhile are "
                               "lost; retrying in %.1fs", self.settings.redacted_url,
                               self.settings.unavailable(exc), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RECONNECT_MAX)
                continue
            if msg is None or msg["type"] != "pmessage":
                continue
            topic = msg["channel"][prefix_len:].decode(errors="replace")
            self._deliver(topic, msg["data"])

    def _deliver(self, topic: str, body: bytes) -> None:
        groups = [g for p, g in self._patterns if topic_matches(p, topic)]
        if not groups:
            return
        try:
            envelope = decode(body)
        except SerializationError as exc:
            logger.warning("redis-pubsub: dropped a malformed event on %s: %s", topic, exc)
            return
        for copy in fan_out(envelope, groups):
            self._buffers[copy.queue].append(Delivery(copy.queue, encode(copy), None))
        self._arrived.set()

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Return events received for the given groups' queues (``event_queue(group)``).

        There is no lease: a delivery is already gone from Redis when it is returned.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        while True:
            out: list[Delivery] = []
            for q in queues:
                buf = self._buffers.get(q)
                while buf and len(out) < limit:
                    out.append(buf.popleft())
            if out or loop.time() >= deadline:
                return out
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._arrived.wait()

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """No-op: pub/sub has nothing to acknowledge (a failed event is simply lost)."""
        if any(s.action in ("retry", "dead") for s in settlements):
            logger.warning("redis-pubsub: %d event(s) failed and cannot be retried or "
                           "dead-lettered on pub/sub; use the 'redis' backend for that",
                           sum(s.action in ("retry", "dead") for s in settlements))

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """No-op: there are no leases."""
