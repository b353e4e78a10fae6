"""Kafka message log (``kafka://host:9092/topic``, ``redpanda://…``), via aiokafka.

Layout: the topic ``topic`` with **one partition** (created if missing, with unlimited
retention; an existing topic with more partitions is refused: a log needs one total order), and
the compacted topic ``topic.checkpoints`` (key: the worker name, value: JSON with the last id and
time), read to its end when a checkpoint is asked for.

Ids: **offset + 1**, so ids start at 1 as in the SQL logs and checkpoint 0 still means
"nothing processed". ``head()`` is the partition's high-water mark.

Gap-safe: the partition leader assigns offsets as it appends, in log order, and consumers only
see records below the high-water mark (replicated to every in-sync replica with ``acks=all``),
which only moves forward. So once a reader has seen offset *n*, every offset below *n* is
already readable: no later append can land below it. (No transactions are used, so there are
no control records; offsets are contiguous.)

Appends: ``acks=all``, every record to partition 0. aiokafka keeps at most one produce request
in flight per partition and retries a failed batch before sending the next, so records land in
the order they were sent and ``append_many``'s ids increase in entry order. No idempotent
producer (brokers that lack it, Tansu among them, refuse to start one), so a produce that is
retried after a lost response may store a record twice. If an ``append_many`` fails part-way,
the entries before the failure may be stored.

Reads: :class:`~._kafka_io.PartitionReader` (seek, never waits on an empty fetch). Waiting:
:class:`~._kafka_io.Tailer`, started on the first ``wait_for``, a long poll at the end.

``transaction()``: no database here; see :mod:`._buffered` (appends buffered and produced at
commit, then the checkpoint). Delivery is at least once.

Credentials as for the Kafka task backend: ``user:password@`` in the URL (else
``$KAFKA_PASSWORD``), ``?sasl_mechanism=``, ``?tls=true``, ``?ssl_cafile=``; ``url`` never
shows a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from workhive.backends._options import flag, merge_options
from workhive.backends.kafka.settings import DRIVER_ERRORS, KafkaSettings
from workhive.commandlog._broker_log import BrokerLog
from workhive.commandlog._kafka_io import PartitionReader, Tailer
from workhive.commandlog._log import Entry, HeadWatcher
from workhive.commandlog._message import Message, decode_metadata, encode_metadata
from workhive.commandlog._url import split_log_url
from workhive.errors import BackendError, ConfigError

logger = logging.getLogger("workhive.commandlog.kafka")

H_NAME = "wh-name"
H_META = "wh-meta"
_ALREADY_EXISTS = 36
_CONVERT: dict[str, Any] = {
    "replication": int,
    "sasl_mechanism": lambda v: str(v).upper(),
    "tls": flag,
    "ssl_cafile": str,
    "request_timeout": float,
}
_LOG_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}
_CHECKPOINT_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(3_600_000)}


class _Checkpoint(msgspec.Struct, frozen=True):
    last_id: int
    updated_at: float


_cp_encoder = msgspec.json.Encoder()
_cp_decoder = msgspec.json.Decoder(_Checkpoint)


def _message(record: Any) -> Message:
    name = ""
    meta: bytes | None = None
    for key, value in record.headers or ():
        if key == H_NAME:
            name = bytes(value).decode("utf-8", "replace")
        elif key == H_META:
            meta = bytes(value)
    ts = record.timestamp / 1000.0
    payload = record.value if record.value is not None else b""
    if meta is None:
        return Message(record.offset + 1, name, payload, ts)
    try:
        return Message(record.offset + 1, name, payload, ts, decode_metadata(meta))
    except msgspec.DecodeError:
        return Message(record.offset + 1, name, payload, ts, {"error": "undecodable metadata"})


class KafkaMessageLog(BrokerLog):
    """Message log in one single-partition Kafka topic (see the module docstring)."""

    kind = "kafka"

    def __init__(self, url: str, **options: Any) -> None:
        base, topic, query = split_log_url(url, "kafka", "kafka://127.0.0.1:9092/orders")
        values = merge_options("kafka log", query, options, _CONVERT)
        self.request_timeout = float(values.pop("request_timeout", 15.0))
        if not self.request_timeout > 0:
            raise ConfigError("kafka log option 'request_timeout' must be > 0, got "
                              f"{self.request_timeout}")
        self.settings = KafkaSettings.from_url(base, topic=topic, **values)
        self.topic = topic
        self.checkpoint_topic = f"{topic}.checkpoints"
        self.tp = TopicPartition(topic, 0)
        self.url = f"{self.settings.redacted_url}/{topic}"
        self._producer: AIOKafkaProducer | None = None
        self._reader: PartitionReader | None = None
        self._cp_reader: PartitionReader | None = None
        self._tailer: Tailer | None = None
        self._open_lock = asyncio.Lock()
        self._tail_lock = asyncio.Lock()
        self._cp_lock = asyncio.Lock()
        self._cp: dict[str, tuple[int, float]] = {}
        self._cp_next = 0  # the checkpoint topic's offset read next
        self._watcher = HeadWatcher()

    def __repr__(self) -> str:
        return f"KafkaMessageLog({self.url!r})"

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, create both topics if missing, check the partition count. Idempotent."""
        async with self._open_lock:
            if self._producer is not None:
                return
            try:
                await self._ensure_topics()
                producer = AIOKafkaProducer(
                    acks="all", enable_idempotence=False, linger_ms=0,
                    request_timeout_ms=int(self.request_timeout * 1000),
                    **self.settings.client_kwargs())
                self._producer = producer
                await producer.start()
                self._reader = PartitionReader(self.settings, self.tp, self.request_timeout)
                await self._reader.start()
                self._cp_reader = PartitionReader(
                    self.settings, TopicPartition(self.checkpoint_topic, 0), self.request_timeout)
                await self._cp_reader.start()
                self._watcher.advance(await self._reader.end())
            except BaseException as exc:
                await self._disconnect()
                if isinstance(exc, DRIVER_ERRORS):
                    raise self.settings.error(exc, f"open log {self.topic}") from None
                raise

    async def _ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(request_timeout_ms=int(self.request_timeout * 1000),
                                    **self.settings.client_kwargs())
        await admin.start()
        try:
            r = self.settings.replication
            response = await admin.create_topics([
                NewTopic(self.topic, 1, r, topic_configs=_LOG_CONFIG),
                NewTopic(self.checkpoint_topic, 1, r, topic_configs=_CHECKPOINT_CONFIG)])
            for topic, code, *rest in response.topic_errors:
                if code not in (0, _ALREADY_EXISTS):
                    message = rest[0] if rest and rest[0] else f"error code {code}"
                    raise BackendError(f"kafka at {self.settings.where} could not create topic "
                                       f"{topic!r}: {message}")
            for info in await admin.describe_topics([self.topic, self.checkpoint_topic]):
                count = len(info.get("partitions") or ())
                if count != 1:
                    raise ConfigError(
                        f"kafka topic {info.get('topic')!r} has {count} partitions; a command "
                        "log needs exactly one (one total order of ids). Use another topic name "
                        "and workhive creates it with one partition.")
        finally:
            await admin.close()

    async def close(self) -> None:
        """Stop tailing and close every client. Safe to call twice."""
        async with self._open_lock:
            await self._disconnect()

    async def _disconnect(self) -> None:
        tailer, self._tailer = self._tailer, None
        readers = [self._reader, self._cp_reader]
        producer, self._producer = self._producer, None
        self._reader = self._cp_reader = None
        if tailer is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await tailer.stop()
        for reader in readers:
            if reader is not None:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await reader.stop()
        if producer is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await producer.stop()

    async def drop(self) -> None:
        """Delete both topics (tests, teardown)."""
        admin = AIOKafkaAdminClient(**self.settings.client_kwargs())
        await admin.start()
        try:
            await admin.delete_topics([self.topic, self.checkpoint_topic])
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, f"delete log {self.topic}") from None
        finally:
            await admin.close()

    def _ready(self) -> tuple[AIOKafkaProducer, PartitionReader, PartitionReader]:
        if self._producer is None or self._reader is None or self._cp_reader is None:
            raise BackendError(f"kafka log {self.url} is not open (call open() first)")
        return self._producer, self._reader, self._cp_reader

    # -- append ----------------------------------------------------------------------------
    async def _write(self, entries: Sequence[Entry], dedupe: str | None) -> list[int]:
        """Produce every entry to partition 0 and return their ids (offset + 1), in order.

        ``dedupe`` is not used: without an idempotent producer a transaction run again
        appends its entries again (delivery is at least once).
        """
        producer = self._ready()[0]
        now_ms = int(time.time() * 1000)
        try:
            futures = []
            for name, payload, meta in entries:
                headers = [(H_NAME, name.encode())]
                if meta:
                    headers.append((H_META, encode_metadata(meta) or b""))
                futures.append(await producer.send(
                    self.topic, payload, partition=0, timestamp_ms=now_ms, headers=headers))
            results = await asyncio.gather(*futures)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, f"append to {self.topic}") from None
        ids = [int(r.offset) + 1 for r in results]
        self._watcher.advance(ids[-1])
        return ids

    # -- read ------------------------------------------------------------------------------
    async def read_after(self, last_id: int, limit: int = 1000) -> list[Message]:
        """Messages with ``id > last_id`` in id order, at most ``limit``."""
        reader = self._ready()[1]
        if limit <= 0:
            return []
        records = await reader.read(max(0, last_id), limit, self._watcher.head)
        return [_message(r) for r in records]

    async def head(self) -> int:
        """The highest stored id (0 for an empty log)."""
        end = await self._ready()[1].end()
        self._watcher.advance(end)
        return end

    # -- waiting ---------------------------------------------------------------------------
    async def wait_for(self, after_id: int, timeout: float) -> bool:
        """Wait until a message with ``id > after_id`` exists; ``False`` on timeout."""
        if self._watcher.head > after_id:
            return True
        if self._tailer is None:
            await self._start_tail()
        return await self._watcher.wait(after_id, timeout)

    async def _start_tail(self) -> None:
        async with self._tail_lock:
            if self._tailer is not None:
                return
            end = await self.head()
            tailer = Tailer(self.settings, self.tp, self._watcher)
            try:
                await tailer.start(end)
            except BaseException as exc:  # failed, or cancelled (a worker stopped meanwhile)
                with contextlib.suppress(*DRIVER_ERRORS):
                    await tailer.stop()  # an unstopped consumer warns when it is collected
                if isinstance(exc, DRIVER_ERRORS):
                    raise self.settings.error(exc, f"tail {self.topic}") from None
                raise
            if self._producer is None:  # closed while the tailer started: nobody will stop it
                with contextlib.suppress(*DRIVER_ERRORS):
                    await tailer.stop()
                return
            self._tailer = tailer

    # -- checkpoints -----------------------------------------------------------------------
    async def _catch_up(self) -> None:
        """Read the checkpoint topic to its end (the last record per worker wins)."""
        reader = self._ready()[2]
        async with self._cp_lock:
            end = await reader.end()
            while self._cp_next < end:
                for record in await reader.read(self._cp_next, 1000, end):
                    self._cp_next = record.offset + 1
                    self._apply_checkpoint(record)

    def _apply_checkpoint(self, record: Any) -> None:
        worker = bytes(record.key or b"").decode("utf-8", "replace")
        if record.value is None:  # a tombstone: the worker's checkpoint was removed
            self._cp.pop(worker, None)
            return
        try:
            cp = _cp_decoder.decode(record.value)
        except msgspec.DecodeError:
            logger.warning("ignoring an undecodable checkpoint for %r in %s", worker,
                           self.checkpoint_topic)
            return
        self._cp[worker] = (cp.last_id, cp.updated_at)

    async def get_checkpoint(self, worker: str) -> int:
        await self._catch_up()
        return self._cp.get(worker, (0, 0.0))[0]

    async def _save_direct(self, worker: str, last_id: int) -> None:
        producer = self._ready()[0]
        now = time.time()
        try:
            await producer.send_and_wait(
                self.checkpoint_topic, _cp_encoder.encode(_Checkpoint(last_id, now)),
                key=worker.encode(), partition=0)
        except DRIVER_ERRORS as exc:
            raise self.settings.error(exc, f"save checkpoint of {worker!r}") from None
        self._cp[worker] = (last_id, now)

    async def checkpoints(self) -> dict[str, tuple[int, float]]:
        await self._catch_up()
        return dict(sorted(self._cp.items()))
