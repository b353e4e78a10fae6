"""The one place where a handler's outcome becomes a settlement: a pure function.

Every backend applies the same four actions (ack / retry / dead / release); what differs is only
how (a row update, a Lua script, publish-then-ack). Keeping the table here means the worker does
not switch over outcomes and backends do not re-interpret them.

=====================================  =========  ========================================
outcome                                action     body
=====================================  =========  ========================================
returned, ``Skip``                     ack        -
``Cancelled`` (cancelled by request)   ack        -  (never retried; its result says so)
``Retry`` (counted)                    retry      next attempt, this one in its history
``Retry(count=False)`` (rate limits)   retry      unchanged
``Reject``, any other exception        dead       this attempt appended to its history
malformed bytes (no envelope)          dead       the bytes as they came
``CancelledError`` (shutdown)          release    -
=====================================  =========  ========================================
"""

from __future__ import annotations

import asyncio
import time
import traceback

from workhive._envelope import AttemptRecord, Envelope, encode
from workhive.backend import Delivery, Settlement
from workhive.errors import Reject, Retry, Skip

_TRACEBACK_LIMIT = 4000


def attempt_record(env: Envelope, signal: BaseException | None, reason: str = "") -> AttemptRecord:
    """The history entry for a failed attempt: the signal's reason (or the error) and the
    traceback of what caused it, trimmed to its last 4,000 characters."""
    cause = signal.__cause__ if signal is not None and signal.__cause__ else signal
    tb = ""
    if cause is not None and cause.__traceback__ is not None:
        tb = "".join(traceback.format_exception(cause))[-_TRACEBACK_LIMIT:]
    error = getattr(signal, "reason", "") or (str(cause) if cause else "") or reason
    return AttemptRecord(env.attempt, time.time(), error, tb)


def failed_body(env: Envelope, reason: str, signal: BaseException | None) -> bytes:
    """The envelope to keep as a dead letter: this attempt appended to its history."""
    return encode(env.next_attempt(attempt_record(env, signal, reason)))


def settlement_for(
    delivery: Delivery, env: Envelope | None, outcome: BaseException | None, now: float
) -> Settlement:
    """How to settle ``delivery`` (decoded as ``env``, None when malformed) after ``outcome``
    (None: the handler returned). ``now`` is the unix time retry delays count from."""
    if env is None:
        return Settlement(delivery, "dead", reason=str(outcome))
    if outcome is None or isinstance(outcome, Skip):  # Cancelled is a Skip
        return Settlement(delivery, "ack", envelope=env)
    if isinstance(outcome, asyncio.CancelledError):
        return Settlement(delivery, "release", envelope=env)
    if isinstance(outcome, Retry):
        nxt = env.next_attempt(attempt_record(env, outcome), count=True) if outcome.count else env
        return Settlement(delivery, "retry", body=encode(nxt), reason=outcome.reason,
                          eta=now + max(outcome.delay or 0.0, 0.0), envelope=env)
    if isinstance(outcome, Reject):
        reason = outcome.reason
    else:
        reason = f"{type(outcome).__name__}: {outcome}"
    return Settlement(delivery, "dead", body=failed_body(env, reason, outcome), reason=reason,
                      envelope=env)
