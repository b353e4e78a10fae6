"""The backend-agnostic message: what a producer writes and a worker reads.

An :class:`Envelope` is frozen; a retry produces a *new* envelope (``attempt + 1`` and one more
entry in ``history``) that the backend stores in place of the old one, so the dead-letter queue
ends up holding the full attempt history without any backend knowing its shape.

Encoding is MessagePack through msgspec: fast, compact, and unable to execute code on decode
(never pickle). The payload travels as plain builtins (dicts, lists, str, numbers); the worker
converts it to the handler's declared type.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import msgspec

from workhive.errors import SerializationError

Kind = Literal["task", "event"]


class AttemptRecord(msgspec.Struct, frozen=True, array_like=True):
    """One failed attempt: when, which, what went wrong."""

    attempt: int
    at: float
    error: str
    traceback: str = ""


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """A task or event on its way to a handler.

    ``priority``: higher runs first. ``attempt``: attempts already made (0 on first delivery).
    ``max_retries`` / ``timeout``: ``None`` means "use the task's declared default".
    ``eta``: unix time before which the message must not run. ``group``: for events, the
    subscriber group this copy belongs to. ``ordering_key``: messages with the same key run one
    at a time, in enqueue order, on a backend that declares ``Capability.ORDERED_KEYS``
    (envelopes written before the field existed decode with None: it is omitted when unset).
    """

    id: str
    name: str
    queue: str = "default"
    payload: Any = None
    kind: Kind = "task"
    priority: int = 0
    attempt: int = 0
    max_retries: int | None = None
    timeout: float | None = None
    eta: float | None = None
    enqueued_at: float = 0.0
    idempotency_key: str | None = None
    unique_key: str | None = None
    ordering_key: str | None = None
    group: str | None = None
    headers: dict[str, str] = {}
    history: tuple[AttemptRecord, ...] = ()

    def next_attempt(self, record: AttemptRecord, *, count: bool = True) -> Envelope:
        """The envelope for the next try, carrying this failure in its history."""
        return msgspec.structs.replace(
            self,
            attempt=self.attempt + 1 if count else self.attempt,
            history=(*self.history, record)[-20:],
        )


class _ExtensionRefused(Exception):
    """Internal: the body holds a MessagePack extension type (see :func:`_refuse_ext`)."""


def _refuse_ext(code: int, data: memoryview) -> Any:
    """Workhive never writes extension types; one in a body was crafted or corrupted.

    Without this hook msgspec hands back an ``Ext`` object, which passes straight through a
    ``dict``/``Any`` payload hint into the handler. Refusing it makes the message malformed:
    dead-lettered at once, never retried.
    """
    raise _ExtensionRefused(f"MessagePack extension type {code} is not allowed")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope, ext_hook=_refuse_ext)


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope; the payload must already be plain builtins."""
    try:
        return _encoder.encode(envelope)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise SerializationError(f"cannot encode payload of {envelope.name!r}: {exc}") from exc


def decode(body: bytes) -> Envelope:
    """Parse bytes from the store; anything malformed raises :class:`SerializationError`."""
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, _ExtensionRefused) as exc:
        raise SerializationError(f"malformed message ({len(body)} bytes): {exc}") from exc


def new_id() -> str:
    """A time-ordered, unique 32-char hex id (48-bit ms timestamp + 80 random bits)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


def replay_copy(env: Envelope) -> Envelope:
    """What ``dlq replay`` enqueues: the same work as a fresh message (new id, attempt 0, no
    history, no delay); idempotency and unique keys are dropped so a replay is never
    deduplicated away. The ordering key stays: it says which entity the work is about, and the
    replay takes its place in that key's order as a new message."""
    return make_envelope(env.name, env.payload, queue=env.queue, kind=env.kind,
                         priority=env.priority, group=env.group, headers=env.headers,
                         ordering_key=env.ordering_key)


def make_envelope(name: str, payload: Any, **fields: Any) -> Envelope:
    """Build an envelope with a fresh id and ``enqueued_at = now``."""
    return Envelope(id=new_id(), name=name, payload=payload, enqueued_at=time.time(), **fields)
