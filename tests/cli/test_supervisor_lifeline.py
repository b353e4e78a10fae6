"""``workhive worker``: children die with a killed supervisor; a signal during start-up is
graceful.

Real processes on a SQLite file. Waits are polls with generous timeouts; nothing here depends on
how fast the machine is, except that a signal must arrive after the process exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from workhive import Hive, Module

psutil = pytest.importorskip("psutil")

pytestmark = [pytest.mark.integration, pytest.mark.sqlite]

PATIENCE = 60.0

NAPS_APP = '''
import asyncio, os
from pathlib import Path
from typing import Any
from workhive import Hive, Module

naps = Module("naps")

@naps.task("naps:nap", max_retries=0)
async def nap(p: dict) -> None:
    Path(p["dir"], f"started-{p['i']}-{os.getpid()}").touch()
    await asyncio.sleep(p["seconds"])
    Path(p["dir"], f"done-{p['i']}").touch()

def hive():
    h = Hive(os.environ["NAPS_DB"])
    h.include(naps)
    return h
'''


def _setup(tmp_path: Path, tasks: int, seconds: float) -> tuple[dict[str, str], str]:
    (tmp_path / "napsapp.py").write_text(NAPS_APP)
    url = f"sqlite:///{tmp_path / 'naps.db'}"
    declared = Module("naps")
    declared.task("naps:nap")(lambda p: None)
    producer = Hive(url)
    producer.include(declared)

    async def fill() -> None:
        for i in range(tasks):
            await producer.enqueue("naps:nap", {"dir": str(tmp_path), "i": i, "seconds": seconds})
        await producer.close()

    asyncio.run(fill())
    env = {**os.environ, "NAPS_DB": url, "PYTHONPATH": str(tmp_path)}
    return env, url


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_leftovers() -> Any:
    """A failed test must not leave workers consuming, nor pipes for a later test to trip on."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        proc.kill()
        proc.communicate()


def _worker(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "workhive.cli", "worker", "--app",
                             "napsapp:hive", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _STARTED.append(proc)
    return proc


def _wait_for(what: str, check: object) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_children_die_with_a_killed_supervisor_and_their_work_comes_back(
        tmp_path: Path) -> None:
    env, _ = _setup(tmp_path, tasks=6, seconds=1.0)
    supervisor = _worker(tmp_path, env, "--processes", "2", "--concurrency", "1")
    children: list[Any] = []
    try:
        _wait_for("both children to run a task",
                  lambda: len({p.name.rsplit("-", 1)[1] for p in tmp_path.glob("started-*")}) >= 2)
        children = psutil.Process(supervisor.pid).children()
        assert len(children) == 2
        supervisor.kill()  # -9: it cannot forward anything
        supervisor.wait(PATIENCE)
        _, alive = psutil.wait_procs(children, timeout=PATIENCE)
        assert alive == [], f"orphaned workers still running: {alive}"
    finally:
        for child in children:  # only on failure: do not leave them consuming
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        supervisor.kill()
        supervisor.communicate(timeout=PATIENCE)
    burst = _worker(tmp_path, env, "--burst")
    _, err = burst.communicate(timeout=PATIENCE * 2)
    assert burst.returncode == 0, err
    assert sorted(p.name for p in tmp_path.glob("done-*")) == [f"done-{i}" for i in range(6)]


def _handles_sigterm(pid: int) -> bool:
    """The process has a SIGTERM handler installed (Linux: SigCgt in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("processes", ["1", "2"])
def test_sigterm_during_start_up_is_graceful(tmp_path: Path, delay: float,
                                             processes: str) -> None:
    """From the first line of workhive's code on (the interpreter's own boot is out of reach:
    no process can handle a signal before it runs any code), SIGTERM exits 0 cleanly."""
    env, _ = _setup(tmp_path, tasks=1, seconds=0.1)
    started = time.monotonic()
    proc = _worker(tmp_path, env, "--processes", processes)
    _wait_for("workhive's start-up handler", lambda: _handles_sigterm(proc.pid)
              or proc.poll() is not None)
    time.sleep(max(0.0, delay - (time.monotonic() - started)))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_children_take_a_signal_sent_as_soon_as_they_exist(tmp_path: Path) -> None:
    """The supervisor starts its children with SIGTERM blocked until workhive can take it:
    forwarded the moment they exist (still in the interpreter's boot), it is not fatal."""
    env, _ = _setup(tmp_path, tasks=1, seconds=0.1)
    proc = _worker(tmp_path, env, "--processes", "2")
    _wait_for("the children", lambda: len(psutil.Process(proc.pid).children()) == 2
              or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)  # forwarded to both children at once
    _, err = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
