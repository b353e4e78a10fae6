"""Worker processes die with their supervisor (``workhive worker --processes N``).

Why: a supervisor killed with -9 cannot forward anything; its children used to keep running
under PID 1, still consuming, with nobody to stop them. Each child is therefore tied to its
supervisor's life:

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, set between fork and exec (:func:`preexec`):
  the kernel sends the child SIGTERM when the supervisor dies, and the child drains
  gracefully (its unfinished work is released; what is left leased comes back when the lease
  runs out). If the supervisor died before prctl ran, ``getppid()`` has already changed; the
  child then signals itself.
* elsewhere: the child polls ``getppid()`` once a second (:func:`watch_supervisor`).

:func:`preexec` also blocks SIGTERM/SIGINT in the child until workhive has installed its
start-up recorder (:mod:`workhive._startup_signals` unblocks them), so even a signal sent
during the interpreter's own start-up takes the graceful path instead of killing it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

from workhive._startup_signals import SIGNALS, SUPERVISOR_ENV

logger = logging.getLogger("workhive.cli")

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0


def _prctl() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return getattr(libc, "prctl", None)


_PRCTL = _prctl()  # looked up in the supervisor: no dlopen between fork and exec


def has_death_signal() -> bool:
    """True where the kernel can signal a child when its parent dies (Linux)."""
    return _PRCTL is not None


def preexec(supervisor_pid: int) -> None:
    """Run in the child between fork and exec: block the signals, tie it to the supervisor."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != supervisor_pid:  # it died before prctl: nobody will tell us
        os.kill(os.getpid(), signal.SIGTERM)  # pending until workhive unblocks it


def watch_supervisor() -> None:
    """In a supervised child without a death signal, stop when the supervisor goes away."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not supervisor.isdigit() or has_death_signal():
        return
    parent = int(supervisor)

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(_POLL_SECONDS)
        logger.warning("The supervisor (pid %d) is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="workhive-lifeline", daemon=True).start()
