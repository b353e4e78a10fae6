"""``workhive._redact``: every URL form a backend takes loses its password, nothing else."""

from __future__ import annotations

import pytest

from workhive._redact import netloc_password, redact, redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:pw@h/0?prefix=app", "redis://user:***@h/0?prefix=app"),
    ("rediss://u:p@ss@h/0", "rediss://u:***@h/0"),  # unquoted "@": urlsplit's last-@ rule
    ("postgresql://u:pw@h:70000/db", "postgresql://u:***@h:70000/db"),  # unparseable port
    ("postgresql://u@h/db?sslmode=require&password=pw", "postgresql://u@h/db?sslmode=require"
     "&password=***"),
    ("host=h port=5432 password=pw dbname=x", "host=h port=5432 password=*** dbname=x"),
    ("host=h password='p w' dbname=x", "host=h password=*** dbname=x"),
    ("amqp://guest:guest@localhost:5672/vh", "amqp://guest:***@localhost:5672/vh"),
    ("nats://u:p%40w@h:4222?token=t0k", "nats://u:***@h:4222?token=***"),
    ("kafka://h:9092?sasl_plain_password=pw&topic=t", "kafka://h:9092?sasl_plain_password=***"
     "&topic=t"),
    ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
])
def test_passwords_are_masked(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("url", [
    "redis://h:6379/0", "redis://h:6379/0?x=a@b", "postgresql://u@h/db", "sqlite:///a:b@c.db",
    "memory://x", "", "not a url", "sqlite:///workhive.db?synchronous=FULL",
])
def test_urls_without_a_password_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_a_password_held_apart_is_shown_as_set() -> None:
    assert redact_url("redis://h:6379/0", password="pw") == "redis://:***@h:6379/0"
    assert redact_url("postgresql://u@h/db", password="pw") == "postgresql://u:***@h/db"
    assert redact_url("unix:///s.sock?db=0", password="pw") == "unix:///s.sock?db=0"


def test_redact_masks_known_secrets_in_free_text() -> None:
    text = "FATAL: password hunter2 (hunter%2F2) rejected for redis://u:x@h"
    assert redact(text, "hunter2", "hunter/2", None) == \
        "FATAL: password *** (***) rejected for redis://u:***@h"


def test_netloc_password_reads_urls_that_do_not_parse() -> None:
    assert netloc_password("redis://u:pw@h:99999/0") == "pw"
    assert netloc_password("redis://h:99999/0") is None
    assert netloc_password("garbage") is None
