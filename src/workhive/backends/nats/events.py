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

The worker fetches a group as the queue ``@group``; retries of its copies go to the task stream
under that queue, so they reach that group only.
"""

from __future__ import annotations

import json
import time

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from workhive._envelope import Envelope, encode
from workhive.backend import topic_matches
from workhive.backends.nats.dead import NatsDeadLetters
from workhive.backends.nats.naming import (
    event_subject,
    filters_for,
    group_consumer,
    msg_id,
    subject_matches,
)
from workhive.backends.nats.settings import NatsSettings
from workhive.errors import BackendError

DEFAULT_LEASE = 30.0


class NatsEvents(NatsDeadLetters):
    """``SupportsEvents`` plus the bookkeeping ``fetch`` needs for ``@group`` queues."""

    def __init__(self, settings: NatsSettings) -> None:
        super().__init__(settings)
        # group -> sorted [(consumer, pattern, filter subject)]
        self._groups: dict[str, list[tuple[str, str, str]]] = {}
        self._groups_read = 0.0

    async def bind(self, pattern: str, group: str) -> None:
        description = json.dumps({"group": group, "pattern": pattern})
        for f in filters_for(pattern):
            subject = self.names.event_root + f
            name = group_consumer(group, pattern, subject)
            if name in self._pullers or any(c == name for c, _, _ in self._groups.get(group, [])):
                continue
            config = ConsumerConfig(
                durable_name=name, filter_subject=subject, description=description,
                ack_policy=AckPolicy.EXPLICIT, ack_wait=DEFAULT_LEASE, max_deliver=-1,
                max_ack_pending=-1, deliver_policy=DeliverPolicy.ALL)
            try:
                await self._guard(self.js.consumer_info(self.names.events, name))
            except BackendError:
                await self._guard(self.js.add_consumer(self.names.events, config))
            self._groups.setdefault(group, []).append((name, pattern, subject))
            self._groups[group].sort()

    async def _read_groups(self) -> None:
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for info in await self._guard(self.js.consumers_info(self.names.events)):
            try:
                meta = json.loads(info.config.description or "")
                groups.setdefault(meta["group"], []).append(
                    (info.name, meta["pattern"], info.config.filter_subject or ">"))
            except (ValueError, KeyError, TypeError):
                continue  # not one of ours
        self._groups = {g: sorted(b) for g, b in groups.items()}
        self._groups_read = time.monotonic()

    async def publish(self, envelope: Envelope) -> int | None:
        """Publish once on ``P.e.<name>``; JetStream copies it to every matching group's
        consumer, so the copy count is not known here (None)."""
        subject = event_subject(self.settings.stream, envelope.name)
        body = encode(envelope)
        await self._guard(self.js.publish(
            subject, body, headers={"Nats-Msg-Id": msg_id(envelope.id, envelope.attempt, body)}))
        return None

    def _owns(self, queue: str, consumer: str, pattern: str, msg: Msg) -> bool:
        name = msg.subject[len(self.names.event_root):]
        if not topic_matches(pattern, name):
            return False
        for other, other_pattern, subject in self._groups.get(queue[1:], []):
            if topic_matches(other_pattern, name) and subject_matches(subject, msg.subject):
                return other == consumer  # the first matching binding (by name) delivers
        return True
