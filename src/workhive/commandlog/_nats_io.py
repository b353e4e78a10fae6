"""The NATS plumbing of :mod:`workhive.commandlog.nats`: connection, error translation, cursors.

Why cursors: JetStream has no "read messages after sequence *n*" call on nats-server 2.9 (batch
direct get arrived in 2.11). An ephemeral pull consumer with ``AckPolicy.NONE`` that starts at
``n + 1`` is the cheapest reader: one ``no_wait`` pull returns up to ``limit`` messages in one
round trip (then a ``404``/``408`` status, so nothing lingers). Creating one costs a round trip
too, so a cursor is kept after a read, keyed by the sequence it will deliver next: a worker that
reads ``after 10`` and got 11..20 finds it again when it reads ``after 20``. Idle cursors are
dropped after :data:`IDLE` seconds (the server drops them after ``INACTIVE``, a backstop for a
process killed before it could delete its own).

The stream sequence of a delivered message is in its reply subject
(``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…``): parsing it is much cheaper than
nats-py's ``Msg.metadata`` on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from workhive.backends.nats.connection import UNREACHABLE
from workhive.backends.nats.pull import Puller
from workhive.backends.nats.settings import NatsSettings
from workhive.errors import BackendError

logger = logging.getLogger("workhive.commandlog.nats")
T = TypeVar("T")

IDLE = 30.0  # seconds an unused cursor is kept in this process
INACTIVE = 120.0  # seconds the server keeps a cursor nobody pulls from
MAX_IDLE_CURSORS = 128
SCAN_BATCH = 256


def stream_seq(msg: Msg) -> int:
    """The stream sequence of a message delivered by a consumer (0 when it has none)."""
    reply = msg.reply or ""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5])
    if len(tokens) >= 12:  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>…
        return int(tokens[7])
    return 0


async def connect(settings: NatsSettings) -> Client:
    """Connect with the backend's options; one clear error if the server refuses or is away.

    nats-py retries a first connection as long as reconnects are allowed (forever, so a long
    running worker survives a server restart), so the first attempt is bounded by
    ``connect_timeout`` and reported with the last error the client saw, secrets removed.
    """
    seen: list[str] = []

    async def on_error(exc: Exception) -> None:
        seen.append(settings.redact(str(exc)) or type(exc).__name__)

    async def on_disconnect() -> None:
        logger.debug("nats log %s: disconnected; reconnecting", settings.redacted_url)

    try:
        return await asyncio.wait_for(
            nats.connect(**settings.connect_options(), error_cb=on_error,
                         disconnected_cb=on_disconnect),
            settings.connect_timeout + 0.5,
        )
    except (*UNREACHABLE, nats.errors.Error) as exc:
        detail = seen[-1] if seen else (settings.redact(str(exc)) or "no answer")
        refusal = next((d for d in seen if "authoriz" in d.lower() or "authentic" in d.lower()),
                       None)
        if refusal is not None:
            raise BackendError(f"nats at {settings.redacted_url} refused the credentials: "
                               f"{refusal}") from None
        raise settings.unavailable(detail) from None


async def guard(settings: NatsSettings, call: Awaitable[T]) -> T:
    """Await a nats-py call: unreachable -> BackendUnavailable, other failures -> BackendError,
    both one line without secrets. ``KeyNotFoundError`` passes through (it is an answer)."""
    try:
        return await call
    except nats.js.errors.KeyNotFoundError:
        raise
    except nats.js.errors.APIError as exc:
        if getattr(exc, "code", None) == 503:
            raise settings.unavailable(f"JetStream unavailable ({exc.description})") from None
        raise BackendError(f"nats at {settings.redacted_url} failed: "
                           f"{settings.redact(str(exc))}") from exc
    except UNREACHABLE as exc:
        raise settings.unavailable(exc or "no response in time") from None
    except nats.errors.Error as exc:
        raise BackendError(f"nats at {settings.redacted_url} failed: "
                           f"{settings.redact(str(exc))}") from exc


class Cursor:
    """One ephemeral consumer and its puller; ``next`` is the sequence it delivers next."""

    __slots__ = ("name", "next", "puller", "used")

    def __init__(self, nc: Client, stream: str, name: str, next_seq: int) -> None:
        self.name = name
        self.next = next_seq
        self.puller = Puller(nc, "$JS.API", stream, name, 0.0)
        self.used = time.monotonic()


class Cursors:
    """Readers of one stream, reused by position (see the module docstring)."""

    def __init__(self, settings: NatsSettings, nc: Client, js: JetStreamContext,
                 stream: str, subject: str) -> None:
        self.settings = settings
        self.nc = nc
        self.js = js
        self.stream = stream
        self.subject = subject
        self._idle: dict[int, list[Cursor]] = {}
        self._count = 0
        self._closed = False
        self._deleting: set[asyncio.Task[None]] = set()

    async def read(self, first_seq: int, limit: int) -> list[Msg]:
        """Up to ``limit`` messages with sequence >= ``first_seq`` that exist now, in order."""
        cursor = self._take(first_seq)
        if cursor is not None:
            try:
                # a pull on a cursor the server dropped (restart, inactivity) is never answered:
                # wait less for it than for a fresh one, then start a fresh one once
                return await self._pull(cursor, limit, min(self.settings.request_timeout, 2.0))
            except BackendError:
                pass
        cursor = await self._create(first_seq)
        return await self._pull(cursor, limit, self.settings.request_timeout)

    async def _pull(self, cursor: Cursor, limit: int, timeout: float) -> list[Msg]:
        try:
            got = await guard(self.settings, cursor.puller.pull(limit, timeout))
        except BaseException:
            self._discard(cursor)  # its position is unknown now
            raise
        msgs = [m for _, m in got]
        if msgs:
            cursor.next = stream_seq(msgs[-1]) + 1
        cursor.used = time.monotonic()
        self._give(cursor)
        return msgs

    def _take(self, seq: int) -> Cursor | None:
        now = time.monotonic()
        for key in [k for k, cs in self._idle.items() if all(now - c.used > IDLE for c in cs)]:
            for c in self._idle.pop(key):
                self._count -= 1
                self._discard(c)
        waiting = self._idle.get(seq)
        if not waiting:
            return None
        cursor = waiting.pop()
        if not waiting:
            del self._idle[seq]
        self._count -= 1
        return cursor

    def _give(self, cursor: Cursor) -> None:
        if self._closed:
            self._discard(cursor)
            return
        if self._count >= MAX_IDLE_CURSORS:
            oldest = min((c for cs in self._idle.values() for c in cs), key=lambda c: c.used)
            self._idle[oldest.next].remove(oldest)
            if not self._idle[oldest.next]:
                del self._idle[oldest.next]
            self._count -= 1
            self._discard(oldest)
        self._idle.setdefault(cursor.next, []).append(cursor)
        self._count += 1

    async def _create(self, first_seq: int) -> Cursor:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, first_seq), filter_subject=self.subject,
            inactive_threshold=INACTIVE, mem_storage=True, num_replicas=1)
        info = await guard(self.settings, self.js.add_consumer(self.stream, config))
        cursor = Cursor(self.nc, self.stream, str(info.name), first_seq)
        await guard(self.settings, cursor.puller.start())
        return cursor

    def _discard(self, cursor: Cursor) -> None:
        task = asyncio.create_task(self._delete(cursor))
        self._deleting.add(task)
        task.add_done_callback(self._deleting.discard)

    async def _delete(self, cursor: Cursor) -> None:
        await cursor.puller.stop()
        with contextlib.suppress(Exception):  # best effort: the server drops it when inactive
            await asyncio.wait_for(self.js.delete_consumer(self.stream, cursor.name), 2.0)

    async def close(self) -> None:
        """Delete every cursor (best effort) and wait for the deletions in flight."""
        self._closed = True
        for cursors in self._idle.values():
            for c in cursors:
                self._discard(c)
        self._idle.clear()
        self._count = 0
        if self._deleting:
            await asyncio.gather(*self._deleting, return_exceptions=True)


async def scan_last_per_subject(settings: NatsSettings, nc: Client, js: JetStreamContext,
                                stream: str, subject: str) -> list[Msg]:
    """The last message of every subject matching ``subject`` (a KV bucket's current values),
    through a short-lived ephemeral consumer."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        filter_subject=subject, inactive_threshold=INACTIVE, mem_storage=True, num_replicas=1)
    info = await guard(settings, js.add_consumer(stream, config))
    puller = Puller(nc, "$JS.API", stream, str(info.name), 0.0)
    await puller.start()
    out: list[Msg] = []
    try:
        while True:
            got = await guard(settings, puller.pull(SCAN_BATCH, settings.request_timeout))
            out += [m for _, m in got]
            if len(got) < SCAN_BATCH:
                return out
    finally:
        await puller.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(js.delete_consumer(stream, str(info.name)), 2.0)
