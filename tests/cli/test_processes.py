"""Real processes: ``python -m workhive.cli worker --burst`` / SIGTERM on a SQLite file, and
``python -m workhive.cli demo`` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import APP, REPO, invoke
from workhive import Hive, Module

pytestmark = pytest.mark.integration

try:
    import workhive.backends.sqlite  # noqa: F401
except ImportError as exc:  # pragma: no cover - until the sqlite backend lands
    SQLITE_MISSING: str | None = f"the sqlite backend is not importable yet: {exc}"
else:
    SQLITE_MISSING = None

needs_sqlite = pytest.mark.skipif(SQLITE_MISSING is not None, reason=SQLITE_MISSING or "")


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO,
         timeout: float = 110) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workhive.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


@needs_sqlite
@pytest.mark.sqlite
def test_worker_burst_drains_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    for args in (("enqueue", "user:send_welcome_email", '{"user_id": 1, "email": "a@x.io"}'),
                 ("enqueue", "user:sync_crm", '{"user_id": 2}'),
                 ("publish", "users.created", '{"id": "3", "email": "n@x.io"}')):
        result = invoke(*args, "--app", APP, "--backend", url)
        assert result.exit_code == 0, result.output
    outbox = tmp_path / "outbox.jsonl"
    proc = _cli("worker", "--app", APP, "--backend", url, "--burst", "--concurrency", "4",
                env={"USERAPP_OUTBOX": str(outbox)})
    assert proc.returncode == 0, proc.stderr
    assert "[INFO] Registered handler: user:send_welcome_email" in proc.stderr
    assert "[INFO] Skipped user:generate_user_report: feature flag 'reports' is off" in proc.stderr
    assert "[INFO] Worker server running (backend: sqlite)" in proc.stderr
    kinds = sorted(json.loads(line)["kind"] for line in outbox.read_text().splitlines())
    assert kinds == ["admin_notice", "welcome"]
    status = json.loads(invoke("status", "--backend", url, "--json").stdout)
    queues = {q["queue"]: q for q in status["queues"]}
    assert queues["emails"]["processed"] == 1
    assert queues["@mailer"]["processed"] == queues["@audit"]["processed"] == 1
    assert queues["default"]["dead"] == 1


SLOW_APP = '''
import time
from pathlib import Path
from workhive import Hive, Module

slow = Module("slow")

@slow.task("slow:nap", max_retries=0)
def nap(p: dict) -> None:
    Path(p["started"]).touch()
    time.sleep(p["seconds"])
    Path(p["done"]).touch()

def hive():
    h = Hive(__import__("os").environ["SLOW_DB"])
    h.include(slow)
    return h
'''


def _start_slow_worker(tmp_path: Path, seconds: float, *extra: str) -> tuple[
        subprocess.Popen[str], Path, Path, str]:
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    started, done = tmp_path / "started", tmp_path / "done"
    producer = Hive(url)
    producer.include(_declaration_only())
    asyncio.run(_enqueue_close(producer, {"started": str(started), "done": str(done),
                                         "seconds": seconds}))
    env = {**os.environ, "SLOW_DB": url, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "workhive.cli", "worker", "--app",
                             "slowapp:hive", *extra], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(2000):  # wait (bounded by the pytest timeout) for the task to start
        if started.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert started.exists(), proc.communicate(timeout=10)
    return proc, started, done, url


def _declaration_only() -> Module:
    m = Module("slow")
    m.task("slow:nap")(lambda p: None)
    return m


async def _enqueue_close(hive: Hive, payload: dict[str, object]) -> None:
    await hive.enqueue("slow:nap", payload)
    await hive.close()


@needs_sqlite
@pytest.mark.sqlite
def test_sigterm_finishes_the_running_task_then_exits_0(tmp_path: Path) -> None:
    proc, _, done, url = _start_slow_worker(tmp_path, 1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert done.exists()
    assert "Received SIGTERM: finishing running tasks" in err
    queues = json.loads(invoke("status", "--backend", url, "--json").stdout)["queues"]
    assert [(q["queue"], q["processed"], q["ready"]) for q in queues] == [("default", 1, 0)]


@needs_sqlite
@pytest.mark.sqlite
def test_second_signal_stops_now_and_returns_the_task(tmp_path: Path) -> None:
    proc, _, done, url = _start_slow_worker(tmp_path, 30.0, "--shutdown-timeout", "60")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "again: stopping now" in err
    assert not done.exists()
    queues = json.loads(invoke("status", "--backend", url, "--json").stdout)["queues"]
    assert [(q["queue"], q["ready"], q["processed"]) for q in queues] == [("default", 1, 0)]


def test_demo_runs_end_to_end() -> None:
    proc = _cli("demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for text in ("Registered (backend: sqlite)", "user:generate_user_report", "2 (reports)",
                 "Subscriber groups", "mailer", "audit", "todos", "Dead-letter queue",
                 "CrmUnavailable", "(after 3 attempts)", "Demo finished"):
        assert text in out, text
    assert "Traceback" not in proc.stderr


def test_demo_runs_from_another_directory_and_keeps_db(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    proc = _cli("demo", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert db.exists()
    assert f"Database kept at {db}" in proc.stdout
