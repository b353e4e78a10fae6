"""RedisSettings: URL forms, options, validation and password redaction (no server needed)."""

from __future__ import annotations

import pytest

from workhive.backends import open_backend
from workhive.backends.redis import RedisBackend, RedisSettings
from workhive.backends.redis.pubsub import RedisPubSubBackend
from workhive.errors import ConfigError


def test_query_and_options_combine_and_must_agree() -> None:
    s = RedisSettings.from_url("redis://h:6380/2?socket_timeout=3", prefix="opt")
    assert (s.prefix, s.socket_timeout, s.password) == ("opt", 3.0, None)
    assert s.url == "redis://h:6380/2"
    with pytest.raises(ConfigError, match="'prefix' is set twice"):
        RedisSettings.from_url("redis://h:6380/2?prefix=q", prefix="opt")


def test_password_from_url_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "from-env")
    s = RedisSettings.from_url("rediss://user:p%40ss@h:6379/0")
    assert s.password == "p@ss"
    assert "p@ss" not in repr(s) and "p%40ss" not in repr(s)
    assert s.redacted_url == "rediss://user:***@h:6379/0"
    backend = RedisBackend(s)
    assert "p@ss" not in repr(backend)
    assert "p@ss" not in str(s.unavailable(OSError("auth p@ss failed")))


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "from-env")
    s = RedisSettings.from_url("redis://127.0.0.1:6379/0")
    assert s.password == "from-env" and "from-env" not in repr(s)


def test_unix_socket_url() -> None:
    s = RedisSettings.from_url("unix:///run/redis.sock?db=3&password=pw")
    assert s.url == "unix:///run/redis.sock?db=3" and s.password == "pw"


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("redis://h/0", {"prefix": "has space"}, "prefix"),
        ("redis://h/0", {"prefix": "glob*"}, "prefix"),
        ("redis://h/0", {"socket_timeout": "soon"}, "socket_timeout"),
        ("redis://h/0", {"retries": -1}, "retries"),
        ("redis://h/0", {"bogus": 1}, "bogus"),
        ("http://h/0", {}, "scheme"),
        ("redis:///0", {}, "host"),
        ("unix://", {}, "socket path"),
        ("redis://a:1,b:2/0", {}, "several hosts"),
        ("redis+cluster://a:1,b:x", {}, "bad host:port"),
        ("redis+cluster://a:1/3", {}, "only database 0"),
        ("redis+cluster://a:1", {"cluster": "false"}, "contradicts"),
        ("redis://a:1", {"cluster": "maybe"}, "true or false"),
        ("unix:///s.sock", {"cluster": "true"}, "cluster=true needs"),
        ("redis+sentinel://a:26379", {}, "service_name"),
        ("redis://a:1", {"service_name": "m"}, "redis\\+sentinel"),
    ],
)
def test_bad_settings_are_config_errors(url: str, options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        RedisSettings.from_url(url, **options)


def test_registry_builds_both_backends() -> None:
    assert isinstance(open_backend("redis://127.0.0.1:6379/0", prefix="x"), RedisBackend)
    pubsub = open_backend("redis-pubsub://127.0.0.1:6379/0")
    assert isinstance(pubsub, RedisPubSubBackend)
    assert pubsub.settings.url == "redis://127.0.0.1:6379/0"


def test_cluster_urls() -> None:
    s = RedisSettings.from_url("redis+cluster://u:pw@h1:7000,[::1]:7001,h3/0?prefix=app")
    assert (s.mode, s.prefix, s.password) == ("cluster", "app", "pw")
    assert s.nodes == [("h1", 7000), ("::1", 7001), ("h3", 6379)]
    assert s.redacted_url == "redis+cluster://u:***@h1:7000,[::1]:7001,h3/0"
    seed = RedisSettings.from_url("rediss://h:7000?cluster=true&ssl_cert_reqs=none")
    assert (seed.mode, seed.url) == ("cluster", "rediss+cluster://h:7000?ssl_cert_reqs=none")
    assert RedisSettings.from_url("redis://h:7000", cluster=False).mode == "single"
    assert RedisSettings.from_url("redis-pubsub://h:7000?cluster=1").mode == "cluster"


def test_sentinel_url_and_its_password_is_never_shown() -> None:
    s = RedisSettings.from_url("redis+sentinel://:mpw@s1,s2:26380/2?service_name=main",
                               sentinel_password="spw")
    assert (s.mode, s.service_name, s.password) == ("sentinel", "main", "mpw")
    assert s.nodes == [("s1", 26379), ("s2", 26380)]
    assert "spw" not in repr(s) and "mpw" not in s.redacted_url
    assert "spw" not in str(s.unavailable(OSError("auth spw and mpw failed")))
    assert "mpw" not in str(s.unavailable(OSError("auth spw and mpw failed")))


def test_cluster_query_flag_builds_a_cluster_backend() -> None:
    backend = open_backend("redis://127.0.0.1:7000?cluster=true", prefix="x")
    assert isinstance(backend, RedisBackend) and backend.settings.mode == "cluster"
