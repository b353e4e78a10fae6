"""``workhive worker --processes N``: N worker processes under one supervisor.

Why processes: one worker process runs handlers on one event loop (and sync handlers on threads
sharing one GIL); CPU-bound work scales with processes. The supervisor itself runs no
handlers. It starts N ``workhive worker`` children with the same options, restarts a child that
dies (kill -9, OOM) — its leased messages come back to the queue when their lease runs out —
and forwards SIGTERM/SIGINT: the first signal makes every child drain gracefully, a second one
makes them stop at once. A child that keeps dying right after start (a broken app) stops the
supervisor instead of looping forever. Children die with the supervisor, even a kill -9 of it
(:mod:`workhive.cli._lifeline`), and a signal during start-up is honoured, not fatal
(:mod:`workhive._startup_signals`).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from workhive._startup_signals import SIGNALS, SUPERVISOR_ENV, take
from workhive.cli._lifeline import preexec

logger = logging.getLogger("workhive.cli")

_CRASH_WINDOW = 2.0  # a child dying within this many seconds of its start counts as a crash
_MAX_CRASHES = 5


class Supervisor:
    def __init__(self, child_args: Sequence[str], processes: int, *, burst: bool) -> None:
        self.child_args = list(child_args)
        self.processes = processes
        self.burst = burst
        self.children: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self.signals = 0
        self.crashes = 0

    def _spawn(self, index: int) -> None:
        me = os.getpid()
        env = {**os.environ, "WORKHIVE_WORKER_INDEX": str(index), SUPERVISOR_ENV: str(me)}
        cmd = [sys.executable, "-m", "workhive.cli", "worker", *self.child_args]
        # the child dies with us (kill -9 included) and holds signals until it can take them;
        # they are blocked here too while it forks, so a signal between fork and exec stays
        # pending in the child instead of being lost (and ours arrives once the spawn is done)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            proc = subprocess.Popen(cmd, env=env, preexec_fn=functools.partial(preexec, me))
            self.children[index] = (proc, time.monotonic())  # known before a signal can arrive
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        logger.info("Started worker process %d (pid %d)", index, proc.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        logger.info("Received %s: forwarding to %d worker process(es)", name, len(self.children))
        for proc, _ in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Supervise until every child has exited; 0 when all of them exited cleanly."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        for signum in take():  # arrived while we were starting: nothing to forward to yet
            self._on_signal(signum, None)
        try:
            if self.signals:
                return 0
            for index in range(self.processes):
                self._spawn(index)
            worst = 0
            while self.children:
                time.sleep(0.1)
                for index, (proc, started) in list(self.children.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del self.children[index]
                    if self.signals or (self.burst and code == 0):
                        worst = max(worst, abs(code))
                        continue
                    if not self._may_restart(index, proc.pid, code, started):
                        worst = max(worst, abs(code) or 1)
                        self._on_signal(signal.SIGTERM, None)
                        continue
                    self._spawn(index)
            return worst
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _may_restart(self, index: int, pid: int, code: int, started: float) -> bool:
        if time.monotonic() - started < _CRASH_WINDOW:
            self.crashes += 1
        if self.crashes >= _MAX_CRASHES:
            logger.error("Worker process %d keeps dying at start (exit %d); giving up. Run "
                         "without --processes to see why.", index, code)
            return False
        logger.warning("Worker process %d (pid %d) died with exit code %d; restarting",
                       index, pid, code)
        return True
