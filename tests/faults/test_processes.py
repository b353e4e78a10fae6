"""``workhive worker --processes N``: a killed child is replaced, SIGTERM drains all of them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.faults.rig import Rig, finish

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_supervisor_restarts_a_killed_child_and_drains_on_sigterm(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"WORKHIVE_BACKEND": f"sqlite:///{tmp_path / 'p.db'}"})
    n = 400
    rig.fill(n, sleep=0.01)
    parent = rig.worker("--processes", "2", "--concurrency", "5", "--lease", "2")
    try:
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while len(children) < 2 and time.monotonic() < deadline:
            children = psutil.Process(parent.pid).children()
            time.sleep(0.05)
        rig.wait_for(lambda: sum(rig.count("end").values()) >= 50)
        victim = children[0]
        victim.kill()  # kill -9 one worker process mid-run
        rig.wait_for(lambda: set(rig.count("end")) == set(range(n)))
        survivors = {p.pid for p in psutil.Process(parent.pid).children()}
        assert victim.pid not in survivors and len(survivors) == 2  # replaced
        parent.send_signal(signal.SIGTERM)
        output = finish(parent)
    finally:
        rig.stop_all()
    assert parent.returncode == 0, output
    assert "died with exit code -9; restarting" in output, output
    assert "forwarding to 2 worker process(es)" in output
    for pid in survivors:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
