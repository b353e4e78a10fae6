"""URL and option parsing, credentials kept out of repr/errors/logs, unreachable servers."""

from __future__ import annotations

import logging
import time

import pytest

from tests._services import free_port
from workhive.backends.nats import NatsBackend, NatsSettings
from workhive.errors import BackendUnavailable, ConfigError


def test_options_from_url_and_kwargs() -> None:
    s = NatsSettings.from_url("nats://h:4223?stream=APP&priority_bands=5")
    assert (s.url, s.stream, s.priority_bands) == ("nats://h:4223", "APP", 5)
    assert NatsSettings.from_url("nats://h?stream=APP", stream="APP").stream == "APP"
    with pytest.raises(ConfigError, match="stream"):
        NatsSettings.from_url("nats://h?stream=APP", stream="OTHER")
    with pytest.raises(ConfigError, match="unknown nats option 'prefix'"):
        NatsSettings.from_url("nats://h?prefix=x")
    with pytest.raises(ConfigError, match="unknown nats option"):
        NatsSettings.from_url("nats://h", bogus=1)
    with pytest.raises(ConfigError, match="stream"):
        NatsSettings.from_url("nats://h", stream="has.dot")
    with pytest.raises(ConfigError, match="priority_bands"):
        NatsSettings.from_url("nats://h?priority_bands=x")
    with pytest.raises(ConfigError):
        NatsSettings.from_url("redis://h")
    assert NatsSettings.from_url("tls://h").connect_options()["tls"] is not None


def test_schedules_option() -> None:
    assert NatsSettings.from_url("nats://h").schedules == "auto"
    assert NatsSettings.from_url("nats://h?schedules=OFF").schedules == "off"
    assert NatsSettings.from_url("nats://h", schedules=True).schedules == "on"  # YAML's on
    assert NatsSettings.from_url("nats://h", schedules=False).schedules == "off"
    with pytest.raises(ConfigError, match="'schedules' must be one of auto, on, off"):
        NatsSettings.from_url("nats://h?schedules=sometimes")
    with pytest.raises(ConfigError, match="schedules"):
        NatsSettings.from_url("nats://h?schedules=on", schedules="off")


def test_credentials_from_url_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = NatsSettings.from_url("nats://alice:p%40ss@h:4222")
    assert (s.user, s.password) == ("alice", "p@ss")
    assert s.redacted_url == "nats://alice:***@h:4222"
    assert NatsSettings.from_url("nats://tok3n@h").token == "tok3n"
    monkeypatch.setenv("NATS_USER", "bob")
    monkeypatch.setenv("NATS_PASSWORD", "envsecret")
    monkeypatch.setenv("NATS_CREDS", "/etc/app.creds")
    s = NatsSettings.from_url("nats://h")
    assert (s.user, s.password, s.creds) == ("bob", "envsecret", "/etc/app.creds")
    options = s.connect_options()
    assert options["servers"] == ["nats://h:4222"] and options["password"] == "envsecret"
    assert options["user_credentials"] == "/etc/app.creds"


async def test_unreachable_is_one_clear_line_without_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    backend = NatsBackend.from_url(f"nats://admin:hunter2secret@127.0.0.1:{port}")
    assert "hunter2secret" not in repr(backend) and "hunter2secret" not in repr(backend.settings)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        await backend.open()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message
    assert "hunter2secret" not in message and "hunter2secret" not in caplog.text
    await backend.close()
