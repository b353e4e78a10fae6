"""Private server processes for tests: start one, wait until it listens, stop it.

Every test helper that runs a server of its own (nats-server, PgBouncer, Redis Cluster nodes,
Redis Sentinel) starts it the same way: output to a log file the failure message can point at,
then poll its loopback port until it accepts a connection, giving up early when the process
exits. Stopping is ``SIGTERM``, then ``SIGKILL`` if it has not exited within the timeout, so a
wedged server never outlives its test.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class StartFailed(RuntimeError):
    """The process exited, or did not listen in time (it has been stopped)."""


def start_listening(command: Sequence[str], port: int, *, log: Path | None = None,
                    timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Run ``command`` and return once something accepts TCP on ``127.0.0.1:port``.

    Output is appended to ``log`` (discarded without one). Raises :class:`StartFailed`, with
    the process stopped, if it exits first or ``timeout`` seconds pass.
    """
    if log is None:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(proc, port, timeout)
    except BaseException:
        stop(proc)
        raise
    return proc


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise StartFailed(f"exited with {proc.returncode}") from None
            time.sleep(0.02)
    raise StartFailed(f"nothing listened on port {port} within {timeout:g} s")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Terminate ``proc`` and wait for it; kill it if it outlasts ``timeout``. None: nothing."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
