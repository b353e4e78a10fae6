"""CommandRegistry and Executor: validation names the command and field; unknown names skip."""

from __future__ import annotations

import logging

import pytest

from tests.commandlog.commands import CreatePost, DeletePost, Rename
from workhive.commandlog import (
    Command,
    CommandRegistry,
    CommandValidationError,
    Executor,
    Message,
    UnknownCommandError,
)
from workhive.commandlog.sqlite import SQLiteMessageLog
from workhive.errors import RegistryError, ValidationError


def test_encode_decode_round_trip() -> None:
    reg = CommandRegistry(CreatePost)
    payload = reg.encode(CreatePost(post_id="1", title="hello"))
    assert reg.decode(Message(1, "post/create", payload, 0.0)) == CreatePost("1", "hello")


def test_validation_error_names_command_and_field() -> None:
    reg = CommandRegistry()
    with pytest.raises(CommandValidationError) as info:
        reg.encode(CreatePost(post_id="1", title=3))  # type: ignore[arg-type]
    assert info.value.command == "post/create"
    assert info.value.field == "title"
    assert "post/create" in str(info.value) and "title" in str(info.value)
    assert isinstance(info.value, ValidationError)
    with pytest.raises(CommandValidationError, match="title"):
        reg.encode(CreatePost(post_id="1", title=""))


def test_validate_hook_and_field_called_name() -> None:
    reg = CommandRegistry()
    assert reg.encode(Rename(name="bob", old="al")) == b'{"name":"bob","old":"al"}'
    with pytest.raises(CommandValidationError, match=r"user/rename.*must differ"):
        reg.encode(Rename(name="x", old="x"))


def test_build_from_plain_data() -> None:
    reg = CommandRegistry(CreatePost)
    assert reg.build("post/create", {"post_id": "9", "title": "t"}) == CreatePost("9", "t")
    with pytest.raises(CommandValidationError, match="post_id"):
        reg.build("post/create", {"title": "t"})
    with pytest.raises(UnknownCommandError):
        reg.build("nope/x", {})


def test_registry_refuses_duplicates_and_nameless() -> None:
    reg = CommandRegistry(CreatePost)
    reg.register(CreatePost)  # same class: fine

    class Other(Command, frozen=True):
        command_name = "post/create"

    class Nameless(Command, frozen=True):
        x: int = 0

    with pytest.raises(RegistryError, match="twice"):
        reg.register(Other)
    with pytest.raises(RegistryError, match="command_name"):
        reg.register(Nameless)


def test_unknown_name_skipped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    reg = CommandRegistry(CreatePost)
    with caplog.at_level(logging.WARNING):
        assert reg.decode_or_skip(Message(5, "future/thing", b"{}", 0.0)) is None
        assert reg.decode_or_skip(Message(6, "future/thing", b"{}", 0.0)) is None
    warnings = [r for r in caplog.records if "future/thing" in r.getMessage()]
    assert len(warnings) == 1 and "5" in warnings[0].getMessage()


def test_malformed_payload_is_a_validation_error() -> None:
    reg = CommandRegistry(CreatePost)
    with pytest.raises(CommandValidationError, match="message 3"):
        reg.decode(Message(3, "post/create", b"not json", 0.0))


async def test_executor_validates_appends_applies_and_replays(
    sqlite_log: SQLiteMessageLog, caplog: pytest.LogCaptureFixture
) -> None:
    posts: dict[str, str] = {}
    ex = Executor(sqlite_log)
    ex.on(CreatePost, lambda c, m: posts.__setitem__(c.post_id, c.title))
    ex.on(DeletePost, lambda c, m: posts.pop(c.post_id))
    assert await ex.execute(CreatePost(post_id="a", title="A")) == 1
    assert await ex.execute_many([CreatePost("b", "B"), DeletePost("a")]) == [2, 3]
    with pytest.raises(CommandValidationError):
        await ex.execute(CreatePost(post_id="c", title=""))
    assert await sqlite_log.head() == 3  # nothing written for the invalid one
    assert posts == {"b": "B"}

    await sqlite_log.append("future/thing", b"{}")
    rebuilt: dict[str, str] = {}
    ex2 = Executor(sqlite_log)
    ex2.on(CreatePost, lambda c, m: rebuilt.__setitem__(c.post_id, c.title))
    ex2.on(DeletePost, lambda c, m: rebuilt.pop(c.post_id))
    with caplog.at_level(logging.WARNING):
        assert await ex2.replay() == 4
    assert rebuilt == posts
    assert any("future/thing" in r.getMessage() for r in caplog.records)


async def test_executor_applier_failure_is_logged_not_raised(
    sqlite_log: SQLiteMessageLog, caplog: pytest.LogCaptureFixture
) -> None:
    ex = Executor(sqlite_log)

    def broken(c: CreatePost, m: Message) -> None:
        raise RuntimeError("boom")

    ex.on(CreatePost, broken)
    with caplog.at_level(logging.ERROR):
        assert await ex.execute(CreatePost("a", "A")) == 1
    assert "post/create" in caplog.text and "message 1" in caplog.text
