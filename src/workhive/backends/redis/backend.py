"""The durable ``redis`` backend: queues, delays, priorities, leases, DLQ, events, cron, limits.

Why it looks like this: Redis is the broker most of our users already run in production, and the
throughput target (20k no-op tasks/s from one worker process) leaves no room for a round trip
per message. So every state change is one Lua script per *batch* (see
:mod:`workhive.backends.redis.lua`; key names in :mod:`workhive.backends.redis.keys`):
``fetch`` promotes due and expired messages, pops by priority, leases and returns bodies in one
call; ``settle`` applies a whole batch of ack/retry/dead/release in one call; ``enqueue``
stores a batch in one call.

Contracts (shared with :mod:`workhive.backends.memory`):

* Delivery is at-least-once. A lease carries a per-fetch token, so a settle or extend from a
  worker whose lease ran out is a silent no-op; the message belongs to whoever re-fetched it.
* ``fetch(wait=...)`` does not poll: after an empty fetch it blocks in ``BLPOP`` on the queues'
  wake lists (producers push a token), for at most the time to the nearest delayed message or
  lease deadline, and never more than 5 s, so lease expiries are noticed without a token.
* Events are durable: :meth:`RedisBackend.bind` stores the binding in Redis and
  :meth:`RedisBackend.publish` writes one copy per bound group into ``event_queue(group)``, so
  subscribers get the queue machinery (retry, lease, DLQ) for free.

On Redis Cluster each queue lives in one hash slot, so a call is split by slot (on one Redis
there is one "slot" and nothing changes): enqueue and publish write each slot's part in one
script (concurrently); fetch asks slot after slot in the order of its queues; settle and extend
apply each slot's part. A master that is down fails only its own slots: fetch skips them for a
while (``_Outages``) and serves the others; settle keeps their part and applies it on a later
call (``_deferred``), so the worker's other queues keep flowing; only when nothing could be
reached does a call raise :class:`~workhive.errors.BackendUnavailable`.

This module holds that transport. The other capabilities are parts of their own, each built on
the one :class:`~workhive.backends.redis.connection.RedisConnection` (client, script calls,
error translation) and readable alone: dead letters (:mod:`~workhive.backends.redis.dead`),
statistics and workers (:mod:`~workhive.backends.redis.inspection`), claims, cron and limits
(:mod:`~workhive.backends.redis.coordination`), results and cancel
(:mod:`~workhive.backends.redis.results`), history and pauses
(:mod:`~workhive.backends.redis.history`) and the task browser
(:mod:`~workhive.backends.redis.browse`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from workhive._envelope import Envelope, encode
from workhive.backend import (
    Capability,
    DeadLetter,
    Delivery,
    EnqueueResult,
    Features,
    QueueStats,
    Settlement,
    WorkerInfo,
    fan_out,
    topic_matches,
)
from workhive.backends.redis import lua
from workhive.backends.redis.browse import RedisBrowse
from workhive.backends.redis.connection import RedisConnection, Script
from workhive.backends.redis.coordination import RedisCoordination
from workhive.backends.redis.dead import RedisDeadLetters
from workhive.backends.redis.history import RedisHistory
from workhive.backends.redis.inspection import RedisInspection
from workhive.backends.redis.keys import group
from workhive.backends.redis.results import RedisResults
from workhive.backends.redis.settings import RedisSettings
from workhive.browse import QueuedTask, TaskState
from workhive.errors import BackendError, BackendUnavailable
from workhive.history import Bucket

__all__ = ["RedisBackend", "RedisSettings"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_ENQUEUE = Script(lua.ENQUEUE)
_FETCH = Script(lua.FETCH)
_SETTLE = Script(lua.SETTLE)
_EXTEND = Script(lua.EXTEND)
_BIND = Script(lua.BIND)
_BINDINGS = Script(lua.BINDINGS)
_BIND_VERSION = Script(lua.BIND_VERSION)

_CHUNK = 1000  # messages per script call: bounds how long one call blocks Redis
_MAX_BLOCK = 5.0  # longest single BLPOP; re-checks leases of crashed workers at least this often
_BLPOP_SLACK = 0.1  # Redis checks blocked-call timeouts every 1/hz s (hz=10 by default)
_ACTION_CODES = {"ack": "a", "retry": "r", "dead": "d", "release": "l"}
_MAX_DEFERRED = 100_000  # settlements kept for unreachable cluster nodes before giving up


class _Outages:
    """Cluster slots whose node just failed, skipped by fetch until a backoff (0.5 s doubling
    to 5 s) runs out, so a dead master costs the other queues nothing."""

    def __init__(self) -> None:
        self._down: dict[int, tuple[float, float]] = {}  # slot -> (retry at, backoff)

    def resting(self, slot: int) -> bool:
        entry = self._down.get(slot)
        return entry is not None and entry[0] > time.monotonic()

    def next_retry(self) -> float | None:
        """Seconds until the first resting slot may be tried again (None: none is down)."""
        if not self._down:
            return None
        return max(0.0, min(at for at, _ in self._down.values()) - time.monotonic())

    def failed(self, slot: int, queues: Sequence[str], exc: BaseException) -> None:
        entry = self._down.get(slot)
        backoff = 0.5 if entry is None else min(entry[1] * 2, 5.0)
        if entry is None:
            logger.warning("redis: the node of queue(s) %s is unreachable (%s); serving the "
                           "other queues and retrying it", ", ".join(queues[:5]), exc)
        self._down[slot] = (time.monotonic() + backoff, backoff)

    def recovered(self, slot: int, queues: Sequence[str]) -> bool:
        """Forget a slot's outage; True if it was down."""
        if self._down.pop(slot, None) is None:
            return False
        logger.warning("redis: the node of queue(s) %s answers again", ", ".join(queues[:5]))
        return True

    def split(self, parts: list[tuple[int, T]]) -> tuple[list[tuple[int, T]], list[tuple[int, T]]]:
        """``parts`` to try now and parts of resting slots (all tried when all are resting)."""
        tried = [p for p in parts if not self.resting(p[0])]
        if not tried:
            return parts, []
        return tried, [p for p in parts if self.resting(p[0])]


class RedisBackend:
    """Durable backend on one Redis, a Redis Cluster or a Sentinel-watched master; every
    capability of :mod:`workhive.backend`.

    Build it with :meth:`from_url` (``redis://``, ``rediss://``, ``unix://``,
    ``redis+cluster://``, ``redis+sentinel://``). One instance may be shared by many
    coroutines; it holds a redis-py connection pool.

    The message transport (enqueue, fetch, settle, extend, events) is here; every other
    capability is a part built on the same :class:`RedisConnection`, and the methods of the
    "parts" section hand the call to it. ``clock`` replaces the Redis clock in scripts (tests
    only, see :class:`RedisConnection`).
    """

    name = "redis"
    features = Features(frozenset(Capability), lease="timed", results=True, cancel=True)

    def __init__(
        self, settings: RedisSettings, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.settings = settings
        conn = self._conn = RedisConnection(settings, clock=clock)
        self._keys, self._run, self._guard = conn.keys, conn.run, conn.guard  # the transport's
        self._redis = conn.client  # the raw client, for white-box tests and benchmarks
        self._dead = RedisDeadLetters(conn)
        self._inspection = RedisInspection(conn)
        self._coordination = RedisCoordination(conn)
        self._results = RedisResults(conn)
        self._history = RedisHistory(conn)
        self._browse = RedisBrowse(conn)
        self._idem_ttl = str(int(settings.idempotency_ttl))
        self._max_block = min(_MAX_BLOCK, settings.socket_timeout * 0.8)
        self._bindings: tuple[str, list[tuple[str, str]]] | None = None
        self._outages = _Outages()
        self._deferred: list[Settlement] = []

    @classmethod
    def from_url(
        cls, url: str, *, clock: Callable[[], float] | None = None, **options: Any
    ) -> RedisBackend:
        """``redis://[:password@]host:port/db?prefix=app`` plus options (see RedisSettings)."""
        return cls(RedisSettings.from_url(url, **options), clock=clock)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.settings.redacted_url!r}, "
                f"prefix={self.settings.prefix!r})")

    async def open(self) -> None:
        """Connect and check the server answers; idempotent (see :meth:`RedisConnection.open`)."""
        await self._conn.open()

    async def close(self) -> None:
        """Apply settlements still kept for an unreachable node (once), then close the pool."""
        if self._deferred:
            kept, self._deferred = self._deferred, []
            try:
                await self.settle(kept)
                left = len(self._deferred)
            except BackendError:
                left = len(kept)
            self._deferred = []
            if left:
                logger.error("redis: %d settlement(s) could not reach their node; those "
                             "messages run again after their lease", left)
        await self._conn.close()

    async def wipe(self) -> None:
        """Delete every key under this backend's prefix (tests, ``workhive`` resets); works on
        a closed backend too."""
        await self._conn.wipe()

    # -- core ----------------------------------------------------------------------------

    async def enqueue(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store envelopes; one script call per 1000 (per slot). Duplicates return the
        holder's id."""
        results: list[EnqueueResult] = []
        for start in range(0, len(envelopes), _CHUNK):
            results += await self._store_all(envelopes[start : start + _CHUNK], scope=False)
        return results

    async def _store_all(
        self, envelopes: Sequence[Envelope], *, scope: bool
    ) -> list[EnqueueResult]:
        """Store envelopes of any queues: one script per slot, run concurrently.

        A slot that fails raises after the others finished (they stay stored: a retry of the
        whole call can duplicate them, as any retry of a failed enqueue can).
        """
        if not self._keys.cluster:
            return await self._store(envelopes, 0, None, scope=scope)
        parts = group(self._keys, range(len(envelopes)), lambda i: envelopes[i].queue)
        if len(parts) == 1:
            return await self._store(envelopes, parts[0][0], None, scope=scope)
        done = await asyncio.gather(
            *(self._store([envelopes[i] for i in idx], slot, None, scope=scope)
              for slot, idx in parts),
            return_exceptions=True)
        results: list[EnqueueResult | None] = [None] * len(envelopes)
        for (_, idx), part in zip(parts, done, strict=True):
            if isinstance(part, BaseException):
                raise part
            for i, result in zip(idx, part, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    async def _store(
        self, envelopes: Sequence[Envelope], slot: int, version: str | None, *, scope: bool
    ) -> list[EnqueueResult]:
        """Run the enqueue script for envelopes of one slot; with ``version`` it raises
        _StaleBindings if the bindings moved.

        ``scope`` qualifies idempotency / unique keys with the queue (event copies).
        """
        queues = list(dict.fromkeys(env.queue for env in envelopes))
        index = {q: i for i, q in enumerate(queues, 1)}
        keys, args = self._conn.queue_call(queues)
        vk = rk = 0
        if version is not None:
            keys.append(self._keys.bind_ver)
            vk = len(keys)
        registry = self._keys.queues
        inline = self._keys.slot(registry) == slot
        if inline:
            keys.append(registry)
            rk = len(keys)
        args += (self._idem_ttl, version or "", vk, rk)
        for env in envelopes:
            idem = env.idempotency_key or ""
            uniq = env.unique_key or ""
            if scope:  # event copies: each subscriber group dedupes its own copy
                idem = idem and f"{idem}\x00{env.queue}"
                uniq = uniq and f"{uniq}\x00{env.queue}"
            ik = 0
            if idem:
                keys.append(self._keys.idem(env.queue, idem))
                ik = len(keys)
            args += (
                index[env.queue],
                env.id,
                str(env.priority),
                "" if env.eta is None else repr(env.eta),
                ik,
                uniq,
                encode(env),
            )
        if inline or not queues:
            raw = await self._run(_ENQUEUE, keys, args)
        else:  # the registry lives on another node: best effort, beside the write
            raw, _ = await asyncio.gather(self._run(_ENQUEUE, keys, args),
                                          self._register_softly(queues))
        if raw is None:
            raise _StaleBindings
        return [
            EnqueueResult(env.id) if not held
            else EnqueueResult(held[1:].decode(errors="replace"), duplicate=True)
            for env, held in zip(envelopes, raw, strict=True)
        ]

    async def _register_softly(self, queues: Sequence[str]) -> None:
        """Add queues to the registry (``stats``, dead-letter listings) when it lives on
        another cluster node. Not fatal: the next enqueue registers them again."""
        try:
            await self._conn.register(queues)
        except BackendError as exc:
            logger.warning("redis: could not register queue(s) %s for stats (%s); the next "
                           "enqueue retries", ", ".join(queues[:5]), exc)

    async def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages, queues in the given order, priority first within each.

        Waits at most ``wait`` seconds, blocked in Redis (``BLPOP`` on wake lists) rather than
        polling; the receipt of each delivery is its lease member ``b"<token>|<id>"``.
        """
        if not queues or limit <= 0:
            return []
        lease_s = repr(float(lease))
        parts = (group(self._keys, queues, str) if self._keys.cluster
                 else [(0, list(queues))])
        deadline: float | None = None
        while True:
            out: list[Delivery] = []
            live: list[list[str]] = []
            nearest: float | None = None
            error: BackendUnavailable | None = None
            for slot, qs in parts:
                if len(out) >= limit:
                    break
                if len(parts) > 1 and self._outages.resting(slot):
                    continue
                keys, args = self._conn.queue_call(qs)
                args += (lease_s, limit - len(out))
                try:
                    raw = await self._run(_FETCH, keys, args)
                except BackendUnavailable as exc:
                    if len(parts) == 1:
                        raise
                    self._outages.failed(slot, qs, exc)
                    error = exc
                    continue
                if len(parts) > 1 and self._outages.recovered(slot, qs) and self._deferred:
                    await self._flush_deferred()
                live.append(qs)
                if raw[-1]:
                    _log_notes(raw[-1])
                for q, arr in zip(qs, raw[1:-1], strict=True):
                    if arr:
                        out += [
                            Delivery(q, body, member)
                            for member, body in zip(arr[0::2], arr[1::2], strict=True)
                        ]
                if raw[0]:
                    ahead = float(raw[0])
                    nearest = ahead if nearest is None else min(nearest, ahead)
            if out or wait <= 0:
                if not out and not live:
                    raise error or self._all_resting()
                return out
            if not live:
                raise error or self._all_resting()
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait
            pause = deadline - now
            if pause <= 0:
                return out
            retry = self._outages.next_retry() if len(parts) > 1 else None
            if retry is not None:
                pause = min(pause, max(retry, 0.05))
            due = nearest + 0.001 if nearest is not None else None
            await self._wait_for_wake(live, pause if due is None else min(pause, due),
                                      precise=due is not None and due <= pause)

    async def _flush_deferred(self) -> None:
        """Apply settlements kept while their node was down, now that it answers."""
        try:
            await self.settle([])
        except BackendError as exc:
            logger.warning("redis: kept settlements still cannot be applied (%s)", exc)

    def _all_resting(self) -> BackendUnavailable:
        return BackendUnavailable(f"redis at {self.settings.redacted_url} is unavailable: "
                                  "the nodes of every queue asked for failed just now")

    async def _wait_for_wake(
        self, groups: Sequence[Sequence[str]], pause: float, *, precise: bool
    ) -> None:
        """Block until a producer pushes a wake token on one of the queues or ``pause`` ends.

        Redis expires blocked calls on its ``hz`` tick (100 ms by default), so a BLPOP may
        return up to 100 ms late. That is harmless when the pause only bounds ``wait``; when
        it ends at a delayed message's eta (``precise``) the BLPOP stops 100 ms short and the
        rest is slept, so delays stay accurate to a few milliseconds. Queues of several cluster
        slots block concurrently, one BLPOP per slot; the first to wake ends the wait.
        """
        pause = min(pause, self._max_block)
        if precise:
            if pause <= _BLPOP_SLACK + 0.01:
                await asyncio.sleep(pause)
                return
            pause -= _BLPOP_SLACK
        waits = [[self._keys.key(q, "wake") for q in qs] for qs in groups]
        if len(waits) == 1:
            await self._guard(lambda r: r.blpop(waits[0], timeout=pause))
            return
        pending = {asyncio.ensure_future(self._block(k, pause)) for k in waits}
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return
                    error = task.exception()
            if error is not None:
                raise error
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _block(self, keys: list[str], pause: float) -> Any:
        return await self._guard(lambda r: r.blpop(keys, timeout=pause))

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply a batch of outcomes in one script call per 1000 (per slot); stale leases are
        skipped.

        Acks are grouped per queue and cost one script argument each (packing arguments is
        the largest per-message cost on the Python side). On a cluster, the part for a node
        that cannot be reached is kept and applied on a later call while the rest goes through
        (its leases protect those messages meanwhile); only when nothing went through does
        this raise, so the caller keeps and retries its batch.
        """
        if not self._keys.cluster:
            for start in range(0, len(settlements), _CHUNK):
                await self._settle_slot(settlements[start : start + _CHUNK])
            return
        kept, self._deferred = self._deferred, []
        todo = [*kept, *settlements]
        tried, resting = self._outages.split(group(self._keys, todo, lambda s: s.delivery.queue))
        done = await asyncio.gather(*(self._settle_slot(items) for _, items in tried),
                                    return_exceptions=True)
        failed = [s for _, items in resting for s in items]
        error: BaseException | None = None
        went_through = False
        for (slot, items), result in zip(tried, done, strict=True):
            if not isinstance(result, BaseException):
                went_through = True
                continue
            failed += items
            error = error or result
            if isinstance(result, BackendUnavailable):
                self._outages.failed(slot, list(dict.fromkeys(s.delivery.queue for s in items)),
                                     result)
        if error is not None and (not went_through
                                  or not isinstance(error, BackendUnavailable)):
            mine = {id(s) for s in kept}
            self._deferred = [s for s in failed if id(s) in mine]
            raise error
        if len(failed) > _MAX_DEFERRED:
            logger.error("redis: dropping %d kept settlement(s) of unreachable nodes; those "
                         "messages run again after their lease", len(failed) - _MAX_DEFERRED)
            failed = failed[-_MAX_DEFERRED:]
        self._deferred = failed

    async def _settle_slot(self, settlements: Sequence[Settlement]) -> None:
        for start in range(0, len(settlements), _CHUNK):
            acks: dict[str, list[Any]] = {}
            others: list[Settlement] = []
            for s in settlements[start : start + _CHUNK]:
                if s.action == "ack":
                    members = acks.get(s.delivery.queue)
                    if members is None:
                        members = acks[s.delivery.queue] = []
                    members.append(s.delivery.receipt)
                else:
                    others.append(s)
            queues = list(acks)
            for s in others:
                if s.delivery.queue not in acks:
                    acks[s.delivery.queue] = []
                    queues.append(s.delivery.queue)
            index = {q: i for i, q in enumerate(queues, 1)}
            keys, args = self._conn.queue_call(queues)
            for s in others:
                d = s.delivery
                action = s.action
                if action == "retry":
                    args += ("r", index[d.queue], 1, d.receipt, s.body or b"",
                             repr(float(s.eta)))
                elif action == "dead":
                    args += ("d", index[d.queue], 1, d.receipt, s.body or b"", s.reason)
                else:
                    args += (_ACTION_CODES[action], index[d.queue], 1, d.receipt)
            for queue, members in acks.items():
                if members:
                    args += ("a", index[queue], len(members), *members)
            await self._run(_SETTLE, keys, args)

    async def extend(self, deliveries: Sequence[Delivery], lease: float) -> None:
        """Move still-held leases ``lease`` seconds past now; lost leases stay lost. On a
        cluster an unreachable node's part is skipped (logged) while others go through."""
        if not self._keys.cluster:
            await self._extend_slot(deliveries, lease)
            return
        tried, _ = self._outages.split(group(self._keys, deliveries, lambda d: d.queue))
        done = await asyncio.gather(*(self._extend_slot(items, lease) for _, items in tried),
                                    return_exceptions=True)
        errors = [r for r in done if isinstance(r, BaseException)]
        if errors and (len(errors) == len(tried)
                       or not all(isinstance(e, BackendUnavailable) for e in errors)):
            raise errors[0]
        if errors:
            logger.warning("redis: could not extend leases on an unreachable node (%s)",
                           errors[0])

    async def _extend_slot(self, deliveries: Sequence[Delivery], lease: float) -> None:
        for start in range(0, len(deliveries), _CHUNK):
            chunk = deliveries[start : start + _CHUNK]
            queues = list(dict.fromkeys(d.queue for d in chunk))
            index = {q: i for i, q in enumerate(queues, 1)}
            keys, args = self._conn.queue_call(queues)
            args.append(repr(float(lease)))
            for d in chunk:
                args += (index[d.queue], d.receipt)
            await self._run(_EXTEND, keys, args)

    # -- events ----------------------------------------------------------------------------

    async def bind(self, pattern: str, group: str) -> None:
        """Persist that ``group`` receives events matching ``pattern`` (glob, see topic_matches)."""
        await self._run(_BIND, [self._keys.bindings, self._keys.bind_ver],
                        [self._conn.now(), pattern, group])
        self._bindings = None

    async def _load_bindings(self) -> tuple[str, list[tuple[str, str]]]:
        raw = await self._run(_BINDINGS, [self._keys.bindings, self._keys.bind_ver],
                              [self._conn.now()])
        pairs: list[tuple[str, str]] = []
        for field in raw[1:]:
            try:
                pattern, sep, group_ = field.decode().partition("\n")
            except UnicodeDecodeError:
                sep = ""
            if sep and pattern and group_:
                pairs.append((pattern, group_))
            else:  # written by hand or a bug: skip it rather than fail every publish
                logger.error("redis: ignoring a corrupt event binding %r under %s",
                             field[:100], self._keys.bindings)
        self._bindings = (raw[0].decode(errors="replace"), pairs)
        return self._bindings

    async def publish(self, envelope: Envelope) -> int:
        """Store one copy per bound group; returns the number of copies.

        Bindings are cached with their version. On one Redis the write itself refuses a
        version that moved (the publish retries with fresh bindings), so a group bound before
        this call can never miss the event, and all copies are written atomically. On a
        cluster the version is checked first, then each slot's copies are written.
        """
        while True:
            version, bindings = self._bindings or await self._load_bindings()
            groups = [g for p, g in bindings if topic_matches(p, envelope.name)]
            copies = fan_out(envelope, groups)
            if not self._keys.cluster:
                try:
                    await self._store(copies, 0, version, scope=True)
                except _StaleBindings:
                    self._bindings = None
                    continue
                return len(copies)
            current = await self._run(_BIND_VERSION, [self._keys.bind_ver], [self._conn.now()])
            if current.decode(errors="replace") != version:
                self._bindings = None
                continue
            await self._store_all(copies, scope=True)
            return len(copies)

    # -- parts: each method hands the call to the part that owns the concept ---------------

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        return await self._dead.dead_letters(queue, limit, offset)

    async def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        return await self._dead.replay_dead(ids, queue)

    async def purge_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        return await self._dead.purge_dead(ids, queue)

    async def keep_dead(self, letters: Sequence[DeadLetter]) -> None:
        await self._dead.keep_dead(letters)

    async def stats(self) -> list[QueueStats]:
        return await self._inspection.stats()

    async def heartbeat(self, info: WorkerInfo, ttl: float) -> None:
        await self._inspection.heartbeat(info, ttl)

    async def workers(self) -> list[WorkerInfo]:
        return await self._inspection.workers()

    async def forget_worker(self, worker_id: str) -> None:
        await self._inspection.forget_worker(worker_id)

    async def claim_key(self, key: str, holder: str, ttl: float | None) -> str:
        return await self._coordination.claim_key(key, holder, ttl)

    async def release_key(self, key: str, holder: str) -> None:
        await self._coordination.release_key(key, holder)

    async def claim_tick(self, job: str, tick: float) -> bool:
        return await self._coordination.claim_tick(job, tick)

    async def hit_window(self, key: str, period: float, limit: int) -> tuple[bool, float]:
        return await self._coordination.hit_window(key, period, limit)

    async def take_token(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        return await self._coordination.take_token(key, rate, burst)

    async def store_result(self, task_id: str, record: bytes, ttl: float) -> None:
        await self._results.store_result(task_id, record, ttl)

    async def get_result(self, task_id: str) -> bytes | None:
        return await self._results.get_result(task_id)

    async def cancel(self, task_id: str, ttl: float) -> bool:
        return await self._results.cancel(task_id, ttl)

    async def cancelled(self, task_ids: Sequence[str]) -> set[str]:
        return await self._results.cancelled(task_ids)

    async def record_history(self, buckets: Sequence[Bucket]) -> None:
        await self._history.record_history(buckets)

    async def history(self, since: float) -> list[Bucket]:
        return await self._history.history(since)

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._history.set_paused(queue, paused)

    async def paused_queues(self) -> set[str]:
        return await self._history.paused_queues()

    async def browse(self, queue: str, state: TaskState, limit: int,
                     offset: int) -> tuple[list[QueuedTask], int]:
        return await self._browse.browse(queue, state, limit, offset)

    async def find_task(self, queue: str, task_id: str) -> QueuedTask | None:
        return await self._browse.find_task(queue, task_id)

    async def run_now(self, queue: str, task_id: str) -> bool:
        return await self._browse.run_now(queue, task_id)

def _log_notes(notes: Sequence[bytes]) -> None:
    """Log what a fetch script buried or dropped (see :mod:`workhive.backends.redis.lua`).

    A note is ``what|len(queue)|queue|len(id)|id`` + reason, lengths in bytes, so queue names
    and ids may contain ``|``.
    """
    for note in notes:
        try:
            what, qlen, rest = note.split(b"|", 2)
            queue, rest = rest[: int(qlen)], rest[int(qlen) + 1 :]
            ilen, rest = rest.split(b"|", 1)
            mid, reason = rest[: int(ilen)], rest[int(ilen) :]
        except ValueError:
            logger.error("redis: fetch removed a corrupt entry: %r", note[:200])
            continue
        if what == b"dead":
            logger.error("redis: message %r of queue %r was corrupt in the store and went to "
                         "the dead-letter queue: %s", mid[:100].decode(errors="replace"),
                         queue.decode(errors="replace"), reason.decode(errors="replace"))
        else:
            logger.error("redis: dropped a corrupt entry %r of queue %r (no message to keep): "
                         "%s", mid[:100].decode(errors="replace"),
                         queue.decode(errors="replace"), reason.decode(errors="replace"))


class _StaleBindings(Exception):
    """Internal: a publish raced a ``bind``; reload bindings and try again."""
