"""``/healthz`` and ``/readyz``: what they answer, and a real worker going unready while its
Redis is down and ready again when it is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests._services import free_port
from tests.backends.redis.conftest import PrivateRedis, require_redis_server
from tests.ops.conftest import ROOT
from workhive._health import STALE_AFTER, Health, health_routes, start_http_server
from workhive.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[Health, Clock, str]]:
    clock = Clock()
    health = Health(clock=clock)
    server = start_http_server("127.0.0.1", 0, health_routes(health))
    try:
        yield health, clock, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_liveness_follows_the_loop_ticks(served: tuple[Health, Clock, str]) -> None:
    health, clock, base = served
    answer = httpx.get(f"{base}/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "loop": "starting"})
    health.tick()
    clock.now += STALE_AFTER - 0.5
    answer = httpx.get(f"{base}/healthz")
    assert answer.status_code == 200 and answer.json()["loop_idle_seconds"] == STALE_AFTER - 0.5
    clock.now += 1  # no tick for longer than STALE_AFTER: the loop is stuck
    answer = httpx.get(f"{base}/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "stalled"
    assert answer.headers["content-type"] == "application/json"


def test_readiness_needs_an_open_backend_and_a_broker_that_answers(
        served: tuple[Health, Clock, str]) -> None:
    health, _clock, base = served

    def ready() -> tuple[int, str]:
        answer = httpx.get(f"{base}/readyz")
        return answer.status_code, answer.json().get("reason", "")

    assert ready() == (503, "backend not open yet")
    health.opened = True
    assert ready() == (503, "broker not probed yet")
    health.reached()
    assert ready() == (200, "")
    health.failed(ConnectionError("Error 111 connecting to redis://:pw@db:6379.\n Refused."))
    # one line, and never the password a driver echoed
    assert ready() == (503, "broker unreachable: Error 111 connecting to redis://:***@db:6379. "
                            "Refused.")
    health.reached()
    assert ready() == (200, "")
    health.stopping = True
    assert ready() == (503, "shutting down")
    assert httpx.get(f"{base}/metrics").status_code == 404  # health-only: nothing else here


def test_a_busy_port_is_a_config_error(served: tuple[Health, Clock, str]) -> None:
    health, _clock, base = served
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=f"cannot serve HTTP on 127.0.0.1:{port}"):
        start_http_server("127.0.0.1", port, health_routes(health))


# -- a real worker against a Redis the test stops and restarts --------------------------------


def get(url: str) -> tuple[int, str] | None:
    """(status, body) or None while nothing answers."""
    try:
        answer = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return answer.status_code, answer.text


def wait_for(what: str, condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a bound on the wait, not a performance assertion
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, f"the worker exited while waiting for {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metric(base: str, name: str) -> float | None:
    answer = get(f"{base}/metrics")
    if answer is None:
        return None
    for line in answer[1].splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


@pytest.mark.integration
@pytest.mark.redis
@pytest.mark.slow
def test_readiness_follows_a_redis_outage(tmp_path: Path) -> None:
    require_redis_server()
    redis = PrivateRedis(free_port())
    redis.start()
    metrics_port, health_port = free_port(), free_port()
    (tmp_path / "ledger").mkdir()
    env = {**os.environ, "WORKHIVE_BACKEND": redis.url, "PYTHONPATH": str(ROOT),
           "FAULT_LEDGER": str(tmp_path / "ledger")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workhive.cli", "worker", "--app", "tests.faults.app:make_hive",
         "--metrics-port", str(metrics_port), "--health-port", str(health_port),
         "--probe-interval", "0.2"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    health = f"http://127.0.0.1:{health_port}"
    metrics = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_for("ready", lambda: (get(f"{health}/readyz") or (0,))[0] == 200, proc)
        assert (get(f"{health}/healthz") or (0,))[0] == 200
        assert (get(f"{metrics}/readyz") or (0,))[0] == 200  # the metrics port answers too
        assert metric(metrics, "workhive_broker_up") == 1

        redis.stop()
        wait_for("unready", lambda: (get(f"{health}/readyz") or (0,))[0] == 503, proc)
        status, body = get(f"{health}/readyz") or (0, "")
        assert status == 503 and "broker unreachable" in body, body
        assert (get(f"{health}/healthz") or (0,))[0] == 200  # alive all the same
        assert metric(metrics, "workhive_broker_up") == 0

        redis.start()
        wait_for("ready again", lambda: (get(f"{health}/readyz") or (0,))[0] == 200, proc)
        assert metric(metrics, "workhive_broker_up") == 1

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        redis.stop()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert f"Health checks on http://127.0.0.1:{health_port}/healthz and /readyz" in text
    assert "Broker unreachable" in text and "Broker reachable again: ready" in text, text
