"""Every stream, subject, consumer and KV key the ``nats`` backend uses, in one place.

Why: names are the backend's on-disk schema. Queue names are free text in workhive but NATS
tokens may not hold ``.``, ``*``, ``>`` or whitespace, so a queue becomes a *token*: itself when it
is plain (``[A-Za-z0-9_-]``), else ``=`` + the hex of its UTF-8 (``@billing`` -> ``=4062...``).
The mapping is reversible, which lets ``stats`` read queue names back from subjects.

With ``P`` the ``stream`` option (default ``WORKHIVE``)::

    P_TASKS   work-queue stream   P.q.<queue>.<band>      one durable pull consumer per
                                                          (queue, band): q_<queue>_<band>
              (2.12+, schedules)  P.s.q.<queue>.<band>.<id>  one held message per delayed
                                                          task; s_<queue> counts them (never
                                                          pulled); stored tasks are
                                                          republished, headers only, on
                                                          P.w.<queue>.<band> (wake-ups)
    P_DELAY   work-queue stream   P.d.q.<queue>.<band>    one consumer "forward" (all workers)
    P_EVENTS  interest stream     P.e.<event name>        one durable consumer per group and
                                                          pattern filter: g_<group>_<hash>
    P_DEAD    limits stream       P.x.<queue>             dead letters, browsable
    KV P_keys (unique keys, claims, the paused queues)  P_idem (idempotency, bucket TTL)
       P_ticks (cron, 8 d TTL)  P_counters (rate limits, totals)  P_workers (heartbeats, 1 h TTL)

Event patterns use workhive's AMQP-style words (``*`` one word, ``#`` zero or more);
:func:`filters_for` gives the NATS filter subjects that cover a pattern (``a.#`` -> ``a`` and
``a.>``); where NATS cannot express it exactly (``a.#.b``) the filter is wider and the backend
checks :func:`~workhive.backend.topic_matches` on each message.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib

from workhive.backend import topic_matches
from workhive.errors import ValidationError

_PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")
_BAD_WORD = re.compile(r"[\s*>.]")


def msg_id(env_id: str, attempt: int, body: bytes) -> str:
    """``Nats-Msg-Id`` of one attempt of a message: a repeated publish of the same bytes is
    dropped by the stream's duplicate window; a new attempt (or a deferral with new history)
    has other bytes and goes through."""
    return f"{env_id}:{attempt}:{zlib.crc32(body):08x}"


def token(queue: str) -> str:
    """A queue name as one subject token / consumer-name part (reversible)."""
    if _PLAIN.match(queue):
        return queue
    return "=" + queue.encode().hex()


def untoken(tok: str) -> str:
    """The queue name a :func:`token` came from."""
    if tok.startswith("="):
        return bytes.fromhex(tok[1:]).decode(errors="replace")
    return tok


def key(kind: str, text: str) -> str:
    """A KV key (``[-/_=.A-Za-z0-9]``) for arbitrary text: base64url, no padding."""
    return f"{kind}.{base64.urlsafe_b64encode(text.encode()).decode().rstrip('=') or '_'}"


def event_subject(prefix: str, name: str) -> str:
    """The subject an event is published on; its name must be valid NATS words."""
    words = name.split(".")
    if any(not w or _BAD_WORD.search(w) for w in words):
        raise ValidationError(
            f"event name {name!r} is not a valid NATS subject: dot-separated words without "
            "spaces, '*' or '>'")
    return f"{prefix}.e.{name}"


def filters_for(pattern: str) -> list[str]:
    """NATS filter subjects (relative to ``P.e.``) that together cover ``pattern``."""
    words = pattern.split(".")
    for w in words:
        if w not in ("*", "#") and (not w or _BAD_WORD.search(w)):
            raise ValidationError(
                f"subscription pattern {pattern!r} is not valid: dot-separated words, '*' for "
                "one word, '#' for zero or more")
    if "#" not in words:
        return [pattern]
    head = words[: words.index("#")]
    filters = [".".join([*head, ">"])]
    if head and topic_matches(pattern, ".".join(head)):
        filters.insert(0, ".".join(head))  # 'a.#' also matches 'a' itself
    return filters


def subject_matches(filter_subject: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = filter_subject.split("."), subject.split(".")
    for i, w in enumerate(want):
        if w == ">":
            return len(have) > i
        if i >= len(have) or (w != "*" and w != have[i]):
            return False
    return len(want) == len(have)


def group_consumer(group: str, pattern: str, subject: str) -> str:
    """Durable name of one group's consumer for one (pattern, filter)."""
    digest = hashlib.sha1(f"{pattern}\x00{subject}".encode()).hexdigest()[:12]
    return f"g_{token(group)}_{digest}"


class Names:
    """Stream, subject and bucket names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = p = prefix
        self.tasks, self.delay, self.events, self.dead = (
            f"{p}_TASKS", f"{p}_DELAY", f"{p}_EVENTS", f"{p}_DEAD")
        self.keys, self.idem, self.ticks, self.counters, self.workers = (
            f"{p}_keys", f"{p}_idem", f"{p}_ticks", f"{p}_counters", f"{p}_workers")
        self.task_root, self.delay_root, self.event_root, self.dead_root = (
            f"{p}.q.", f"{p}.d.", f"{p}.e.", f"{p}.x.")
        self.schedule_root, self.wake_root = f"{p}.s.", f"{p}.w."

    def task_subject(self, queue: str, band: int) -> str:
        return f"{self.task_root}{token(queue)}.{band}"

    def delay_subject(self, target: str) -> str:
        """``P.q.<queue>.<band>`` -> ``P.d.q.<queue>.<band>`` (and back: :meth:`target_of`)."""
        return self.delay_root + target[len(self.prefix) + 1:]

    def target_of(self, delay_subject: str) -> str:
        return f"{self.prefix}.{delay_subject[len(self.delay_root):]}"

    def schedule_subject(self, target: str, mid: str) -> str:
        """``P.q.<queue>.<band>`` -> ``P.s.q.<queue>.<band>.<mid>``: the server keeps one
        schedule per subject, so each delayed message needs a subject of its own."""
        return f"{self.schedule_root}{target[len(self.prefix) + 1:]}.{token(mid.replace(':', '-'))}"

    def schedule_filter(self, queue: str) -> str:
        """Every schedule of ``queue``, whatever its band."""
        return f"{self.schedule_root}q.{token(queue)}.>"

    def dead_subject(self, queue: str) -> str:
        return f"{self.dead_root}{token(queue)}"

    def queue_of(self, subject: str) -> str:
        """The queue of a task, delay, schedule or dead-letter subject."""
        rest = subject.split(".")
        if rest[1] in ("d", "s"):
            rest = rest[1:]
        return untoken(rest[2])

    @staticmethod
    def task_consumer(queue: str, band: int) -> str:
        return f"q_{token(queue)}_{band}"

    @staticmethod
    def schedule_counter(queue: str) -> str:
        """The never-pulled consumer whose ``num_pending`` is the queue's scheduled count."""
        return f"s_{token(queue)}"

    @property
    def streams(self) -> list[str]:
        return [self.tasks, self.delay, self.events, self.dead]

    @property
    def buckets(self) -> list[str]:
        return [self.keys, self.idem, self.ticks, self.counters, self.workers]
