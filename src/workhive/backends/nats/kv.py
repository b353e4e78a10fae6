"""NATS as its own coordination store: cron claims, counters, keys and heartbeats in KV buckets.

Why KV and how: a KV bucket is a stream with one subject per key, and every write can carry the
revision it expects (``create`` = "only if absent", ``update(last=rev)`` = compare-and-set). Each
operation here is a read plus a conditional write, retried on conflict, so two processes never
both win a claim or both take the last token.

nats-server 2.9 has no per-key TTL (the ``Nats-TTL`` header is silently ignored there), so:

* where a lifetime is per bucket (idempotency keys: 24 h; cron ticks: 8 days; heartbeats: 1 h)
  the bucket's ``max_age`` does it;
* claims with their own ttl (``claim_key``) store ``expires`` in the value; an expired claim is
  treated as free and replaced with compare-and-set.

The paused queues (the dashboard's pause button) are one key, ``paused`` in the keys bucket,
holding the sorted list: a worker reads them with one get a second, and pausing or resuming
is a compare-and-set, so two dashboards changing different queues at once lose neither
change.

``processed``/``failed`` totals are counted in process and added to a per-queue counter key at
most once a second (and before ``stats`` reads them), not once per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from workhive.backend import WorkerInfo
from workhive.backends.nats.connection import NatsConnection
from workhive.backends.nats.naming import key, token
from workhive.errors import BackendError, ValidationError

_DAY = 86_400.0
_ATTEMPTS = 50  # compare-and-set retries before giving up (only under extreme contention)
_PAUSED = "paused"  # the key of the paused queues (claims are ``c.<base64>``: no clash)


class NatsCoordination:
    """Claims, counters, heartbeats and totals in the KV buckets of one
    :class:`~workhive.backends.nats.connection.NatsConnection`."""

    def __init__(self, conn: NatsConnection) -> None:
        self._conn = conn
        self._names = conn.names
        self._kv: dict[str, KeyValue] = {}
        self._totals: dict[str, list[int]] = {}  # queue -> [processed, failed] not yet added

    async def create_buckets(self) -> None:
        """Create (or open) the buckets; part of opening the backend."""
        n, s = self._names, self._conn.settings
        plan = [(n.keys, None), (n.idem, s.idempotency_ttl), (n.ticks, 8 * _DAY),
                (n.counters, None), (n.workers, 3600.0)]
        self._kv = {}
        for bucket, ttl in plan:
            config = KeyValueConfig(bucket=bucket, history=1, ttl=ttl, storage=StorageType.FILE,
                                    replicas=s.replicas)
            self._kv[bucket] = await self._conn.guard(self._conn.js.create_key_value(config))

    async def _cas(self, bucket: str, k: str,
                   change: Callable[[Any], tuple[Any, Any]]) -> Any:
        """Read ``k`` (None when absent), ``change(value) -> (new value or None, result)``,
        write it if it changed with compare-and-set; retry on conflict; return the result."""
        kv = self._kv[bucket]
        for _ in range(_ATTEMPTS):
            try:
                entry = await self._conn.guard(kv.get(k))
                current, revision = json.loads(entry.value or b"null"), entry.revision
            except KeyNotFoundError:
                current, revision = None, 0
            new, result = change(current)
            if new is None:
                return result
            data = json.dumps(new).encode()
            try:
                if revision:
                    await self._conn.guard(kv.update(k, data, last=revision))
                else:
                    await self._conn.guard(kv.create(k, data))
                return result
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)
        raise BackendError(f"compare-and-set on {bucket}/{k} kept conflicting")

    # -- SupportsCron / SupportsCounters ----------------------------------------------------

    async def claim_tick(self, job: str, tick: float) -> bool:
        k = f"{key('t', job)}.{round(tick * 1000)}"
        try:
            await self._conn.guard(self._kv[self._names.ticks].create(k, b"1"))
            return True
        except KeyWrongLastSequenceError:
            return False

    async def hit_window(self, name: str, period: float, limit: int) -> tuple[bool, float]:
        def change(value: Any) -> tuple[Any, Any]:
            now = time.time()
            window = int(now // period)
            count = value[1] if value and value[0] == window else 0
            if count >= limit:
                return None, (False, (window + 1) * period - now)
            return [window, count + 1], (True, 0.0)

        result: tuple[bool, float] = await self._cas(self._names.counters, key("w", name), change)
        return result

    async def take_token(self, name: str, rate: float, burst: int) -> tuple[bool, float]:
        def change(value: Any) -> tuple[Any, Any]:
            now = time.time()
            tokens, last = value if value else (float(burst), now)
            tokens = min(float(burst), tokens + max(0.0, now - last) * rate)
            if tokens >= 1.0:
                return [tokens - 1.0, now], (True, 0.0)
            return [tokens, now], (False, (1.0 - tokens) / rate)

        result: tuple[bool, float] = await self._cas(self._names.counters, key("b", name), change)
        return result

    # -- claims (unique keys, Coordination.claim_key) ----------------------------------------

    async def claim_key(self, name: str, holder: str, ttl: float | None) -> str:
        def change(value: Any) -> tuple[Any, Any]:
            now = time.time()
            if value and (value["x"] is None or value["x"] > now):
                return None, value["h"]
            return {"h": holder, "x": None if ttl is None else now + ttl}, holder

        owner: str = await self._cas(self._names.keys, key("c", name), change)
        return owner

    async def release_key(self, name: str, holder: str) -> None:
        kv, k = self._kv[self._names.keys], key("c", name)
        try:
            entry = await self._conn.guard(kv.get(k))
        except KeyNotFoundError:
            return
        value = json.loads(entry.value or b"null")
        if value and value["h"] == holder:
            with contextlib.suppress(KeyWrongLastSequenceError):  # someone else took it
                await self._conn.guard(kv.delete(k, last=entry.revision))

    async def claim_idempotency(self, name: str, holder: str) -> str:
        """Holder of an idempotency key; kept for the bucket's TTL (24 h by default)."""
        kv, k = self._kv[self._names.idem], key("i", name)
        for _ in range(_ATTEMPTS):
            try:
                await self._conn.guard(kv.create(k, holder.encode()))
                return holder
            except KeyWrongLastSequenceError:
                try:
                    return ((await self._conn.guard(kv.get(k))).value or b"").decode()
                except KeyNotFoundError:
                    continue  # expired between the two calls
        raise BackendError("idempotency key kept conflicting")

    # -- paused queues (SupportsPause) --------------------------------------------------------

    async def set_paused(self, queue: str, paused: bool) -> None:
        if not isinstance(queue, str) or not queue:
            raise ValidationError(f"a queue to pause or resume must be a non-empty string, "
                                  f"got {queue!r}")

        def change(value: Any) -> tuple[Any, Any]:
            now = set(value or ())
            new = now | {queue} if paused else now - {queue}
            return (sorted(new) if new != now else None), None

        await self._cas(self._names.keys, _PAUSED, change)

    async def paused_queues(self) -> set[str]:
        try:
            entry = await self._conn.guard(self._kv[self._names.keys].get(_PAUSED))
        except KeyNotFoundError:
            return set()
        return set(json.loads(entry.value or b"[]"))

    # -- heartbeats -------------------------------------------------------------------------

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        record = _worker_dict(info)
        record["expires"] = time.time() + ttl
        data = json.dumps(record).encode()
        await self._conn.guard(self._kv[self._names.workers].put(key("w", info.id), data))

    async def workers(self) -> list[WorkerInfo]:
        now, out = time.time(), []
        bucket = self._names.workers
        async for msg in self._conn.scan(f"KV_{bucket}", f"$KV.{bucket}.>",
                                         last_per_subject=True):
            if not msg.data:
                continue  # a delete marker
            record = json.loads(msg.data)
            if record.pop("expires", 0) > now:
                out.append(WorkerInfo(**record))
        return out

    async def forget_worker(self, worker_id: str) -> None:
        await self._conn.guard(self._kv[self._names.workers].purge(key("w", worker_id)))

    # -- totals -----------------------------------------------------------------------------

    def count(self, queue: str, processed: int, failed: int) -> None:
        """Add settled messages to the in-process totals (written by :meth:`flush_totals`)."""
        totals = self._totals.setdefault(queue, [0, 0])
        totals[0] += processed
        totals[1] += failed

    async def flush_totals(self) -> None:
        """Add the in-process totals to the counter keys; what fails to be written is kept
        for the next flush."""
        pending, self._totals = self._totals, {}
        try:
            for queue, (done, failed) in pending.items():
                def change(value: Any, d: int = done, f: int = failed) -> tuple[Any, Any]:
                    p0, f0 = value if value else (0, 0)
                    return [p0 + d, f0 + f], None

                await self._cas(self._names.counters, f"s.{token(queue)}", change)
                pending[queue] = [0, 0]
        finally:
            for queue, (done, failed) in pending.items():
                if done or failed:
                    self.count(queue, done, failed)

    async def read_totals(self) -> dict[str, tuple[int, int]]:
        """Queue token -> (processed, failed) as stored (flush first to include this process)."""
        bucket = self._names.counters
        out: dict[str, tuple[int, int]] = {}
        async for msg in self._conn.scan(f"KV_{bucket}", f"$KV.{bucket}.s.*",
                                         last_per_subject=True):
            if msg.data:
                done, failed = json.loads(msg.data)
                out[msg.subject.rsplit(".", 1)[1]] = (done, failed)
        return out


def _worker_dict(info: WorkerInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in ("id", "host", "pid", "queues", "concurrency",
                                          "started_at", "seen_at", "extra")}

