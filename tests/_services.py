"""Where the test brokers live, and what happens when one is missing.

URLs come from ``WORKHIVE_TEST_<NAME>_URL`` with loopback defaults. A missing broker skips the
test with a clear reason locally and fails it when ``CI`` is set, so CI can never go green by
skipping everything.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlparse

import pytest

DEFAULTS = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://postgres@127.0.0.1:5432/test",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
}


#: every RabbitMQ name a test makes outside a private vhost starts with this; unique per test
#: session, so the session-end clean-up (tests/conftest.py) never touches another run's queues
RABBIT_PREFIX = f"whtest{uuid.uuid4().hex[:6]}"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_url(name: str) -> str:
    return os.environ.get(f"WORKHIVE_TEST_{name.upper()}_URL", DEFAULTS[name])


def reachable(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout):
            return True
    except OSError:
        return False


def require_service(name: str) -> str:
    """Return the broker URL, or skip (locally) / fail (CI) with the reason."""
    url = service_url(name)
    if not reachable(url):
        reason = f"{name} is not reachable at {url} (set WORKHIVE_TEST_{name.upper()}_URL)"
        if in_ci():
            pytest.fail(f"CI needs every broker: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for private servers in tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_name(prefix: str = "t") -> str:
    """A name no other test (or test run) uses: queues, key prefixes, tables, databases."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
