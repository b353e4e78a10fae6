"""The example app run the way its users run it, once per backend they switch between.

Each test copies ``examples/userapp/config/`` (``featureflags.yaml`` + ``config.yaml``), names
the backend in ``featureflags.yaml`` as a user would (``asynq``, ``rabbitmq``, ``redpanda``,
``disable``), and starts a real ``workhive worker`` process on it. The environment only points
at the test brokers and makes every name unique (Redis key prefix, RabbitMQ exchange and queue,
Kafka topic and group). The test process enqueues the user module's tasks through the same
config, waits until the worker sent the mail (the app's ``USERAPP_OUTBOX`` file), checks the
startup log, then SIGTERMs the worker and expects a clean exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from examples.userapp.app import create_hive

from tests._services import RABBIT_PREFIX, require_service, unique_name
from tests.backends.kafka.tansu import Broker
from workhive import load_config
from workhive.demo import scenario
from workhive.demo.user import (
    TASK_EXPORT_USER_DATA,
    TASK_GENERATE_USER_REPORT,
    TASK_SEND_PASSWORD_RESET_EMAIL,
    TASK_SEND_WELCOME_EMAIL,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
APP = "examples.userapp.app:hive"
EXAMPLE_CONFIG = REPO / "examples" / "userapp" / "config"
SEED_TASKS = (TASK_SEND_WELCOME_EMAIL, TASK_SEND_PASSWORD_RESET_EMAIL, TASK_EXPORT_USER_DATA,
              TASK_GENERATE_USER_REPORT)
#: what the worker must send for scenario.tasks() (reports are off) and one users.created event
EXPECTED = Counter({"welcome": 6, "password_reset": 3, "export": 2, "admin_notice": 1})
#: variables the worker must not inherit from whoever runs the tests
FOREIGN_ENV = ("REDIS_URL", "RABBITMQ_URL", "KAFKA_BROKERS", "DATABASE_URL", "NATS_URL")
#: a safety net against hangs, not a performance claim
DEADLINE = 90.0


@dataclass
class Run:
    """One backend's worker process and everything needed to talk to it."""

    backend: str
    config: Path
    env: dict[str, str]
    outbox: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("WORKHIVE_") and k not in FOREIGN_ENV}
        env.update(self.env, USERAPP_OUTBOX=str(self.outbox))
        with self.log.open("wb") as log:
            # --config names config.yaml: featureflags.yaml beside it comes along
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workhive.cli", "worker", "--app", APP,
                 "--config", str(self.config / "config.yaml")],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, what: str, done: Callable[[], bool]) -> None:
        assert self.process is not None
        deadline = time.monotonic() + DEADLINE
        while not done():
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}) before {what}:\n"
                            f"{self.text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {DEADLINE:.0f}s:\n{self.text()}")
            time.sleep(0.05)

    def sent(self) -> Counter[str]:
        if not self.outbox.exists():
            return Counter()
        return Counter(json.loads(line)["kind"]
                       for line in self.outbox.read_text().splitlines() if line)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=DEADLINE)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def configure(tmp_path: Path, backend: str) -> Path:
    """The example's config directory with ``backend`` chosen in featureflags.yaml."""
    directory = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, directory)
    flags = directory / "featureflags.yaml"
    text, count = re.subn(r"^(  backend: )\S+", rf"\g<1>{backend}", flags.read_text(),
                          count=1, flags=re.MULTILINE)
    assert count == 1, "featureflags.yaml has no worker.backend line"
    flags.write_text(text)
    return directory


@pytest.fixture
def make_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Run]]:
    """Build a :class:`Run`; the test process gets the same environment as the worker."""
    runs: list[Run] = []

    def make(backend: str, env: dict[str, str]) -> Run:
        for var in [*FOREIGN_ENV, *(k for k in os.environ if k.startswith("WORKHIVE_"))]:
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        run = Run(backend, configure(tmp_path, backend), env, tmp_path / "outbox.jsonl",
                  tmp_path / "worker.log")
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.kill()


@pytest.fixture
def redis_prefix() -> Iterator[dict[str, str]]:
    """Redis under a prefix of its own (the asynq backend, and the coordination store the
    example names for rabbitmq and redpanda); its keys are deleted afterwards."""
    url, prefix = require_service("redis"), unique_name("userapp")
    yield {"REDIS_URL": url, "WORKHIVE_REDIS_PREFIX": prefix}
    from workhive.backends.redis import RedisBackend

    asyncio.run(RedisBackend.from_url(url, prefix=prefix).wipe())


async def produce(config: Path) -> list[Any]:
    """What the app's API would do: enqueue the user module's tasks, publish one event."""
    hive = create_hive(load_config(config))
    try:
        results = [await hive.enqueue(name, payload) for name, payload in scenario.tasks()
                   if name in SEED_TASKS]
        name, payload = scenario.events()[0]
        await hive.publish(name, payload)
    finally:
        await hive.close()
    return results


def check_startup_log(run: Run) -> str:
    """The seed's startup lines, in its order, naming the backend as configured."""
    log = run.text()
    lines = ["[INFO] Setting up task registrations...",
             "[INFO] Registered handler: user:send_welcome_email",
             "[INFO] Registered handler: user:send_password_reset_email",
             "[INFO] Registered handler: user:export_user_data",
             "[INFO] Skipped user:generate_user_report: feature flag 'reports' is off",
             "[INFO] Registering all tasks with worker server...",
             f"[INFO] Worker server running (backend: {run.backend})"]
    positions = [log.find(line) for line in lines]
    missing = [line for line, at in zip(lines, positions, strict=True) if at < 0]
    assert not missing, f"missing startup lines {missing}:\n{log}"
    assert positions[0] < positions[1] < positions[5] < positions[6], log
    return log


def run_seed_tasks(run: Run) -> str:
    """Start the worker, feed it, wait for the mail, stop it; returns its log."""
    run.start()
    running = f"Worker server running (backend: {run.backend})"
    run.wait_for(f"'{running}'", lambda: running in run.text())
    results = asyncio.run(produce(run.config))
    dropped = [r for r in results if not r.id]
    assert len(dropped) == 2  # the two user:generate_user_report tasks: flag 'reports' is off
    run.wait_for(f"all mail ({dict(EXPECTED)})", lambda: run.sent() >= EXPECTED)
    assert run.stop() == 0, run.text()
    log = check_startup_log(run)
    assert re.search(r"\[INFO\] Worker \S+ stopped \(\d+ processed\)", log), log
    assert "Traceback" not in log and "[ERROR]" not in log, log
    sent = run.sent()
    assert sent["report"] == 0 and sent - Counter({"overdue": sent["overdue"]}) == EXPECTED
    return log


@pytest.mark.redis
def test_asynq(make_run: Callable[..., Run], redis_prefix: dict[str, str]) -> None:
    run_seed_tasks(make_run("asynq", redis_prefix))


@pytest.mark.rabbitmq
@pytest.mark.redis
def test_rabbitmq(make_run: Callable[..., Run], redis_prefix: dict[str, str]) -> None:
    amqp = require_service("rabbitmq")
    exchange = unique_name(RABBIT_PREFIX)
    log = run_seed_tasks(make_run("rabbitmq", {
        **redis_prefix, "RABBITMQ_URL": amqp, "WORKHIVE_RABBITMQ_EXCHANGE": exchange,
        "WORKHIVE_RABBITMQ_QUEUE": f"{exchange}.tasks_queue"}))
    password = amqp.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    if password:
        assert f":{password}@" not in log


@pytest.mark.kafka
@pytest.mark.redis
def test_redpanda(make_run: Callable[..., Run], redis_prefix: dict[str, str],
                  kafka_broker: Broker) -> None:
    tag = unique_name("userapp")
    run_seed_tasks(make_run("redpanda", {
        **redis_prefix, "KAFKA_BROKERS": kafka_broker.url.split("://", 1)[1].split("?")[0],
        "WORKHIVE_KAFKA_TOPIC": f"t{tag}", "WORKHIVE_KAFKA_GROUP": f"g{tag}",
        "WORKHIVE_KAFKA_SESSION_TIMEOUT": "1"}))


def test_disable(make_run: Callable[..., Run]) -> None:
    """``backend: disable``: the worker starts, says tasks are off, and stops cleanly; an
    enqueue is accepted and dropped. Nothing is reachable at REDIS_URL: disable needs no
    broker and no coordination store."""
    run = make_run("disable", {"REDIS_URL": "redis://127.0.0.1:1/0"})
    run.start()
    disabled = "Worker server running (backend: disable): background tasks are disabled"
    run.wait_for("the 'tasks are disabled' line", lambda: disabled in run.text())
    results = asyncio.run(produce(run.config))
    accepted = [r for r in results if r.id]  # the flag still drops the two reports first
    assert len(accepted) == 11 and not any(r.duplicate for r in accepted)
    assert run.stop() == 0, run.text()
    log = run.text()
    for line in ("[INFO] Registered handler: user:send_welcome_email",
                 "[INFO] Skipped user:generate_user_report: feature flag 'reports' is off",
                 "[INFO] Received SIGTERM: stopping",
                 "[INFO] Worker stopped (backend: disable, tasks disabled)"):
        assert line in log, log
    assert "Traceback" not in log and "[ERROR]" not in log, log
    assert run.sent() == Counter()  # nothing ran: not in the worker, not in this process
