"""A running worker survives a PostgreSQL restart: it logs, backs off, reconnects, finishes.

The test runs its own throwaway cluster (initdb into tmp_path, a free port) so stopping it
disturbs nobody; committed rows survive the restart, so every task enqueued must complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests._outage import ride_out_restart
from tests._services import free_port, in_ci
from workhive.backends.postgres import PostgresBackend

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


class PrivatePostgres:
    """A PostgreSQL cluster of our own, run as the ``postgres`` OS user (initdb refuses root)."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins or shutil.which("su") is None:
            self._unavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = bins[-1]
        # not under pytest's tmp_path: its parents are private to root, and the server runs
        # as the postgres user
        self.root = Path(tempfile.mkdtemp(prefix="workhive-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres(f"{self.bin}/initdb -D {self.root}/data -A trust -U postgres")

    @staticmethod
    def _unavailable(reason: str) -> None:
        if in_ci():
            pytest.fail(f"CI needs a private PostgreSQL cluster: {reason}", pytrace=False)
        pytest.skip(reason)

    def _as_postgres(self, command: str, *, setup: bool = True) -> str:
        """Run ``command`` as the postgres user; a failure during setup skips (or fails in
        CI), later it is a test failure carrying the server log."""
        cmd = ["su", "postgres", "-s", "/bin/sh", "-c", command] if os.geteuid() == 0 else [
            "/bin/sh", "-c", command]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            detail = f"{command!r} failed: {(done.stdout + done.stderr).strip()[-500:]}"
            if setup:
                self._unavailable(detail)
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise AssertionError(f"{detail}\nserver log:\n{tail}")
        return done.stdout

    def start(self, *, setup: bool = False) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.root}/data -o '{options}' "
                          f"-l {self.root}/log -w start", setup=setup)

    def stop(self) -> None:
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.root}/data -m fast -w stop",
                          setup=False)

    def stop_quietly(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


async def test_worker_rides_out_a_postgres_restart(caplog: pytest.LogCaptureFixture) -> None:
    server = PrivatePostgres()
    try:
        server.start(setup=True)
    except BaseException:
        server.remove()
        raise
    try:
        await ride_out_restart(PostgresBackend.from_url(server.url), server.stop,
                               server.start, caplog)
    finally:
        await asyncio.to_thread(server.stop_quietly)
        server.remove()
