"""Events, cron ticks, rate-limit counters and key claims, as SQL both engines run.

Each is one statement where it can be (an upsert with ``RETURNING``), so the database, not a
lock in Python, decides who wins when workers on several hosts race: one ``INSERT`` wins a cron
tick, one upsert counts a hit or charges a token. Times come from the dialect's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from workhive._envelope import Envelope
from workhive.backend import EnqueueResult, fan_out, topic_matches
from workhive.backends._sql.dialect import Dialect
from workhive.backends._sql.engine import Op, count, row, rows, value

logger = logging.getLogger(__name__)

#: the dialect's insert of new envelopes (keys deduped, idle fetches woken), as an operation
Insert = Callable[[Sequence[Envelope]], Op[list[EnqueueResult]]]


def bind(d: Dialect, pattern: str, group: str) -> Op[None]:
    yield count(d.sql("INSERT INTO {t}bindings (pattern, grp) VALUES ($1, $2)"
                      " ON CONFLICT DO NOTHING"), pattern, group)


def publish(d: Dialect, insert: Insert, envelope: Envelope) -> Op[int]:
    """One copy per bound group; run in one transaction, so every group bound before the
    publish committed gets its copy."""
    bound = yield rows(d.sql("SELECT pattern, grp FROM {t}bindings"))
    groups = [g for p, g in bound if _binding_ok(p, g) and topic_matches(p, envelope.name)]
    copies = fan_out(envelope, groups)
    if copies:
        yield from insert(copies)
    return len(copies)


def _binding_ok(pattern: object, group: object) -> bool:
    """False (and an error log) for a bindings row that is not two non-empty strings."""
    if isinstance(pattern, str) and isinstance(group, str) and pattern and group:
        return True
    logger.error("ignoring a corrupt event binding %r -> %r", pattern, group)
    return False


def claim_tick(d: Dialect, job: str, tick: float) -> Op[bool]:
    """True for exactly one caller per ``(job, tick)``: the one whose INSERT went in."""
    won = yield value(d.sql("INSERT INTO {t}ticks (job, tick, claimed_at) VALUES ($1, $2, {now})"
                            " ON CONFLICT DO NOTHING RETURNING 1"), job, float(tick))
    return won is not None


def hit_window(d: Dialect, key: str, period: float, limit: int) -> Op[tuple[bool, float]]:
    """Count a hit in the current fixed window unless it already holds ``limit``; when refused,
    ``retry_after`` is the time to the window's end."""
    win = d.floor("{now} / $2")
    counted = yield value(d.sql(
        "INSERT INTO {t}windows AS x (key, win, hits, expires_at)"
        f" SELECT $1, w.win, 1, (w.win + 1) * $2 FROM (SELECT {win} AS win) w WHERE $3 > 0"
        " ON CONFLICT (key, win) DO UPDATE SET hits = x.hits + 1 WHERE x.hits < $3"
        " RETURNING 1"), key, float(period), int(limit))
    if counted is not None:
        return True, 0.0
    left = yield value(d.sql(f"SELECT ({d.floor('{now} / $1')} + 1) * $1 - {{now}}"),
                       float(period))
    return False, max(float(left), 0.0)


def take_token(d: Dialect, key: str, rate: float, burst: int) -> Op[tuple[bool, float]]:
    """Token bucket (``rate`` per second, ``burst`` at most) refilled and charged in one
    upsert; ``allowed`` records this call's decision so ``RETURNING`` can report it."""
    refill = d.least("CAST($3 AS float8)", "b.tokens + " + d.greatest(
        "excluded.updated_at - b.updated_at", "0") + " * CAST($2 AS float8)")
    allowed, tokens = yield row(d.sql(
        "INSERT INTO {t}buckets AS b (key, tokens, updated_at, allowed)"
        " SELECT $1, CASE WHEN CAST($3 AS float8) >= 1 THEN CAST($3 AS float8) - 1"
        " ELSE CAST($3 AS float8) END, {now}, CAST($3 AS float8) >= 1 WHERE true"
        f" ON CONFLICT (key) DO UPDATE SET"
        f" tokens = CASE WHEN {refill} >= 1 THEN {refill} - 1 ELSE {refill} END,"
        f" allowed = {refill} >= 1, updated_at = excluded.updated_at"
        " RETURNING allowed, tokens"), key, float(rate), float(burst))
    if allowed:
        return True, 0.0
    return False, max((1.0 - float(tokens)) / rate, 0.0)


def claim_key(d: Dialect, key: str, holder: str, ttl: float | None) -> Op[str]:
    """Own ``key`` unless a live claim holds it; the owner after the statement.

    A live conflicting row is rewritten unchanged rather than skipped, so ``RETURNING``
    reports its holder even when that row committed after this statement's snapshot; a holder
    re-claiming its own live key keeps it as it was.
    """
    live = "c.expires_at IS NULL OR c.expires_at > {now}"
    owner = yield value(d.sql(
        "INSERT INTO {t}claims AS c (key, holder, expires_at) VALUES ($1, $2, {now} + $3)"
        f" ON CONFLICT (key) DO UPDATE SET"
        f" holder = CASE WHEN {live} THEN c.holder ELSE excluded.holder END,"
        f" expires_at = CASE WHEN {live} THEN c.expires_at ELSE excluded.expires_at END"
        " RETURNING holder"), key, holder, None if ttl is None else float(ttl))
    return str(owner)


def release_key(d: Dialect, key: str, holder: str) -> Op[None]:
    yield count(d.sql("DELETE FROM {t}claims WHERE key = $1 AND holder = $2"), key, holder)
