"""Move one prefix's data from the key layout before hash tags to the current one.

Why it exists: the layout of :mod:`workhive.backends.redis.keys` (every key of a queue under
one hash tag, so the backend runs on Redis Cluster) is not the one older versions wrote
(``P:q:<queue>:...``, one global dead-letter index). The backend refuses to start over old data
(:class:`~workhive.backends.redis.connection.LegacyLayout`) rather than ignore it; this tool
moves it.

Run it with every worker and producer of the prefix stopped (they would write the old layout
meanwhile)::

    python -m workhive.backends.redis.migrate redis://host:6379/0 --prefix myapp [--dry-run]

What moves: ready, delayed and leased messages (a lease keeps its deadline and comes back when
it runs out, as it would have), priorities and unique keys, totals, dead letters, idempotency
keys (with their remaining ttl), event bindings. Worker heartbeats, cron claims, key claims and
token buckets keep their names. Each step is one MULTI/EXEC that copies a piece and deletes it
from the old key, so a run that stops half-way can simply be run again. The old registry key
``P:queues`` goes last: while it exists the backend refuses to start. Old layouts only ever
ran on one Redis (or a Sentinel-watched master), so this tool does not take cluster URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from workhive.backends.redis.keys import Layout
from workhive.backends.redis.settings import RedisSettings
from workhive.errors import ConfigError

_OFFSET = 1 << 52  # as lua.py: ready sequences are OFFSET + n
_STEP = 500
_INT = re.compile(rb"^-?\d+$")


def _glob(text: str) -> str:
    """``text`` with Redis glob characters escaped, for SCAN MATCH."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class Migration:
    """The moves for one prefix on one client; :meth:`run` returns what it moved."""

    def __init__(self, client: Redis, prefix: str, *, dry_run: bool = False) -> None:
        self.r: Any = client  # redis-py's typing of replies is too loose to help here
        self.p = prefix
        self.new = Layout(prefix, cluster=False)
        self.dry_run = dry_run
        self.moved: dict[str, int] = {}

    def _count(self, what: str, n: int) -> None:
        self.moved[what] = self.moved.get(what, 0) + n

    async def run(self) -> dict[str, int]:
        old_registry = f"{self.p}:queues"
        queues = sorted(q.decode() for q in await self.r.smembers(old_registry))
        token = int(await self.r.get(f"{self.p}:seq") or 0)
        for q in queues:
            await self._queue(q, token)
        await self._dead_letters()
        await self._prefix_wide()
        if not self.dry_run:
            async with self.r.pipeline(transaction=True) as tx:
                if queues:
                    tx.sadd(self.new.queues, *queues)
                tx.delete(old_registry, f"{self.p}:seq")
                await tx.execute()
        self._count("queues", len(queues))
        return self.moved

    async def _queue(self, q: str, token: int) -> None:
        old = f"{self.p}:q:{q}"
        new = self.new
        await self._hash(f"{old}:body", new.key(q, "body"), "messages")
        await self._hash(f"{old}:meta", new.key(q, "meta"), None)
        await self._hash(f"{old}:stats", new.key(q, "stats"), None)
        await self._zset(f"{old}:delayed", new.key(q, "delayed"), "delayed")
        await self._zset(f"{old}:lease", new.key(q, "lease"), "leased")
        for key in await self._ready_lists(q):
            await self._ready(key, q)
        if not self.dry_run:
            seq = new.key(q, "seq")
            held = int(await self.r.hget(seq, "t") or 0)  # tokens must not repeat old ones
            async with self.r.pipeline(transaction=True) as tx:
                tx.hset(seq, "t", max(held, token))
                tx.delete(f"{old}:prios", f"{old}:wake", f"{old}:dead")
                await tx.execute()

    async def _ready_lists(self, q: str) -> list[bytes]:
        old = f"{self.p}:q:{q}:r:"
        found = {old.encode() + p for p in await self.r.zrange(f"{self.p}:q:{q}:prios", 0, -1)}
        async for key in self.r.scan_iter(match=_glob(old) + "*", count=1000):
            found.add(key)
        return sorted(k for k in found if _INT.match(k[len(old.encode()):]))

    async def _ready(self, key: bytes, q: str) -> None:
        """One old priority list into T:ready (priority 0) or T:ranked, FIFO kept, a chunk
        per transaction."""
        prio = int(key.rsplit(b":", 1)[1])
        if self.dry_run:
            self._count("ready", await self.r.llen(key))
            return
        ready, ranked = self.new.key(q, "ready"), self.new.key(q, "ranked")
        seq = self.new.key(q, "seq")
        while ids := await self.r.lrange(key, 0, _STEP - 1):
            self._count("ready", len(ids))
            last = int(await self.r.hget(seq, "b") or 0)
            async with self.r.pipeline(transaction=True) as tx:
                if prio == 0:
                    tx.rpush(ready, *ids)
                else:
                    tx.zadd(ranked, {b"%014x|%s" % (_OFFSET + last + n, i): -prio
                                     for n, i in enumerate(ids, 1)})
                    tx.hset(seq, "b", last + len(ids))
                tx.ltrim(key, len(ids), -1)
                await tx.execute()

    async def _hash(self, old: str, new: str, what: str | None) -> None:
        cursor = 0
        while True:
            cursor, chunk = await self.r.hscan(old, cursor, count=_STEP)
            if chunk:
                if what:
                    self._count(what, len(chunk))
                if not self.dry_run:
                    async with self.r.pipeline(transaction=True) as tx:
                        tx.hset(new, mapping=chunk)
                        tx.hdel(old, *chunk)
                        await tx.execute()
            if cursor == 0:
                return

    async def _zset(self, old: str, new: str, what: str) -> None:
        if self.dry_run:
            self._count(what, await self.r.zcard(old))
            return
        while chunk := await self.r.zrange(old, 0, _STEP - 1, withscores=True):
            self._count(what, len(chunk))
            async with self.r.pipeline(transaction=True) as tx:
                tx.zadd(new, dict(chunk))
                tx.zrem(old, *(m for m, _ in chunk))
                await tx.execute()

    async def _dead_letters(self) -> None:
        """Every letter of the global hashes into its queue's (the queue is in its info)."""
        body_key, info_key = f"{self.p}:dead:body", f"{self.p}:dead:info"
        cursor = 0
        while True:
            cursor, infos = await self.r.hscan(info_key, cursor, count=_STEP)
            for dead_id, info in infos.items():
                try:
                    failed_at, qlen, rest = info.split(b"|", 2)
                    queue = rest[: int(qlen)].decode()
                    at = float(failed_at)
                except ValueError:
                    continue  # corrupt: left in the old hash, not guessed at
                body = await self.r.hget(body_key, dead_id)
                self._count("dead letters", 1)
                if self.dry_run:
                    continue
                async with self.r.pipeline(transaction=True) as tx:
                    if body is not None:
                        tx.hset(self.new.key(queue, "dead:body"), dead_id, body)
                        tx.hset(self.new.key(queue, "dead:info"), dead_id, info)
                        tx.zadd(self.new.key(queue, "dead"), {dead_id: at})
                        tx.sadd(self.new.queues, queue)
                    tx.hdel(body_key, dead_id)
                    tx.hdel(info_key, dead_id)
                    tx.zrem(f"{self.p}:dead:idx", dead_id)
                    await tx.execute()
            if cursor == 0:
                break
        if not self.dry_run and not await self.r.hlen(info_key):
            await self.r.delete(body_key, f"{self.p}:dead:idx")

    async def _prefix_wide(self) -> None:
        p = _glob(self.p)
        idem, uniq = f"{self.p}:idem:".encode(), f"{self.p}:uniq:".encode()
        async for key in self.r.scan_iter(match=f"{p}:idem:*", count=1000):
            self._count("idempotency keys", 1)
            if not self.dry_run:  # RENAME keeps the remaining ttl
                await self.r.rename(key, self.new.idem("", "").encode() + key[len(idem):])
        async for key in self.r.scan_iter(match=f"{p}:uniq:*", count=1000):
            holder = await self.r.get(key)
            self._count("unique keys", 1)
            if self.dry_run or holder is None:
                continue
            async with self.r.pipeline(transaction=True) as tx:
                tx.hset(self.new.uniq(""), key[len(uniq):], holder)
                tx.delete(key)
                await tx.execute()
        await self._hash(f"{self.p}:bindings", self.new.bindings, "bindings")
        if not self.dry_run:
            old_ver = int(await self.r.get(f"{self.p}:bind:ver") or 0)
            new_ver = int(await self.r.get(self.new.bind_ver) or 0)
            async with self.r.pipeline(transaction=True) as tx:  # above both: caches reload
                tx.set(self.new.bind_ver, max(old_ver, new_ver) + 1)
                tx.delete(f"{self.p}:bind:ver")
                await tx.execute()


async def migrate(url: str, prefix: str | None = None, *, dry_run: bool = False,
                  **options: Any) -> dict[str, int]:
    """Migrate ``prefix`` (default: the URL's or ``workhive``) at ``url``; returns counts."""
    settings = RedisSettings.from_url(url, **({"prefix": prefix} if prefix else {}), **options)
    if settings.mode == "cluster":
        raise ConfigError("the old key layout never ran on Redis Cluster: nothing to migrate")
    client, sentinel = settings.client()
    try:
        assert isinstance(client, Redis)
        return await Migration(client, settings.prefix, dry_run=dry_run).run()
    finally:
        await client.aclose()
        if sentinel is not None:
            for server in sentinel.sentinels:
                await server.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workhive.backends.redis.migrate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="redis://, rediss://, unix:// or redis+sentinel:// URL")
    parser.add_argument("--prefix", help="the key prefix (default: the URL's, else workhive)")
    parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
    args = parser.parse_args(argv)
    try:
        moved = asyncio.run(migrate(args.url, args.prefix, dry_run=args.dry_run))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb}: " + (", ".join(f"{n} {what}" for what, n in moved.items()) or "nothing"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
