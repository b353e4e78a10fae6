"""PostgresSettings: URL forms, options, validation, password redaction; unreachable server."""

from __future__ import annotations

import pytest

from tests._services import free_port
from workhive.backends import open_backend
from workhive.backends.postgres import PostgresBackend, PostgresSettings
from workhive.config import HiveConfig, PostgresConfig, WorkerConfig
from workhive.errors import BackendUnavailable, ConfigError

pytestmark = pytest.mark.postgres


def test_defaults_and_options_override_query() -> None:
    s = PostgresSettings.from_url(
        "postgres://app@db.example:6543/jobs?schema=q&pool_size=8&sslmode=require",
        schema="opt", command_timeout=3,
    )
    assert (s.schema, s.pool_size, s.command_timeout, s.password) == ("opt", 8, 3.0, None)
    assert s.url == "postgresql://app@db.example:6543/jobs?sslmode=require"
    assert s.channel == "opt_wake"


def test_password_from_url_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    s = PostgresSettings.from_url("postgresql://user:p%40ss@h:5432/db")
    assert s.password == "p@ss"
    assert "p@ss" not in repr(s) and "p%40ss" not in repr(s) and "p@ss" not in s.url
    assert s.redacted_url == "postgresql://user:***@h:5432/db"
    assert "p@ss" not in repr(PostgresBackend(s))
    assert "p@ss" not in str(s.translate(OSError("auth p@ss failed"), "x"))


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    s = PostgresSettings.from_url("postgresql://u@127.0.0.1/db")
    assert s.password == "from-env" and "from-env" not in repr(s)
    assert s.redacted_url == "postgresql://u:***@127.0.0.1/db"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("mysql://h/db", {}, "not a postgres url"),
        ("postgresql://h/db?bogus=1", {}, "unknown postgres option 'bogus'"),
        ("postgresql://h/db", {"schema": "Bad-Name"}, "lower-case identifier"),
        ("postgresql://h/db", {"schema": "x; DROP TABLE y"}, "lower-case identifier"),
        ("postgresql://h/db?pool_size=zero", {}, "'pool_size' must be int"),
        ("postgresql://h/db", {"pool_size": 0}, "'pool_size' must be >= 1"),
        ("postgresql://h/db", {"poll_interval": -1}, "'poll_interval' must be a positive"),
        ("postgresql://h:notaport/db", {}, "invalid postgres url"),
        ("postgresql://h/db?pooler=statement", {}, "'pooler' must be one of none, session, tr"),
        ("postgresql://h/db", {"listen_url": "redis://h"}, "'listen_url' must be a postgresql"),
        ("postgresql://h/db", {"listen_url": "postgresql://h:x/db"}, "'listen_url' is not a "),
    ],
)
def test_bad_options_are_config_errors(url: str, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PostgresSettings.from_url(url, **options)


def test_pooler_options_choose_how_idle_fetches_wake() -> None:
    direct = PostgresSettings.from_url("postgresql://u@h/db")
    assert (direct.pooler, direct.listens, direct.poll_every) == ("none", True, 2.0)
    assert direct.listener_target == ("postgresql://u@h/db", None)
    polling = PostgresSettings.from_url("postgresql://u@bouncer:6432/db?pooler=Transaction")
    assert (polling.pooler, polling.listens, polling.poll_every) == ("transaction", False, 0.25)
    session = PostgresSettings.from_url("postgresql://u@bouncer/db?pooler=session")
    assert session.listens and session.poll_every == 2.0
    tuned = PostgresSettings.from_url("postgresql://u@bouncer/db?pooler=transaction",
                                      poll_interval=1)
    assert tuned.poll_every == 1.0


def test_listen_url_password_never_shown() -> None:
    s = PostgresSettings.from_url(
        "postgresql://app:main-pw@bouncer:6432/db?pooler=transaction"
        "&listen_url=postgresql://app:direct-pw@db:5432/db")
    assert s.listens and s.poll_every == 2.0
    assert s.listener_target == ("postgresql://app@db:5432/db", "direct-pw")
    for text in (repr(s), s.url, s.redacted_url, repr(PostgresBackend(s)),
                 str(s.translate(OSError("auth direct-pw / main-pw failed"), "x"))):
        assert "direct-pw" not in text and "main-pw" not in text, text
    inherits = PostgresSettings.from_url("postgresql://app:main-pw@bouncer/db",
                                         listen_url="postgresql://app@db/db")
    assert inherits.listener_target == ("postgresql://app@db/db", "main-pw")


def test_registered_schemes_and_config() -> None:
    for scheme in ("postgres", "postgresql"):
        backend = open_backend(f"{scheme}://u@h/db?schema=s1")
        assert isinstance(backend, PostgresBackend) and backend.settings.schema == "s1"
    cfg = HiveConfig(worker=WorkerConfig(backend="postgres",
                                         postgres=PostgresConfig(dsn="postgresql://x/app")))
    assert cfg.backend_url() == "postgresql://x/app"


async def test_unreachable_server_is_backend_unavailable() -> None:
    url = f"postgresql://u:s3cret-pw@127.0.0.1:{free_port()}/db?schema=nowhere"
    backend = PostgresBackend.from_url(url, connect_timeout=2)
    with pytest.raises(BackendUnavailable) as info:
        await backend.open()
    await backend.close()
    assert "s3cret-pw" not in str(info.value)
    assert "127.0.0.1" in str(info.value) and "unavailable" in str(info.value)
    with pytest.raises(BackendUnavailable):
        await backend.fetch(["q"], 1, lease=5, wait=0.1)
    with pytest.raises(BackendUnavailable):
        await backend.stats()
    await backend.close()
