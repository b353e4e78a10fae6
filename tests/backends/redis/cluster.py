"""A private three-master Redis Cluster on loopback, for the cluster tests.

Three ``redis-server --cluster-enabled yes`` processes on free ports (each with its own config
file and directory under a temporary directory), joined with ``redis-cli --cluster create
--cluster-replicas 0``. No replicas, so a stopped master leaves its slots uncovered; the
nodes run with ``cluster-require-full-coverage no`` (the setting docs/redis.md asks for) so the
other masters keep serving theirs. A master can be stopped (kill -9) and restarted on the same
port and directory; with ``durable=True`` every node writes an AOF with ``appendfsync always``,
so a restarted master comes back with every write it acknowledged.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests._procs import StartFailed, start_listening, stop
from tests._services import free_port
from workhive.backends.redis import RedisBackend

NODE_TIMEOUT_MS = 2000


class RedisCluster:
    """Three masters; ``url`` is the ``redis+cluster://`` URL listing all of them."""

    def __init__(self, base: Path, *, durable: bool = False, masters: int = 3) -> None:
        self.base = base
        self.durable = durable
        self.ports = [free_port() for _ in range(masters)]
        self.bus_ports = [free_port() for _ in range(masters)]  # not port + 10000: may be > 65535
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * masters

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        for i in range(len(self.ports)):
            self.start_node(i)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0",
             "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}"
                               f"{created.stderr[-2000:]}")
        for i in range(len(self.ports)):
            self.wait_ok(i)

    def start_node(self, i: int) -> None:
        port = self.ports[i]
        folder = self.base / f"node-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(self.bus_ports[i]),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no",
                "--dir", str(folder), "--save", ""]
        args += (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                 else ["--appendonly", "no"])
        try:
            self.procs[i] = start_listening(args, port, log=folder / "server.log")
        except StartFailed as exc:
            raise RuntimeError(f"redis-server did not start on port {port} ({exc}); "
                               f"see {folder}") from None

    def info(self, i: int) -> dict[str, str]:
        out = subprocess.run(["redis-cli", "-p", str(self.ports[i]), "cluster", "info"],
                             capture_output=True, text=True, timeout=10).stdout
        return dict(line.split(":", 1) for line in out.split() if ":" in line)

    def wait_ok(self, i: int, timeout: float = 60.0) -> None:
        """Until node ``i`` says cluster_state:ok and sees every slot assigned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info(i)
            if info.get("cluster_state") == "ok" and info.get("cluster_slots_assigned") == "16384":
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster node {self.ports[i]} not ok: {self.info(i)}")

    def kill(self, i: int) -> None:
        """kill -9 master ``i`` (its slots stay assigned to it: there is no replica)."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.procs[i] = None

    def restart(self, i: int) -> None:
        """Start master ``i`` again on its port and directory; wait until it serves."""
        self.start_node(i)
        self.wait_ok(i)

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            stop(proc)
            self.procs[i] = None


def have_cluster_tools() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


async def spread_queues(backend: RedisBackend, per_master: int = 1,
                        prefix: str = "q") -> list[str]:
    """Queue names whose slots cover every master, ``per_master`` on each, grouped by master
    (the first ``per_master`` names share one master)."""
    await backend.open()  # reads the slot map
    client = backend._redis()
    by_node: dict[str, list[str]] = {}
    n = 0
    while len(by_node) < 3 or min(len(v) for v in by_node.values()) < per_master:
        name = f"{prefix}{n}"
        node = client.get_node_from_key(backend._keys.tag(name))  # type: ignore[union-attr]
        by_node.setdefault(f"{node.host}:{node.port}", []).append(name)
        n += 1
    return [q for names in by_node.values() for q in names[:per_master]]


def port_of(backend: RedisBackend, queue: str) -> int:
    """The port of the master that holds ``queue``."""
    node = backend._redis().get_node_from_key(backend._keys.tag(queue))  # type: ignore[union-attr]
    return int(node.port)
