"""SIGTERM/SIGINT that arrive while ``workhive worker`` is still starting up.

Why this exists: the worker installs its real handlers once its event loop runs, after
importing workhive (~0.2 s), the app and building the hive. A signal before that used to kill
the process with -15 (or a ``KeyboardInterrupt`` traceback), skipping the graceful path. So the
very first thing ``import workhive`` does *in a ``workhive worker`` process* (and nowhere else:
a library must not take over an application's signals) is to install a handler that only
records the signal; the worker replays what was recorded as soon as its own handlers are in
place (:func:`take`), so a signal at any moment takes the same path.

Only the interpreter's own start-up (before any Python code runs) is out of reach. The
supervisor of ``--processes`` closes that gap for its children: it starts them with both
signals blocked (see :mod:`workhive.cli._lifeline`), and :func:`install` unblocks them after
the recorder is in place, so a signal sent that early is pending, not fatal.

Standard library only: it runs before anything else is imported.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: set by the supervisor in its children's environment (they start with SIGNALS blocked)
SUPERVISOR_ENV = "WORKHIVE_SUPERVISOR_PID"

_pending: list[int] = []
_installed = False


def _record(signum: int, frame: FrameType | None) -> None:
    _pending.append(signum)


def is_cli_worker(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """True in a ``workhive worker`` / ``python -m workhive.cli worker`` process."""
    argv = sys.argv if argv is None else argv
    orig = sys.orig_argv if orig_argv is None else orig_argv
    if not argv:
        return False
    if argv[0] == "-m":  # ``python -m workhive.cli``: argv[0] is "-m" while the package imports
        module = orig[orig.index("-m") + 1] if "-m" in orig[:-1] else ""
        if module not in ("workhive.cli", "workhive.cli.__main__"):
            return False
    elif os.path.basename(argv[0]).removesuffix(".exe") != "workhive":
        return False
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    return command == "worker"


def install() -> None:
    """Record SIGTERM/SIGINT until the worker takes over; only in a worker CLI process."""
    global _installed
    if _installed or not is_cli_worker():
        return
    _installed = True
    for signum in SIGNALS:
        signal.signal(signum, _record)
    if os.environ.get(SUPERVISOR_ENV) and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)  # pending ones arrive now


def take() -> list[int]:
    """The signals recorded so far (oldest first), forgetting them."""
    taken = _pending[:]
    del _pending[: len(taken)]
    return taken


install()  # on import: ``workhive/__init__.py`` imports this module before anything else
