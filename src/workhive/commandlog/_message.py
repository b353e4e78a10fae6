"""The stored form of one command in the log.

A :class:`Message` is what a :class:`~workhive.commandlog.MessageLog` returns: the id the log
assigned (strictly increasing, never reused), the command name, the command's encoded payload
(JSON bytes, so ``workhive log tail`` can show it), the append time and string metadata.

It is a frozen msgspec Struct with ``gc=False`` because the dispatch hot path builds hundreds of
thousands of them per second: no ``__dict__``, no cyclic-GC tracking.
"""

from __future__ import annotations

import msgspec


class Message(msgspec.Struct, frozen=True, gc=False):
    """One entry of the log. ``payload`` is decoded lazily by the command registry."""

    id: int
    name: str
    payload: bytes
    timestamp: float
    metadata: dict[str, str] = {}


_meta_encoder = msgspec.json.Encoder()
_meta_decoder = msgspec.json.Decoder(dict[str, str])


def encode_metadata(metadata: dict[str, str] | None) -> bytes | None:
    """Encode metadata for storage; empty metadata is stored as NULL (the common case)."""
    return _meta_encoder.encode(metadata) if metadata else None


def decode_metadata(raw: bytes | None) -> dict[str, str]:
    """Inverse of :func:`encode_metadata`."""
    return _meta_decoder.decode(raw) if raw else {}
