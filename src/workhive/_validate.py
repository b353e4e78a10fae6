"""Checks of every enqueue option and payload, run before anything reaches a backend.

Why here and not in the backends: a value a backend cannot store (``priority="high"``, a NaN
delay, a lone surrogate) used to be written half-way, or stored and then break every later fetch
of the queue (a Lua script doing arithmetic on it). Refusing it at the API, with the option's
name in the message, keeps bad values out of every store at once. The rules are listed in
``docs/validation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from workhive.errors import SerializationError, ValidationError

PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1

_check_encoder = msgspec.msgpack.Encoder()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def name(value: object, what: str = "task name") -> str:
    """A task or event name: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")
    return value


def priority(value: object) -> int | None:
    """An int (not a bool) in the 32-bit range every broker can map onto its bands."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"priority must be an int, got {value!r}")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise ValidationError(
            f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {value}")
    return value


def seconds(option: str, value: object) -> float | None:
    """A finite, non-negative number of seconds (delay, timeout)."""
    if value is None:
        return None
    if not _is_number(value):
        raise ValidationError(f"{option} must be a number of seconds, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number < 0:
        raise ValidationError(f"{option} must be a finite number >= 0, got {value!r}")
    return number


def eta(value: object) -> float | None:
    """A unix time (finite number) or a timezone-aware ``datetime``; naive ones are ambiguous."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                f"eta must be a timezone-aware datetime (a naive one is ambiguous), got {value!r}")
        return value.timestamp()
    if not _is_number(value):
        raise ValidationError(f"eta must be a unix time or an aware datetime, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValidationError(f"eta must be finite, got {value!r}")
    return number


def max_retries(value: object) -> int | None:
    """A non-negative int."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(f"max_retries must be an int >= 0, got {value!r}")
    if value > PRIORITY_MAX:
        raise ValidationError(f"max_retries must be at most {PRIORITY_MAX}, got {value}")
    return value


def text(option: str, value: object) -> str | None:
    """A non-empty string (queue, idempotency_key, unique_key) that encodes as UTF-8."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{option} must be a non-empty string, got {value!r}")
    _utf8(option, value)
    return value


def ordering_key(value: object, what: str = "ordering_key") -> str | None:
    """A non-empty UTF-8 string, or an int (ids often are), which becomes its decimal string.

    Anything else is refused rather than turned into text: ``str()`` of an object or a float
    would make two different entities share a key, or one entity get two (``1`` and ``1.0``).
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string or an int, got {value!r}")
    _utf8(what, value)
    return value


def headers(value: object) -> dict[str, str]:
    """A mapping of str to str (they travel as message headers on every broker)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"headers must be a mapping of str to str, got {value!r}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValidationError(
                f"headers must map str to str, got {key!r}: {item!r}")
        _utf8("headers", key)
        _utf8("headers", item)
        out[key] = item
    return out


def _utf8(option: str, value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{option} is not valid text ({exc.reason}): {value!r}") from exc


def payload(value: Any, what: str) -> Any:
    """Turn a payload into plain builtins and prove it encodes; one clear error if not.

    Encoding once here costs about as much as walking the value, and it catches everything
    MessagePack cannot carry (objects, lone surrogates, ints beyond 64 bits) at the caller.
    """
    from workhive._task import to_builtins

    try:
        plain = to_builtins(value)
        _check_encoder.encode(plain)
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"cannot serialise payload of {what}: a string is not valid text ({exc.reason})"
        ) from exc
    except OverflowError as exc:
        raise SerializationError(
            f"cannot serialise payload of {what}: an integer is out of range ({exc})") from exc
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        raise SerializationError(f"cannot serialise payload of {what}: {exc}") from exc
    return plain
