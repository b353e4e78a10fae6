"""Durable event fan-out on the ``P_EVENTS`` stream: one consumer per subscriber group.

An event is published once, on ``P.e.<event name>``; the stream has *interest* retention, so a
message is kept until every consumer whose filter matches it has acked it, and dropped at once
when no group listens (as workhive's contract says: events published while nobody is bound are
not kept). :meth:`NatsEvents.bind` creates one durable pull consumer per (group, filter subject)
(:func:`~workhive.backends.nats.naming.filters_for`: ``a.#`` needs ``a`` and ``a.>``), with the
group and the workhive pattern in its description, so any process can list the bindings.

Two details keep workhive's semantics exact where NATS filters cannot:

* a filter wider than its pattern (``a.#.b`` is filtered as ``a.>``) delivers messages the pattern
  does not match; they are acked and skipped;
* when several consumers of one group match the same message (two overlapping patterns, or
  ``a`` and ``a.>``), only the first matching one by name delivers it; the others skip it, so the
  group still gets one copy.

The worker fetches a group as the queue ``@group`` (:meth:`NatsEvents.pullers` gives the
group's consumers, from a list of bindings re-read every few seconds, so a ``bind`` in another
process is seen); retries of its copies go to the task stream under that queue, so they reach
that group only.
"""

from __future__ import annotations

import json
import time

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from workhive._envelope import Envelope, encode
from workhive.backend import topic_matches
from workhive.backends.nats.connection import NatsConnection
from workhive.backends.nats.naming import (
    event_subject,
    filters_for,
    group_consumer,
    msg_id,
    subject_matches,
)
from workhive.backends.nats.pull import Puller
from workhive.errors import BackendError

DEFAULT_LEASE = 30.0
_GROUPS_TTL = 5.0  # how long the list of event bindings is trusted


class NatsEvents:
    """``SupportsEvents`` over one :class:`~workhive.backends.nats.connection.NatsConnection`,
    plus the bookkeeping ``fetch`` needs for ``@group`` queues."""

    def __init__(self, conn: NatsConnection) -> None:
        self._conn = conn
        self._names = conn.names
        # group -> sorted [(consumer, pattern, filter subject)]
        self._groups: dict[str, list[tuple[str, str, str]]] = {}
        self._groups_read = 0.0

    async def bind(self, pattern: str, group: str) -> None:
        description = json.dumps({"group": group, "pattern": pattern})
        conn = self._conn
        for f in filters_for(pattern):
            subject = self._names.event_root + f
            name = group_consumer(group, pattern, subject)
            if conn.has_puller(name) or any(c == name for c, _, _ in self._groups.get(group, [])):
                continue
            config = ConsumerConfig(
                durable_name=name, filter_subject=subject, description=description,
                ack_policy=AckPolicy.EXPLICIT, ack_wait=DEFAULT_LEASE, max_deliver=-1,
                max_ack_pending=-1, deliver_policy=DeliverPolicy.ALL)
            try:
                await conn.guard(conn.js.consumer_info(self._names.events, name))
            except BackendError:
                await conn.guard(conn.js.add_consumer(self._names.events, config))
            self._groups.setdefault(group, []).append((name, pattern, subject))
            self._groups[group].sort()

    async def _read_groups(self) -> None:
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for info in await self._conn.guard(self._conn.js.consumers_info(self._names.events)):
            try:
                meta = json.loads(info.config.description or "")
                groups.setdefault(meta["group"], []).append(
                    (info.name, meta["pattern"], info.config.filter_subject or ">"))
            except (ValueError, KeyError, TypeError):
                continue  # not one of ours
        self._groups = {g: sorted(b) for g, b in groups.items()}
        self._groups_read = time.monotonic()

    async def pullers(self, group: str, lease: float) -> list[tuple[Puller, str]]:
        """The pullers of ``group``'s consumers with the pattern each was bound for."""
        if time.monotonic() - self._groups_read > _GROUPS_TTL:
            await self._read_groups()
        conn, out = self._conn, []
        for consumer, pattern, _ in self._groups.get(group, []):
            info = await conn.guard(conn.js.consumer_info(self._names.events, consumer)) \
                if not conn.has_puller(consumer) else None
            config = info.config if info is not None else ConsumerConfig()
            out.append((await conn.puller(self._names.events, consumer, config, lease), pattern))
        return out

    def filter_subjects(self, group: str) -> list[str]:
        """The filter subjects of ``group``'s consumers as last read (where an idle fetch of
        ``@group`` listens for new events)."""
        return [f for _, _, f in self._groups.get(group, [])]

    async def publish(self, envelope: Envelope) -> int | None:
        """Publish once on ``P.e.<name>``; JetStream copies it to every matching group's
        consumer, so the copy count is not known here (None)."""
        subject = event_subject(self._conn.settings.stream, envelope.name)
        body = encode(envelope)
        await self._conn.guard(self._conn.js.publish(
            subject, body, headers={"Nats-Msg-Id": msg_id(envelope.id, envelope.attempt, body)}))
        return None

    def owns(self, queue: str, consumer: str, pattern: str, msg: Msg) -> bool:
        """Whether ``consumer`` (bound for ``pattern``) delivers ``msg`` to ``queue``
        (``@group``): the pattern matches and no other binding of the group comes first."""
        name = msg.subject[len(self._names.event_root):]
        if not topic_matches(pattern, name):
            return False
        for other, other_pattern, subject in self._groups.get(queue[1:], []):
            if topic_matches(other_pattern, name) and subject_matches(subject, msg.subject):
                return other == consumer  # the first matching binding (by name) delivers
        return True
