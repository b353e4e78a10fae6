"""Connection, error translation, streams and durable consumers of the ``nats`` backend.

Kept apart from the queue logic so every JetStream call goes through one door
(:meth:`NatsConnection.guard`), which turns "not connected", timeouts and "no responders" into
:class:`~workhive.errors.BackendUnavailable` (one line, no secret) and other JetStream errors
into :class:`~workhive.errors.BackendError`.

Each part of :class:`~workhive.backends.nats.NatsBackend` (coordination in KV, dead letters,
events, statistics) is built on one :class:`NatsConnection`, so it reads, and can be tested, on
its own. The connection also creates the streams every part shares, decides whether delays use
the server's message schedules (:mod:`.schedule`), and keeps one :class:`~.pull.Puller` per
durable consumer this process pulls from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)

from workhive.backends.nats.naming import Names
from workhive.backends.nats.pull import Puller
from workhive.backends.nats.schedule import (
    server_has_schedules,
    server_version,
    task_stream_config,
)
from workhive.backends.nats.settings import NatsSettings
from workhive.errors import BackendError

logger = logging.getLogger("workhive.backends.nats")
T = TypeVar("T")

UNREACHABLE = (nats.errors.NoServersError, nats.errors.ConnectionClosedError,
               nats.errors.TimeoutError, nats.errors.NoRespondersError,
               nats.errors.StaleConnectionError, nats.errors.ConnectionReconnectingError,
               nats.errors.OutboundBufferLimitError, nats.js.errors.ServiceUnavailableError,
               nats.js.errors.NoStreamResponseError, asyncio.TimeoutError, OSError)


class NatsConnection:
    """Owns the nats-py connection, the streams and the pullers; ``open`` is idempotent."""

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self.names = Names(settings.stream)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._api_level = 0
        self._open_lock = asyncio.Lock()
        self._closing = False
        self._pullers: dict[str, Puller] = {}  # durable consumer name -> its puller
        #: this process publishes delays as message schedules (else to the delay stream)
        self.schedules = False
        #: where an idle fetch listens for new tasks
        self.wake_root = self.names.task_root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.redacted_url!r}, " \
               f"stream={self.settings.stream!r})"

    @property
    def is_open(self) -> bool:
        return self._nc is not None

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise BackendError("the nats backend is not open (call open() first)")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BackendError("the nats backend is not open (call open() first)")
        return self._js

    async def open(self, prepare: Callable[[], Awaitable[None]]) -> None:
        """Connect, create the streams and the forward consumer, then ``prepare`` (what the
        parts create for themselves), all under one lock; closed again if any step fails.
        Idempotent: a second call returns at once."""
        async with self._open_lock:
            if self._nc is not None:
                return
            await self._connect()
            try:
                await self._create_streams()
                await prepare()
            except BaseException:
                await self.close()
                raise

    async def _connect(self) -> None:
        """Open the connection (the caller holds ``_open_lock``).

        nats-py retries the first connection as long as reconnects are allowed (forever here,
        so a worker survives restarts), so the first attempt is bounded by ``connect_timeout``
        and reported with the last error the client saw (a refused connection, an
        authorization violation), passwords removed.
        """
        s = self.settings
        seen: list[str] = []

        async def on_error(exc: Exception) -> None:
            seen.append(s.redact(str(exc)) or type(exc).__name__)
            if self._nc is not None:
                logger.warning("nats %s: %s", s.redacted_url, seen[-1])

        async def on_disconnect() -> None:
            if not self._closing:
                logger.warning("nats %s: disconnected; reconnecting", s.redacted_url)

        async def on_reconnect() -> None:
            logger.info("nats %s: reconnected", s.redacted_url)

        try:
            nc = await asyncio.wait_for(nats.connect(
                **s.connect_options(), error_cb=on_error, disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect), s.connect_timeout + 0.5)
        except (*UNREACHABLE, nats.errors.Error) as exc:
            detail = seen[-1] if seen else (s.redact(str(exc)) or "no answer")
            # the server's refusal may be followed by a connection reset: look at every error
            refusal = next((d for d in seen if "authorization" in d.lower()
                            or "authentication" in d.lower()), None)
            if refusal is not None or "authorization" in detail.lower():
                raise BackendError(f"nats at {s.redacted_url} refused the credentials: "
                                   f"{refusal or detail}") from None
            raise s.unavailable(detail) from None
        self._nc, self._js = nc, nc.jetstream(timeout=s.request_timeout)
        self._closing = False

    async def _create_streams(self) -> None:
        n, js = self.names, self.js
        info = await self.guard(js.account_info())
        self._api_level = int(getattr(info.api, "level", None) or 0)
        await self._create_task_stream()
        plan = [
            (n.delay, n.delay_root, RetentionPolicy.WORK_QUEUE),
            (n.events, n.event_root, RetentionPolicy.INTEREST),
            (n.dead, n.dead_root, RetentionPolicy.LIMITS),
        ]
        for name, root, retention in plan:
            config = StreamConfig(name=name, subjects=[root + ">"], retention=retention,
                                  storage=StorageType.FILE, duplicate_window=120.0,
                                  num_replicas=self.settings.replicas)
            await self.guard(self._add_stream(config))
        await self.guard(self.js.add_consumer(n.delay, ConsumerConfig(
            durable_name="forward", ack_policy=AckPolicy.EXPLICIT, ack_wait=5.0,
            max_ack_pending=-1, max_deliver=-1, deliver_policy=DeliverPolicy.ALL)))

    async def _create_task_stream(self) -> None:
        """``P_TASKS``, with message schedules when the server has them and the ``schedules``
        option allows (:mod:`.schedule`). A stream that already has schedules keeps them
        whatever this process uses: the server refuses to turn them off ("message schedules
        can not be disabled"), and the delayed tasks of other processes wait there."""
        mode, n = self.settings.schedules, self.names
        capable = mode != "off" and server_has_schedules(self.nc, self._api_level)
        if mode == "on" and not capable:
            raise BackendError(self._no_schedules())
        existing = await self.guard(self._stream_config(n.tasks))
        keep = existing is not None and bool(existing.allow_msg_schedules)
        try:
            info = await self.guard(self._add_stream(
                task_stream_config(n, schedules=capable or keep, replicas=self.settings.replicas)))
        except BackendError as exc:
            if not capable or keep or mode == "on":
                raise
            logger.warning("nats %s: message schedules refused (%s); delays use the forwarder",
                           self.settings.redacted_url, exc)
            info = await self.guard(self._add_stream(
                task_stream_config(n, schedules=False, replicas=self.settings.replicas)))
        on_stream = bool(info.config.allow_msg_schedules)
        self.schedules = capable and on_stream
        self.wake_root = n.wake_root if on_stream and info.config.republish else n.task_root
        if mode == "on" and not self.schedules:
            raise BackendError(self._no_schedules())

    def _no_schedules(self) -> str:
        version = server_version(self.nc)
        shown = ".".join(map(str, version)) if version else "of unknown version"
        return (f"nats at {self.settings.redacted_url} has no message schedules (server "
                f"{shown}, JetStream API level {self._api_level}; they need nats-server 2.12 "
                "or later): use the option schedules=auto or schedules=off")

    async def _stream_config(self, name: str) -> StreamConfig | None:
        try:
            return (await self.js.stream_info(name)).config
        except nats.js.errors.NotFoundError:
            return None

    async def _add_stream(self, config: StreamConfig) -> StreamInfo:
        try:
            return await self.js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != 10058:  # "stream name already in use" with another config
                raise
            return await self.js.update_stream(config)

    def has_puller(self, name: str) -> bool:
        """Whether this process already pulls from the durable consumer ``name``."""
        return name in self._pullers

    async def puller(self, stream: str, name: str, config: ConsumerConfig,
                     lease: float) -> Puller:
        """The puller of durable consumer ``name``, made (or its ``ack_wait`` changed to
        ``lease``) on first use; ``config`` supplies the filter when the consumer is new."""
        puller = self._pullers.get(name)
        if puller is None or puller.ack_wait != lease:
            if puller is not None:
                config = (await self.guard(self.js.consumer_info(stream, name))).config
            config.durable_name, config.ack_wait = name, lease
            config.ack_policy, config.deliver_policy = AckPolicy.EXPLICIT, DeliverPolicy.ALL
            config.max_ack_pending = config.max_deliver = -1
            await self.guard(self.js.add_consumer(stream, config))
            if puller is None:
                puller = self._pullers[name] = Puller(self.nc, "$JS.API", stream, name, lease)
                await puller.start()
            puller.ack_wait = lease
        return puller

    async def close(self) -> None:
        """Stop the pullers and drain the connection."""
        for puller in self._pullers.values():
            await puller.stop()
        self._pullers.clear()
        nc, self._nc, self._js = self._nc, None, None
        self._closing = True
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), 5)
            except (nats.errors.Error, TimeoutError):
                await nc.close()

    async def guard(self, call: Awaitable[T]) -> T:
        """Await a nats-py call with the backend's error translation."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            if asyncio.iscoroutine(call):
                call.close()
            state = "not open" if nc is None else "disconnected (reconnecting)"
            raise self.settings.unavailable(state)
        try:
            return await call
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyWrongLastSequenceError):
            raise  # answers, not failures: the KV callers handle them
        except nats.js.errors.APIError as exc:
            if getattr(exc, "code", None) == 503:
                raise self.settings.unavailable(f"JetStream unavailable ({exc.description})") \
                    from None
            raise BackendError(f"nats at {self.settings.redacted_url} failed: "
                               f"{self.settings.redact(str(exc))}") from exc
        except UNREACHABLE as exc:
            raise self.settings.unavailable(exc or "no response in time") from None
        except nats.errors.Error as exc:
            raise BackendError(f"nats at {self.settings.redacted_url} failed: "
                               f"{self.settings.redact(str(exc))}") from exc

    def note(self, exc: BaseException) -> None:
        """Log a failed background or best-effort call (the next round retries it)."""
        logger.warning("nats background call failed: %s", self.settings.redact(str(exc)))

    async def request(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        """A raw JetStream API request (for answers nats-py drops, e.g. purge counts)."""
        msg = await self.guard(self.nc.request(subject, json.dumps(body).encode(),
                                               timeout=self.settings.request_timeout))
        answer: dict[str, Any] = json.loads(msg.data)
        if "error" in answer:
            raise BackendError(f"nats at {self.settings.redacted_url} failed: {answer['error']}")
        return answer

    async def scan(self, stream: str, subject: str, *, last_per_subject: bool = False,
                   ) -> AsyncGenerator[Msg, None]:
        """Every stored message of ``stream`` on ``subject`` (or the last one per subject),
        oldest first, through a short-lived ephemeral consumer that acks nothing."""
        policy = DeliverPolicy.LAST_PER_SUBJECT if last_per_subject else DeliverPolicy.ALL
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=policy,
                                filter_subject=subject, inactive_threshold=30.0,
                                max_ack_pending=-1)
        info = await self.guard(self.js.add_consumer(stream, config))
        puller = Puller(self.nc, "$JS.API", stream, info.name, 0.0)
        await puller.start()
        try:
            while True:
                got = await self.guard(puller.pull(256, self.settings.request_timeout))
                for _, msg in got:
                    yield msg
                if len(got) < 256:
                    return
        finally:
            await puller.stop()
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                # the server drops it after inactive_threshold anyway
                await self.js.delete_consumer(stream, info.name)

    async def wipe(self) -> None:
        """Delete every stream and bucket of this prefix (tests, benchmark clean-up); on a
        closed connection through a temporary one."""
        temporary = self._nc is None
        if temporary:
            async with self._open_lock:
                await self._connect()
        try:
            for stream in [*self.names.streams, *(f"KV_{b}" for b in self.names.buckets)]:
                try:
                    await self.guard(self.js.delete_stream(stream))
                except BackendError as exc:
                    if "not found" not in str(exc).lower():
                        raise
        finally:
            if temporary:
                await self.close()
