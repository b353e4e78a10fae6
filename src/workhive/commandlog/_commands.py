"""Typed, named commands and the registry that turns them into log payloads and back.

A command is a msgspec Struct with a class-level ``command_name`` (``"post/create"``)::

    class CreatePost(Command, frozen=True):
        command_name = "post/create"
        post_id: str
        content: Annotated[str, msgspec.Meta(min_length=1)]

The name lives in ``command_name`` rather than ``name`` so that ``name`` stays free for payload
fields (a ``CreateUser`` command has a user name). Payloads are JSON: readable in
``workhive log tail`` and decodable by any language.

Validation is msgspec's own (types plus ``Meta`` constraints) and an optional ``validate()``
method for rules that span fields. Errors name the command and the field.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

import msgspec

from workhive.commandlog._errors import CommandValidationError, UnknownCommandError
from workhive.commandlog._message import Message
from workhive.errors import RegistryError

logger = logging.getLogger(__name__)

_FIELD_RE = re.compile(r"at `\$\.([^`\[]+)")


class Command(msgspec.Struct, frozen=True):
    """Base class of every command (immutable, like the facts it records).

    Subclasses set ``command_name``.
    """

    command_name: ClassVar[str]

    def validate(self) -> None:
        """Check rules the field types cannot express; raise ``ValueError`` naming the field."""


def _field_of(exc: msgspec.ValidationError) -> str | None:
    match = _FIELD_RE.search(str(exc))
    return match.group(1) if match else None


class _Codec:
    """Encoder/decoder pair for one command class, built once at registration."""

    __slots__ = ("cls", "decoder", "name")

    def __init__(self, cls: type[Command]) -> None:
        self.cls = cls
        self.name = cls.command_name
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(cls)


class CommandRegistry:
    """Maps command names to classes. One registry per App, never a global.

    ``decode`` is on the worker hot path: one dict lookup and one msgspec decode.
    """

    def __init__(self, *classes: type[Command]) -> None:
        self._codecs: dict[str, _Codec] = {}
        self._encoder = msgspec.json.Encoder()
        self._warned: set[str] = set()
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Command]) -> type[Command]:
        """Register ``cls`` (usable as a decorator). Re-registering the same class is a no-op."""
        name = getattr(cls, "command_name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{cls.__qualname__} has no command_name (e.g. 'post/create')")
        existing = self._codecs.get(name)
        if existing is not None:
            if existing.cls is cls:
                return cls
            raise RegistryError(
                f"command {name!r} is registered twice: {existing.cls.__qualname__} "
                f"and {cls.__qualname__}"
            )
        self._codecs[name] = _Codec(cls)
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._codecs

    def names(self) -> list[str]:
        """Registered command names, sorted."""
        return sorted(self._codecs)

    def class_for(self, name: str) -> type[Command]:
        """The class registered under ``name``; :class:`UnknownCommandError` if none."""
        codec = self._codecs.get(name)
        if codec is None:
            raise UnknownCommandError(name)
        return codec.cls

    def encode(self, command: Command) -> bytes:
        """Validate ``command`` and return its payload bytes.

        The command is round-tripped through the typed decoder, because a Struct built in
        Python is not type-checked at construction; that is what catches ``title=3``.
        """
        cls = type(command)
        self.register(cls)
        name = cls.command_name
        data = self._encoder.encode(command)
        try:
            checked = self._codecs[name].decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise CommandValidationError(name, str(exc), _field_of(exc)) from exc
        try:
            checked.validate()
        except (ValueError, TypeError) as exc:
            raise CommandValidationError(name, str(exc)) from exc
        return data

    def build(self, name: str, fields: dict[str, Any]) -> Command:
        """Build and validate a command from plain data (CLI, HTTP handlers)."""
        cls = self.class_for(name)
        try:
            command: Command = msgspec.convert(fields, cls)
        except msgspec.ValidationError as exc:
            raise CommandValidationError(name, str(exc), _field_of(exc)) from exc
        self.encode(command)
        return command

    def decode(self, message: Message) -> Command:
        """Decode a stored message. Raises :class:`UnknownCommandError` or a validation error."""
        codec = self._codecs.get(message.name)
        if codec is None:
            raise UnknownCommandError(message.name)
        try:
            result: Command = codec.decoder.decode(message.payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            field = _field_of(exc) if isinstance(exc, msgspec.ValidationError) else None
            raise CommandValidationError(
                message.name, f"message {message.id}: {exc}", field
            ) from exc
        return result

    def decode_or_skip(self, message: Message) -> Command | None:
        """Like :meth:`decode`, but an unknown name is skipped with one warning per name.

        A newer producer may have written commands this process does not know yet; that must
        never crash a reader.
        """
        try:
            return self.decode(message)
        except UnknownCommandError:
            if message.name not in self._warned:
                self._warned.add(message.name)
                logger.warning(
                    "skipping unknown command %r (first seen at message %d)",
                    message.name,
                    message.id,
                    extra={"command": message.name, "message_id": message.id},
                )
            return None

    def decoder_for(self, name: str) -> msgspec.json.Decoder[Any]:
        """The raw typed decoder for ``name`` (workers cache it per route)."""
        codec = self._codecs.get(name)
        if codec is None:
            raise UnknownCommandError(name)
        return codec.decoder
