"""Crash recovery: kill -9 a real worker process mid-stream and restart it."""

from __future__ import annotations

import asyncio
import collections
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commandlog.commands import CreatePost
from workhive.commandlog import Executor
from workhive.commandlog.sqlite import SQLiteMessageLog

pytestmark = [pytest.mark.integration, pytest.mark.sqlite, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def spawn(db: Path, runs: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.commandlog._killable_worker", str(db), str(runs)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def effects(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM effects").fetchone()[0])


async def wait_effects(db: Path, at_least: int, proc: subprocess.Popen[str]) -> None:
    while effects(db) < at_least:
        assert proc.poll() is None, "worker process died"
        await asyncio.sleep(0.01)


async def test_restart_after_kill_9_resumes_from_checkpoint(tmp_path: Path) -> None:
    db, runs = tmp_path / "app.db", tmp_path / "runs.txt"
    total = 400
    log = SQLiteMessageLog(str(db))
    await log.open()
    try:
        await Executor(log).execute_many([CreatePost(str(i), f"t{i}") for i in range(total)])
    finally:
        await log.close()

    proc = spawn(db, runs)
    await wait_effects(db, 50, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    done_before_restart = effects(db)
    assert done_before_restart < total, "the kill must land mid-stream for this test to mean much"

    proc = spawn(db, runs)
    try:
        await wait_effects(db, total, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0, "SIGTERM stops the worker gracefully"

    with sqlite3.connect(db) as conn:
        rows = [r[0] for r in conn.execute("SELECT message_id FROM effects ORDER BY 1")]
        checkpoint = conn.execute(
            "SELECT last_id FROM workhive_checkpoints WHERE worker = 'effects'"
        ).fetchone()[0]
    assert rows == list(range(1, total + 1)), "every message has exactly one committed effect"
    assert checkpoint == total
    counts = collections.Counter(int(x) for x in runs.read_text().split())
    assert set(counts) == set(range(1, total + 1))
    rerun = sorted(i for i, n in counts.items() if n > 1)
    assert len(rerun) <= 1, f"only the in-flight message may run twice, got {rerun}"
    assert all(i > done_before_restart for i in rerun), "no committed message ran again"
