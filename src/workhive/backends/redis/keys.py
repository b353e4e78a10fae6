"""Key names of the ``redis`` backend, and which keys may share one script call.

Why a module of its own: on Redis Cluster a script may only touch keys of one hash slot, and
Redis only knows a script's keys if they are passed in ``KEYS``. So every key a script touches
is named here, in Python, and passed in; and every key of one queue carries the same hash tag
``{P:Q}`` (``P`` = prefix, ``Q`` = queue), so a queue lives in one slot and a whole batch of it
is still one atomic script call. Calls that span queues are split by slot
(:meth:`Layout.by_slot`); on one Redis every key counts as slot 0, so nothing is split and a
batch stays one call, as before.

Layout (``T`` = ``{P:Q}``, the tag of queue ``Q``; ``G`` = ``{P}``, the tag of prefix-wide keys)::

    T:body        hash  id -> envelope bytes (event copies share the event's id per queue)
    T:meta        hash  id -> "prio" or "prio|unique_key" (absent means priority 0)
    T:ready       list  ready ids of priority 0 (nearly every message), FIFO
    T:ranked      zset  ready ids of any other priority: "<seq, 14 hex digits>|id" -> -priority,
                        so the range order is highest priority first, then lowest sequence
                        (FIFO within a priority); fetch takes priorities above 0 from here,
                        then T:ready, then those below 0
    T:delayed     zset  id -> eta
    T:lease       zset  "<token>|id" -> lease deadline
    T:wake        list  at most one token; idle consumers BLPOP it instead of polling
    T:stats       hash  processed / failed totals
    T:seq         hash  t: lease tokens, b / f: sequences for the back / front of T:ranked
    T:dead        zset  id -> failed_at (this queue's dead letters, oldest first)
    T:dead:body   hash  dead id -> body
    T:dead:info   hash  dead id -> "failed_at|len(queue)|" + queue + reason
    D:uniq        hash  unique key -> id of the pending holder (deleted on ack / dead)
    D:idem:<key>  str   id, SET NX EX idempotency_ttl
    G:queues      set   every queue enqueued to or given a kept dead letter (stats, listings)
    G:bindings    hash  "pattern\\ngroup" -> 1;  G:bind:ver  int, bumped on every new binding
    P:workers     set   worker ids;  P:w:<id>  str, one heartbeat (expires by itself)
    P:claim:<key> str   a composite's key claim (SET NX PX)
    P:result:<id> str   a task's result / status record (SET PX ttl; see results.py)
    P:cancel:<id> str   a cancel request for a task that was not waiting (SET PX ttl)
    P:tick:<job>:<tick>      str   one cron tick claimed (SET NX EX)
    P:rl:fw:<period>:<key>   hash  fixed window: w (window number), c (hits)
    P:rl:b:<key>             hash  token bucket: t (tokens), ts (last refill)

``D`` is where idempotency and unique keys live: ``G`` on one Redis (they dedupe across every
queue, as on the other backends) and ``T`` on a cluster (they dedupe within a queue: a key and
the message it guards must be written in one atomic step, so they must share a slot). The
``P:`` keys have no tag: each is used alone, so any slot will do and they spread over nodes.

A queue name may hold any character. The tag runs from the first ``{`` to the first ``}``, so
a ``}`` in a queue name only shortens the tag; it stays the same for every key of that queue
and is never empty (the prefix, which has no braces, is in it). Suffixes never contain ``}``,
so no two queues can produce the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from redis.crc import key_slot

T = TypeVar("T")

#: keys per queue in a script's KEYS, in this order (see lua.py's _QUEUES)
BUNDLE = ("body", "meta", "ready", "ranked", "delayed", "lease", "wake", "stats", "seq", "uniq",
          "dead", "dead:body", "dead:info")


class Layout:
    """The key names of one prefix. ``cluster``: idempotency / unique keys go per queue."""

    def __init__(self, prefix: str, *, cluster: bool) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self.glob = "{" + prefix + "}"
        self.queues = f"{self.glob}:queues"
        self.bindings = f"{self.glob}:bindings"
        self.bind_ver = f"{self.glob}:bind:ver"
        self.workers = f"{prefix}:workers"
        self._bundles: dict[str, list[str]] = {}
        self._slots: dict[str, int] = {}

    # -- one queue -------------------------------------------------------------------

    def tag(self, queue: str) -> str:
        return "{" + self.prefix + ":" + queue + "}"

    def key(self, queue: str, suffix: str) -> str:
        return f"{self.tag(queue)}:{suffix}"

    def bundle(self, queue: str) -> list[str]:
        """The queue's keys in :data:`BUNDLE` order (cached: built once per queue)."""
        keys = self._bundles.get(queue)
        if keys is None:
            tag = self.tag(queue)
            keys = [f"{tag}:{s}" for s in BUNDLE]
            keys[BUNDLE.index("uniq")] = self.uniq(queue)
            if len(self._bundles) < 10_000:
                self._bundles[queue] = keys
        return keys

    def idem(self, queue: str, key: str) -> str:
        return f"{self.tag(queue) if self.cluster else self.glob}:idem:{key}"

    def uniq(self, queue: str) -> str:
        return f"{self.tag(queue) if self.cluster else self.glob}:uniq"

    # -- prefix-wide and single keys --------------------------------------------------

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:w:{worker_id}"

    def claim(self, key: str) -> str:
        return f"{self.prefix}:claim:{key}"

    def tick(self, job: str, tick: float) -> str:
        return f"{self.prefix}:tick:{job}:{tick!r}"

    def window(self, key: str, period: float) -> str:
        return f"{self.prefix}:rl:fw:{period!r}:{key}"

    def bucket(self, key: str) -> str:
        return f"{self.prefix}:rl:b:{key}"

    def patterns(self) -> list[str]:
        """SCAN patterns that match every key of this prefix (``[:}]`` is a glob class)."""
        return [f"{self.prefix}:*", "{" + self.prefix + "[:}]*"]

    #: the registry key of the layout before hash tags (``P:queues``); see :mod:`.migrate`
    @property
    def legacy_marker(self) -> str:
        return f"{self.prefix}:queues"

    # -- slots ------------------------------------------------------------------------

    def slot(self, key: str) -> int:
        """The key's cluster slot; 0 for every key on one Redis (nothing is ever split)."""
        if not self.cluster:
            return 0
        return key_slot(key.encode())

    def queue_slot(self, queue: str) -> int:
        slot = self._slots.get(queue)
        if slot is None:
            slot = self.slot(self.tag(queue))
            if len(self._slots) < 10_000:
                self._slots[queue] = slot
        return slot


def group(layout: Layout, items: Iterable[T], queue: Callable[[T], str]
          ) -> list[tuple[int, list[T]]]:
    """``items`` split by the slot of their queue, in order of first appearance."""
    out: dict[int, list[T]] = {}
    for item in items:
        slot = layout.queue_slot(queue(item))
        bucket = out.get(slot)
        if bucket is None:
            bucket = out[slot] = []
        bucket.append(item)
    return list(out.items())
