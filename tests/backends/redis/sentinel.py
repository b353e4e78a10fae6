"""A private master + replica watched by one Sentinel, for the ``redis+sentinel://`` tests.

Three processes on free loopback ports: a master, a replica of it, and ``redis-server
--sentinel`` (quorum 1, ``down-after-milliseconds`` 2000) with a config file of its own in a
temporary directory (Sentinel rewrites it). :meth:`SentinelSet.kill_master` kills the master
with -9; :meth:`SentinelSet.wait_failover` waits until the Sentinel names the replica as the
master.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests._procs import StartFailed, start_listening, stop
from tests._services import free_port

SERVICE = "workhive-test"


class SentinelSet:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}?service_name={SERVICE}"

    def start(self) -> None:
        self._server("master", self.master_port)
        self._server("replica", self.replica_port,
                     "--replicaof", "127.0.0.1", str(self.master_port))
        conf = self.base / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.base}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 2000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n")
        self._launch("sentinel", self.sentinel_port, [str(conf), "--sentinel"])
        self.wait_replicated()

    def _server(self, name: str, port: int, *extra: str) -> None:
        self._launch(name, port, ["--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", str(self.base), *extra])

    def _launch(self, name: str, port: int, args: list[str]) -> None:
        try:
            self.procs[name] = start_listening(["redis-server", *args], port,
                                               log=self.base / f"{name}.log")
        except StartFailed as exc:
            raise RuntimeError(f"{name} did not start on port {port} ({exc}); "
                               f"see {self.base}") from None

    def _cli(self, port: int, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                              text=True, timeout=10).stdout

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Until the replica is linked to the master and has caught up with its offset."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._cli(self.replica_port, "info", "replication")
            master = self._cli(self.master_port, "info", "replication")
            fields = dict(x.split(":", 1) for x in info.split() if ":" in x)
            mfields = dict(x.split(":", 1) for x in master.split() if ":" in x)
            if (fields.get("master_link_status") == "up"
                    and fields.get("master_repl_offset") == mfields.get("master_repl_offset")):
                return
            time.sleep(0.05)
        raise RuntimeError("the replica did not catch up with the master")

    def master_address(self) -> str:
        out = self._cli(self.sentinel_port, "sentinel", "get-master-addr-by-name", SERVICE)
        return ":".join(out.split())

    def kill_master(self) -> None:
        proc = self.procs.pop("master")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def wait_failover(self, timeout: float = 60.0) -> None:
        """Until the Sentinel names the replica and the replica accepts writes."""
        want = f"127.0.0.1:{self.replica_port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            role = self._cli(self.replica_port, "role").split()
            if self.master_address() == want and role[:1] == ["master"]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"no failover: sentinel says {self.master_address()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            stop(proc)
        self.procs.clear()
