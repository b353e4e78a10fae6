"""The fault tests' rig: real ``workhive worker`` processes on one isolated store.

Shared by ``tests/faults`` and the brokers whose fault tests live in their own folder (Kafka):
the environment names the backend (``WORKHIVE_BACKEND``, ``WORKHIVE_COORDINATION``...), the
app is :mod:`tests.faults.app`, and every run leaves ``start``/``end`` lines in a ledger.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.faults.app import faults
from workhive import Hive

ROOT = Path(__file__).resolve().parents[2]


class Rig:
    """One isolated store, a ledger directory, and helpers to run workers on them."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.ledger = tmp_path / "ledger"
        self.ledger.mkdir()
        self.env = {**os.environ, **env, "FAULT_LEDGER": str(self.ledger),
                    "PYTHONPATH": str(ROOT)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def hive(self) -> Hive:
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("WORKHIVE_")})
        try:
            hive = Hive.from_config()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        hive.include(faults)
        return hive

    def fill(self, n: int, sleep: float = 0.0) -> None:
        async def go() -> None:
            hive = self.hive()
            envs = [hive.build("fault:work", {"i": i, "sleep": sleep}) for i in range(n)]
            for start in range(0, n, 1000):
                await hive.enqueue_many([e for e in envs[start:start + 1000] if e])
            await hive.close()

        asyncio.run(go())

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "workhive.cli", "worker", "--app",
               "tests.faults.app:make_hive", *args]
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def lines(self) -> list[list[str]]:
        out = []
        for f in self.ledger.glob("*.log"):
            out += [[*line.split(), f.stem] for line in f.read_text().splitlines()]
        return out

    def count(self, kind: str, pid: int | None = None) -> Counter[int]:
        """Runs per task of one ``kind`` (start/end), of one worker process if ``pid``."""
        return Counter(int(parts[1]) for parts in self.lines()
                       if parts[0] == kind and (pid is None or parts[3] == str(pid)))

    def wait_for(self, predicate: object, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; ledger: {len(self.lines())}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()


def finish(proc: subprocess.Popen[bytes], timeout: float = 180) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out.decode(errors="replace")
