"""URL parsing, option checks, redaction and error translation (no broker needed for most)."""

from __future__ import annotations

import logging

import pytest

from workhive.backends.kafka import KafkaBackend, KafkaSettings
from workhive.errors import BackendUnavailable, ConfigError


def test_multi_host_url_with_options() -> None:
    s = KafkaSettings.from_url("kafka://a:9092,b:9093,c?topic=app&group=w&partitions=6")
    assert s.brokers == ("a:9092", "b:9093", "c:9092")
    assert (s.topic, s.group, s.partitions) == ("app", "w", 6)
    assert KafkaSettings.from_url("redpanda://r:19092").brokers == ("r:19092",)


def test_options_from_kwargs_and_query_must_agree() -> None:
    assert KafkaSettings.from_url("kafka://h:1?topic=x", topic="x").topic == "x"
    with pytest.raises(ConfigError, match="'topic' is 'x' in the url but 'y'"):
        KafkaSettings.from_url("kafka://h:1?topic=x", topic="y")
    with pytest.raises(ConfigError, match="unknown kafka option 'colour'"):
        KafkaSettings.from_url("kafka://h:1", colour="blue")
    with pytest.raises(ConfigError, match="'partitions' must be an integer"):
        KafkaSettings.from_url("kafka://h:1?partitions=many")
    with pytest.raises(ConfigError, match="'topic' must match"):
        KafkaSettings.from_url("kafka://h:1", topic="bad name")
    with pytest.raises(ConfigError, match="not a kafka url"):
        KafkaSettings.from_url("amqp://h:1")


def test_sasl_and_tls_client_options() -> None:
    s = KafkaSettings.from_url("kafka://bob:pw@h:9093?tls=true&sasl_mechanism=scram-sha-512")
    kwargs = s.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "pw"


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", "from-env")
    assert KafkaSettings.from_url("kafka://bob@h:1").password == "from-env"


async def test_unreachable_broker_is_one_clear_line_without_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = KafkaBackend.from_url("kafka://bob:s3cr3t-pw@127.0.0.1:1?topic=x")
    assert "s3cr3t-pw" not in repr(backend)
    assert "s3cr3t-pw" not in repr(backend.settings)
    with pytest.raises(BackendUnavailable) as info:
        await backend.open()
    message = str(info.value)
    assert "kafka at 127.0.0.1:1 is unavailable" in message
    assert "\n" not in message and "s3cr3t-pw" not in message
    assert "s3cr3t-pw" not in caplog.text
    with pytest.raises(BackendUnavailable):
        await backend.enqueue([])
    await backend.close()
