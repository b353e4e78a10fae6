"""Throwaway RabbitMQ vhosts for tests: one per test, so tests never see each other's queues.

Plain functions (no pytest) so any harness can use them, e.g. the conformance suite::

    from tests.backends.rabbitmq.vhosts import rabbitmq_url, create_vhost, delete_vhost

``rabbitmqctl`` must be on PATH and allowed to talk to the node (the tests run as root on the
broker's host). :func:`skip_reason` says why RabbitMQ tests cannot run, or None.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

from tests._services import reachable

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def rabbitmq_url() -> str:
    """The base URL (default vhost) from ``WORKHIVE_TEST_RABBITMQ_URL``."""
    return os.environ.get("WORKHIVE_TEST_RABBITMQ_URL", DEFAULT_URL)


def skip_reason() -> str | None:
    url = rabbitmq_url()
    if not reachable(url):
        return f"rabbitmq is not reachable at {url} (set WORKHIVE_TEST_RABBITMQ_URL)"
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH (needed to create a vhost per test)"
    return None


def _ctl(*args: str) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                         text=True, timeout=60)
    return out.stdout


def create_vhost(prefix: str = "wh") -> str:
    """A new vhost that the URL's user may use fully; returns its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    user = urlsplit(rabbitmq_url()).username or "guest"
    _ctl("add_vhost", name)
    _ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    return name


def delete_vhost(name: str) -> None:
    """Delete a vhost and everything in it (also closes its connections)."""
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True,
                   timeout=60, check=False)


def close_connections(vhost: str, reason: str = "test") -> None:
    """Make the server close every client connection of ``vhost`` (CONNECTION_FORCED)."""
    _ctl("close_all_connections", "-p", vhost, reason)


def vhost_url(vhost: str, base: str | None = None) -> str:
    """``base`` (default :func:`rabbitmq_url`) pointed at ``vhost``."""
    parts = urlsplit(base or rabbitmq_url())
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
