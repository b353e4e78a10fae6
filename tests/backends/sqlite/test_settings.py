"""SQLiteSettings: URL forms, options, validation; bad paths become ConfigError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workhive.backends import open_backend
from workhive.backends.sqlite import SQLiteBackend, SQLiteSettings
from workhive.errors import ConfigError

pytestmark = pytest.mark.sqlite


def test_relative_and_absolute_urls() -> None:
    assert SQLiteSettings.from_url("sqlite:///relative.db").path == "relative.db"
    assert SQLiteSettings.from_url("sqlite:////abs/path.db").path == "/abs/path.db"
    assert SQLiteSettings.from_url("sqlite:///dir/with%20space.db").path == "dir/with space.db"


def test_options_from_query_and_keywords() -> None:
    s = SQLiteSettings.from_url("sqlite:///a.db?busy_timeout=2.5&max_poll_interval=0.01")
    assert (s.busy_timeout, s.max_poll_interval) == (2.5, 0.01)
    s = SQLiteSettings.from_url("sqlite:///a.db?busy_timeout=2.5", busy_timeout=9)
    assert s.busy_timeout == 9


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("sqlite://", {}, "file path"),
        ("sqlite://host/a.db", {}, "host part"),
        ("redis:///a.db", {}, "not a sqlite URL"),
        ("sqlite:///:memory:", {}, "memory://"),
        ("sqlite:///a.db?bogus=1", {}, "bogus"),
        ("sqlite:///a.db", {"colour": "red"}, "colour"),
        ("sqlite:///a.db?busy_timeout=soon", {}, "busy_timeout must be a number"),
        ("sqlite:///a.db", {"busy_timeout": -1}, "busy_timeout must be positive"),
        ("sqlite:///a.db", {"idempotency_ttl": True}, "idempotency_ttl must be a number"),
        ("sqlite:///a.db", {"max_poll_interval": 0.0001}, "max_poll_interval must be at least"),
    ],
)
def test_invalid_settings_name_the_problem(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SQLiteSettings.from_url(url, **options)


def test_open_backend_resolves_sqlite_urls(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(backend, SQLiteBackend)
    assert backend.path == f"{tmp_path}/x.db"
    assert backend.name == "sqlite"


async def test_missing_directory_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "x.db"
    backend = SQLiteBackend.from_url(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match=str(path)):
        await backend.open()
    await backend.close()


async def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        await SQLiteBackend.from_url(f"sqlite:///{tmp_path}").open()


async def test_garbage_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a SQLite database"):
        await SQLiteBackend.from_url(f"sqlite:///{path}").open()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
async def test_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            await SQLiteBackend.from_url(f"sqlite:///{locked}/x.db").open()
    finally:
        locked.chmod(0o700)
