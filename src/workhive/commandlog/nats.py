"""NATS JetStream message log (``nats://host:4222/STREAM``, ``tls://host:4222/STREAM``).

Layout: one limits-retention stream ``STREAM`` holding one subject, ``workhive.log.STREAM``;
checkpoints in the KV bucket ``STREAM_checkpoints`` (key: the worker name, hex-escaped when it
is not plain ``[A-Za-z0-9_-]``; value: JSON with the name, last id and time).

Ids: the JetStream **stream sequence** is the message id (1, 2, 3, …).

Gap-safe: the stream's leader assigns sequences as it stores messages, one at a time, in the
order it commits them (in a cluster, in the order of its replicated log), and a consumer only
ever delivers stored messages in sequence order. So once a reader has seen sequence *n*, every
sequence below *n* that will ever exist is already stored: no later append can land below it.
Sequences can have holes only where a message was deleted (``nats stream rmm``) or aged out
(the stream is created without limits, so only by hand); a reader skips a hole and loses nothing
that exists.

Appends: ``append`` publishes and waits for the stream's ack; ``append_many`` pipelines the
publishes on one connection (the server stores them in the order they were sent, so their ids
increase in entry order). A plain append whose ack is lost raises
:class:`~workhive.errors.BackendUnavailable` (it may or may not be stored, as with a lost SQL
commit). Entries published by a ``transaction()`` that saves a checkpoint carry a
``Nats-Msg-Id`` derived from that checkpoint: a lost ack is retried with the same id, and the
same handler run again for the same message (after a crash) publishes nothing new, as long as it
happens within the stream's duplicate window (``?duplicate_window=`` seconds, default 120). If a
retry is needed inside one batch, the retried entry may land after the ones that followed it.

Reads: ephemeral pull consumers (:mod:`._nats_io`). Waiting: a headers-only ordered consumer on
the log subject, started on the first ``wait_for``, moves a shared :class:`HeadWatcher`; no
polling.

``transaction()``: no database here; see :mod:`._buffered` (appends buffered and published at
commit, then the checkpoint; ``execute``/``fetch`` raise :class:`~workhive.errors.CapabilityError`).

Credentials as for the NATS task backend: in the URL, else ``NATS_USER``/``NATS_PASSWORD``,
``NATS_TOKEN`` or a creds file in ``NATS_CREDS``; ``url`` never shows a password.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue

from workhive.backends._options import merge_options
from workhive.backends.nats.settings import NatsSettings
from workhive.commandlog._broker_log import BrokerLog
from workhive.commandlog._log import Entry, HeadWatcher
from workhive.commandlog._message import Message
from workhive.commandlog._nats_io import Cursors, connect, guard, scan_last_per_subject, stream_seq
from workhive.commandlog._url import split_log_url
from workhive.errors import BackendError, BackendUnavailable, ConfigError

logger = logging.getLogger("workhive.commandlog.nats")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_STREAM_IN_USE = 10058  # "stream name already in use with a different configuration"
_CONVERT: dict[str, Any] = {
    "connect_timeout": float,
    "request_timeout": float,
    "replicas": int,
    "duplicate_window": float,
}
_RETRIES = 2  # extra publishes of an entry whose ack was lost (deduplicated by its msg id)


class _Body(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What one stored message holds (MessagePack): the id is the stream sequence."""

    name: str
    payload: bytes
    ts: float
    metadata: dict[str, str] | None = None


class _Checkpoint(msgspec.Struct, frozen=True):
    worker: str
    last_id: int
    updated_at: float


_body_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(_Body)
_cp_encoder = msgspec.json.Encoder()
_cp_decoder = msgspec.json.Decoder(_Checkpoint)


def _key(worker: str) -> str:
    """A worker name as a KV key (reversible; plain names stay readable in ``nats kv ls``)."""
    return worker if _PLAIN_KEY.match(worker) else "=" + worker.encode().hex()


def _message(msg: Msg) -> Message:
    seq = stream_seq(msg)
    try:
        body = _body_decoder.decode(msg.data)
    except msgspec.DecodeError as exc:  # not written by workhive: keep it visible, never wedge
        return Message(seq, "", msg.data, 0.0, {"error": f"undecodable log entry: {exc}"})
    if body.metadata:
        return Message(seq, body.name, body.payload, body.ts, body.metadata)
    return Message(seq, body.name, body.payload, body.ts)


class NatsMessageLog(BrokerLog):
    """Message log in one JetStream stream (see the module docstring)."""

    kind = "nats"

    def __init__(self, url: str, **options: Any) -> None:
        base, stream, query = split_log_url(url, "nats", "nats://127.0.0.1:4222/ORDERS")
        if not _NAME_RE.match(stream):
            raise ConfigError(f"nats log stream name must match [A-Za-z0-9_-]{{1,32}} (it is a "
                              f"stream name and a subject token), got {stream!r}")
        values = merge_options("nats log", query, options, _CONVERT)
        self.replicas = int(values.pop("replicas", 1))
        self.duplicate_window = float(values.pop("duplicate_window", 120.0))
        if not 1 <= self.replicas <= 5:
            raise ConfigError(f"nats log option 'replicas' must be 1..5, got {self.replicas}")
        if not self.duplicate_window > 0:
            raise ConfigError("nats log option 'duplicate_window' must be > 0, got "
                              f"{self.duplicate_window}")
        self.settings = NatsSettings.from_url(base, stream=stream, **values)
        self.stream = stream
        self.subject = f"workhive.log.{stream}"
        self.bucket = f"{stream}_checkpoints"
        self.url = f"{self.settings.redacted_url}/{stream}"
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._cursors: Cursors | None = None
        self._watch: Subscription | None = None
        self._watch_lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()
        self._watcher = HeadWatcher()

    def __repr__(self) -> str:
        return f"NatsMessageLog({self.url!r})"

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BackendError(f"nats log {self.url} is not open (call open() first)")
        return self._js

    async def open(self) -> None:
        """Connect, create the stream and the checkpoint bucket if missing. Idempotent."""
        async with self._open_lock:
            if self._nc is not None:
                return
            nc = await connect(self.settings)
            self._nc, self._js = nc, nc.jetstream(timeout=self.settings.request_timeout)
            try:
                await self._ensure_stream()
                self._kv = await self._ensure_bucket()
                self._cursors = Cursors(self.settings, nc, self.js, self.stream, self.subject)
                self._watcher.advance(await self.head())
            except BaseException:
                await self._disconnect()
                raise

    async def _ensure_stream(self) -> None:
        config = StreamConfig(
            name=self.stream, subjects=[self.subject], retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE, discard=DiscardPolicy.OLD, num_replicas=self.replicas,
            duplicate_window=self.duplicate_window, allow_direct=True)
        try:
            await guard(self.settings, self.js.add_stream(config))
        except BackendError as exc:
            cause = exc.__cause__
            if getattr(cause, "err_code", None) != _STREAM_IN_USE:
                raise
            info = await guard(self.settings, self.js.stream_info(self.stream))
            existing = info.config
            if existing.subjects != [self.subject] or existing.retention != RetentionPolicy.LIMITS:
                raise ConfigError(
                    f"nats stream {self.stream!r} exists and is not a workhive log (subjects "
                    f"{existing.subjects}, retention {existing.retention}); a log needs its own "
                    f"stream with the one subject {self.subject!r} and limits retention: pick "
                    "another name") from None
            if (existing.max_age or 0) > 0 or (existing.max_msgs or -1) > 0:
                logger.warning("nats log stream %s drops old messages (max_age=%s, max_msgs=%s): "
                               "replay from id 1 will miss them", self.stream, existing.max_age,
                               existing.max_msgs)

    async def _ensure_bucket(self) -> KeyValue:
        config = KeyValueConfig(bucket=self.bucket, history=1, storage=StorageType.FILE,
                                replicas=self.replicas)
        try:
            return await guard(self.settings, self.js.create_key_value(config))
        except BackendError as exc:
            if getattr(exc.__cause__, "err_code", None) != _STREAM_IN_USE:
                raise
            return await guard(self.settings, self.js.key_value(self.bucket))

    async def close(self) -> None:
        """Stop waiting, delete this process's cursors, close the connection. Safe twice."""
        async with self._open_lock:
            await self._disconnect()

    async def _disconnect(self) -> None:
        watch, self._watch = self._watch, None
        cursors, self._cursors = self._cursors, None
        nc, self._nc, self._js, self._kv = self._nc, None, None, None
        if watch is not None:
            with suppress(nats.errors.Error, TimeoutError):
                await watch.unsubscribe()
        if cursors is not None:
            await cursors.close()
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), 5)
            except (nats.errors.Error, TimeoutError):
                await nc.close()

    async def drop(self) -> None:
        """Delete the stream and the checkpoint bucket (tests, teardown). Needs an open log."""
        for name in (self.stream, f"KV_{self.bucket}"):
            try:
                await guard(self.settings, self.js.delete_stream(name))
            except BackendError as exc:
                if "not found" not in str(exc).lower():
                    raise

    # -- append ----------------------------------------------------------------------------
    async def _write(self, entries: Sequence[Entry], dedupe: str | None) -> list[int]:
        """Publish every entry (pipelined) and return the stream sequences, in entry order.

        ``dedupe`` (a transaction's checkpoint) gives every entry a ``Nats-Msg-Id`` derived
        from it and its position: the same transaction run again publishes nothing new, and a
        lost ack is retried safely. Plain appends carry no header at all (every reader would
        parse it on every read, the dominant cost of a read in nats-py), so a lost ack is
        reported as :class:`BackendUnavailable`: the entry may or may not be stored.
        """
        now = time.time()
        bodies = [_body_encoder.encode(_Body(n, p, now, m or None)) for n, p, m in entries]
        msg_ids: list[str | None] = [None] * len(bodies)
        if dedupe is not None:
            stem = "tx-" + hashlib.sha256(dedupe.encode()).hexdigest()[:32]
            msg_ids = [f"{stem}-{i}" for i in range(len(bodies))]
        if len(bodies) == 1:
            ids = [await self._publish_one(bodies[0], msg_ids[0])]
        else:
            ids = await self._publish_pipelined(bodies, msg_ids)
        self._watcher.advance(max(ids))
        return ids

    async def _publish_pipelined(self, bodies: list[bytes], msg_ids: list[str | None],
                                 ) -> list[int]:
        js = self.js
        futures = [await guard(self.settings, js.publish_async(
            self.subject, body, headers=None if mid is None else {"Nats-Msg-Id": mid}))
            for body, mid in zip(bodies, msg_ids, strict=True)]
        done, pending = await asyncio.wait(futures, timeout=self.settings.request_timeout)
        for future in pending:
            future.cancel()
        ids = []
        for body, mid, future in zip(bodies, msg_ids, futures, strict=True):
            if future in done and future.exception() is None:
                ids.append(int(future.result().seq))
            elif mid is not None:  # deduplicated by its id: publish it again
                ids.append(await self._publish_one(body, mid))
            elif future in done:
                await guard(self.settings, future)  # raises the translated error
            else:
                raise self.settings.unavailable(
                    f"{len(pending)} of {len(bodies)} appends to {self.stream} were not "
                    "acknowledged in time; they may or may not be stored")
        return ids

    async def _publish_one(self, body: bytes, msg_id: str | None) -> int:
        headers = None if msg_id is None else {"Nats-Msg-Id": msg_id}
        attempts = 1 if msg_id is None else _RETRIES + 1
        for attempt in range(attempts):
            try:
                ack = await guard(self.settings, self.js.publish(
                    self.subject, body, headers=headers))
                return int(ack.seq)
            except BackendError as exc:
                if attempt == attempts - 1 or not isinstance(exc, BackendUnavailable):
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- read ------------------------------------------------------------------------------
    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]:
        """Messages with ``id > last_id`` in id order, at most ``limit``."""
        if self._cursors is None:
            raise BackendError(f"nats log {self.url} is not open (call open() first)")
        if limit <= 0:
            return []
        return [_message(m) for m in await self._cursors.read(last_id + 1, limit)]

    async def head(self) -> int:
        """The highest stored id (0 for an empty log)."""
        info = await guard(self.settings, self.js.stream_info(self.stream))
        return int(info.state.last_seq)

    # -- waiting ---------------------------------------------------------------------------
    async def wait_for(self, after_id: int, timeout: float) -> bool:
        """Wait until a message with ``id > after_id`` exists; ``False`` on timeout."""
        if self._watcher.head > after_id:
            return True
        if self._watch is None:
            await self._start_watch()
        return await self._watcher.wait(after_id, timeout)

    async def _start_watch(self) -> None:
        async with self._watch_lock:
            if self._watch is not None:
                return

            async def on_msg(msg: Msg) -> None:
                seq = stream_seq(msg)
                if seq:
                    self._watcher.advance(seq)

            # headers only: a waiting process learns each new sequence, not every payload
            self._watch = await guard(self.settings, self.js.subscribe(
                self.subject, stream=self.stream, ordered_consumer=True, headers_only=True,
                deliver_policy=DeliverPolicy.NEW, cb=on_msg))
            self._watcher.advance(await self.head())  # anything stored before it started

    # -- checkpoints -----------------------------------------------------------------------
    @property
    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise BackendError(f"nats log {self.url} is not open (call open() first)")
        return self._kv

    async def get_checkpoint(self, worker: str) -> int:
        try:
            entry = await guard(self.settings, self._bucket.get(_key(worker)))
        except nats.js.errors.KeyNotFoundError:
            return 0
        return _cp_decoder.decode(entry.value or b"").last_id if entry.value else 0

    async def checkpoints(self) -> dict[str, tuple[int, float]]:
        assert self._nc is not None
        msgs = await scan_last_per_subject(self.settings, self._nc, self.js,
                                           f"KV_{self.bucket}", f"$KV.{self.bucket}.>")
        out: dict[str, tuple[int, float]] = {}
        for msg in msgs:
            if msg.headers and msg.headers.get("KV-Operation") in ("DEL", "PURGE"):
                continue
            try:
                cp = _cp_decoder.decode(msg.data)
            except msgspec.DecodeError:
                logger.warning("ignoring an undecodable checkpoint in bucket %s", self.bucket)
                continue
            out[cp.worker] = (cp.last_id, cp.updated_at)
        return dict(sorted(out.items()))

    async def _save_direct(self, worker: str, last_id: int) -> None:
        value = _cp_encoder.encode(_Checkpoint(worker, last_id, time.time()))
        await guard(self.settings, self._bucket.put(_key(worker), value))
