"""Delays on nats-server 2.12+: message schedules (ADR-51) inside the task stream.

Why: with schedules the *server* holds a delayed task and stores it on its task subject when it
is due, so delays need no running worker, no nak timers and no second stream, and a task never
sits in two streams at once (``stats`` reads one snapshot). Older servers keep the delay stream
and its forwarder (:mod:`.delay`); :meth:`~.base.NatsBase._create_streams` picks one at ``open``.

How it maps:

* ``P_TASKS`` gets ``allow_msg_schedules``, the extra subject ``P.s.>`` and a headers-only
  *republish* of ``P.q.>`` to ``P.w.>``. A task the server stores from a schedule never passes
  through core NATS, so an idle ``fetch`` waits on the republished copy instead (it also comes
  only after the task is stored, never before).
* A delayed publish goes to ``P.s.q.<queue>.<band>.<id>-<attempt>-<crc>`` (the server keeps
  one schedule per subject) with ``Nats-Schedule: @at <RFC 3339 UTC, microseconds, rounded
  up>`` and ``Nats-Schedule-Target: P.q.<queue>.<band>``. Its ``Nats-Msg-Id`` still drops a
  repeated publish; the server removes the schedule once it fired, and the stored task carries
  no message id (the server strips it).
* ``s_<queue>``: a durable consumer on ``P.s.q.<queue>.>`` that is never pulled; its
  ``num_pending`` is the queue's scheduled count, so ``stats`` never lists one subject per
  delayed task. It is made before a queue's first schedule, so a schedule is always counted.

Detection: nats-server 2.9 silently drops ``allow_msg_schedules`` and ignores the headers, so
the backend asks for schedules only when the server says it can (JetStream API level >= 2 and
version >= 2.12), then believes the stream config the server returns. Precision is the
server's clock: never early; its scheduler timer runs at most every 250 ms, so a task may start
up to about a quarter of a second late when schedules fall due close together.
"""

from __future__ import annotations

import datetime as dt
import math

from nats.aio.client import Client
from nats.js.api import Header, RePublish, RetentionPolicy, StorageType, StreamConfig

from workhive.backends.nats.naming import Names

MIN_VERSION = (2, 12)
MIN_API_LEVEL = 2
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def server_version(nc: Client) -> tuple[int, int, int] | None:
    """The connected server's version, None when it is not a semantic version."""
    version = nc.connected_server_version
    try:
        return version.major, version.minor, version.patch
    except ValueError:
        return None


def server_has_schedules(nc: Client, api_level: int) -> bool:
    """True when the connected server can hold message schedules (2.12+, API level 2+)."""
    version = server_version(nc)
    return version is not None and api_level >= MIN_API_LEVEL and version[:2] >= MIN_VERSION


def task_stream_config(names: Names, *, schedules: bool, replicas: int = 1) -> StreamConfig:
    """``P_TASKS``: work-queue retention on ``P.q.>``; with schedules also ``P.s.>``, the flag
    and the headers-only republish that wakes idle fetches. ``replicas``: servers holding it."""
    config = StreamConfig(name=names.tasks, subjects=[names.task_root + ">"],
                          retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
                          duplicate_window=120.0, num_replicas=replicas)
    if schedules:
        config.subjects = [names.task_root + ">", names.schedule_root + ">"]
        config.allow_msg_schedules = True
        config.republish = RePublish(src=names.task_root + ">", dest=names.wake_root + ">",
                                     headers_only=True)
    return config


def at(eta: float) -> str:
    """``eta`` (unix seconds) as the RFC 3339 UTC time the server fires at, rounded *up* to the
    microsecond so the task never starts before ``eta``."""
    micros = math.ceil(eta * 1_000_000)
    moment = _EPOCH + dt.timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def schedule_headers(eta: float, target: str) -> dict[str, str]:
    """The headers that turn a publish on ``P.s.…`` into "store this on ``target`` at ``eta``"."""
    return {Header.SCHEDULE.value: f"@at {at(eta)}", Header.SCHEDULE_TARGET.value: target}
