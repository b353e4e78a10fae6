"""URL and option parsing for the rabbitmq backend (no server needed)."""

from __future__ import annotations

import pytest

from workhive.backend import Capability
from workhive.backends.rabbitmq import RabbitMQBackend, RabbitMQSettings
from workhive.backends.rabbitmq.topology import MAX_DELAY, Names, delay_route, delay_seconds
from workhive.errors import BackendError, ConfigError


def test_url_parts_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RABBITMQ_PASSWORD", raising=False)
    s = RabbitMQSettings.from_url("amqp://app:s3cret@mq.example:5673/prod")
    assert (s.host, s.port, s.vhost, s.login, s.password, s.tls) == (
        "mq.example", 5673, "prod", "app", "s3cret", False)
    assert (s.exchange, s.queue, s.priority_bands, s.consumer_timeout) == (
        "workhive", "workhive.default", 3, 1800.0)
    assert RabbitMQSettings.from_url("amqp://h").vhost == "/"
    assert RabbitMQSettings.from_url("amqp://h/").vhost == "/"
    assert RabbitMQSettings.from_url("amqp://h/%2F").vhost == "/"
    assert RabbitMQSettings.from_url("amqp://h/a%2Fb").vhost == "a/b"
    tls = RabbitMQSettings.from_url("amqps://h")
    assert (tls.tls, tls.port) == (True, 5671)


def test_options_from_query_and_kwargs() -> None:
    s = RabbitMQSettings.from_url("amqp://h/?exchange=app&priority_bands=5&consumer_timeout=60")
    assert (s.exchange, s.queue, s.priority_bands, s.consumer_timeout) == (
        "app", "app.default", 5, 60.0)
    s = RabbitMQSettings.from_url("amqp://h/", exchange="app", queue="tasks")
    assert (s.exchange, s.queue) == ("app", "tasks")
    # the same value twice is fine; None (an unset YAML key) is ignored
    s = RabbitMQSettings.from_url("amqp://h/?exchange=app", exchange="app", queue=None)
    assert s.queue == "app.default"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("amqp://h/?exchange=a", {"exchange": "b"}, "'exchange' is 'a' in the url but 'b'"),
        ("amqp://h/?prefix=x", {}, "unknown rabbitmq option 'prefix'"),
        ("amqp://h/", {"colour": 1}, "unknown rabbitmq option 'colour'"),
        ("amqp://h/?priority_bands=11", {}, "priority_bands"),
        ("amqp://h/?priority_bands=0", {}, "priority_bands"),
        ("amqp://h/?priority_bands=x", {}, "must be an integer"),
        ("amqp://h/?consumer_timeout=0", {}, "consumer_timeout"),
        ("amqp://h/?exchange=a*b", {}, "exchange"),
        ("redis://h/", {}, "not a rabbitmq url"),
        ("amqp:///vhost", {}, "needs a host"),
    ],
)
def test_bad_settings(url: str, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RabbitMQSettings.from_url(url, **options)


def test_password_from_env_and_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "fromenv-pw")
    s = RabbitMQSettings.from_url("amqp://app@h/v")
    assert s.password == "fromenv-pw"
    assert "fromenv-pw" not in repr(s)
    assert s.redacted_url == "amqp://app:***@h:5672/v"
    url_pw = RabbitMQSettings.from_url("amqp://app:url-pw@h/v")
    assert url_pw.password == "url-pw"  # the URL wins over the environment
    backend = RabbitMQBackend.from_url("amqp://app:p%40ss-w0rd@h/")
    assert backend.settings.password == "p@ss-w0rd"
    assert "p@ss" not in repr(backend) and "p%40ss" not in repr(backend)
    err = backend.settings.error(OSError("auth p@ss-w0rd\nrefused"), "connect")
    assert "p@ss-w0rd" not in str(err) and "\n" not in str(err)


def test_features_follow_options() -> None:
    backend = RabbitMQBackend.from_url("amqp://h/?priority_bands=5&consumer_timeout=600")
    f = backend.features
    assert f.capabilities == {Capability.QUEUE, Capability.DELAY, Capability.PRIORITY,
                              Capability.EVENTS}
    assert (f.lease, f.max_hold, f.priority_bands, f.delay_resolution) == (
        "session", 600.0, 5, 1.0)
    assert backend.name == "rabbitmq"


def test_topology_names_and_delay_keys() -> None:
    names = Names("app", "app.default", 3)
    assert names.physical("default", 2) == "app.default.v1.2"
    assert names.physical("emails", 0) == "app.q.emails.v1.0"
    assert names.physical("@billing", 0) == "app.group.billing.v1"
    assert names.bands_of("@billing") == 1 and names.bands_of("emails") == 3
    exchange, key = delay_route(names, 5, "app.default.v1.0")
    assert exchange == "app.v1.delay.02"  # enters at its highest 1 bit
    assert key == "0." * 25 + "1.0.1.app.default.v1.0"
    assert delay_seconds(0.2) == 1 and delay_seconds(3.0) == 3  # never early
    with pytest.raises(BackendError, match="8.5 years"):
        delay_seconds(MAX_DELAY + 1)
    with pytest.raises(ConfigError):
        names.physical("a#b", 0)
