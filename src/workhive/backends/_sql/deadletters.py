"""The dead-letter table: list, keep (a composite's transport's letters), replay, purge.

Replay re-enqueues a letter as a fresh envelope (new id, attempt 0) through the dialect's own
insert, in the transaction that deletes the letter, so a replay is never half done. A letter
whose bytes are not an envelope cannot be rebuilt: it stays, and is logged, rather than being
lost or failing the whole replay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from workhive._envelope import Envelope, decode, replay_copy
from workhive.backend import DeadLetter
from workhive.backends._sql.coordination import Insert
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, many, rows
from workhive.errors import SerializationError

logger = logging.getLogger(__name__)


def _where(ids: Sequence[str] | None, queue: str | None) -> tuple[str, list[Any]]:
    """A filter on ids and/or queue (both None: every letter) and its parameters."""
    clauses: list[str] = ["true"]
    args: list[Any] = []
    if ids is not None:
        args.append(list(ids))
        clauses.append(f"id = ANY(${len(args)})")
    if queue is not None:
        args.append(queue)
        clauses.append(f"queue = ${len(args)}")
    return " AND ".join(clauses), args


def dead_letters(d: Dialect, queue: str | None, limit: int, offset: int) -> Op[list[DeadLetter]]:
    """Dead letters in the order they died."""
    where, args = _where(None, queue)
    n = len(args)
    found = yield rows(d.sql(
        f"SELECT id, queue, {d.blob('body')}, reason, failed_at FROM {{t}}dead WHERE {where}"
        f" ORDER BY seq LIMIT ${n + 1} OFFSET ${n + 2}"), *args, limit, offset)
    return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in found]


def keep_dead(d: Dialect, letters: Sequence[DeadLetter]) -> Op[None]:
    """Store a transport's letters in order; an id already kept stays as it is (a crash
    between keep and ack keeps the same letter twice)."""
    yield many(d.sql("INSERT INTO {t}dead (id, queue, body, reason, failed_at)"
                     " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING"),
               [(x.id, x.queue, x.body, x.reason, float(x.failed_at)) for x in letters])


def replay_dead(
    d: Dialect, insert: Insert, ids: Sequence[str] | None, queue: str | None
) -> Op[int]:
    where, args = _where(ids, queue)
    found = yield rows(d.sql(f"SELECT seq, id, {d.blob('body')} FROM {{t}}dead WHERE {where}"
                             f" ORDER BY seq{d.for_update}"), *args)
    replayed: list[Envelope] = []
    gone: list[int] = []
    for seq, dead_id, body in found:
        try:
            env = decode(bytes(body))
        except SerializationError as exc:
            logger.warning("cannot replay dead letter %s: %s", dead_id, exc)
            continue
        replayed.append(replay_copy(env))
        gone.append(seq)
    if gone:
        yield count(d.sql("DELETE FROM {t}dead WHERE seq = ANY($1::bigint[])"), gone)
        yield from insert(replayed)
    return len(replayed)


def purge_dead(d: Dialect, ids: Sequence[str] | None, queue: str | None) -> Op[int]:
    """Delete letters (all of them when both filters are None); how many."""
    where, args = _where(ids, queue)
    purged: int = yield count(d.sql(f"DELETE FROM {{t}}dead WHERE {where}"), *args)
    return purged
