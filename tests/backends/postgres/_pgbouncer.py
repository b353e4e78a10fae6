"""A private PgBouncer (Debian's ``pgbouncer``) in transaction pooling mode, for tests that
check the backend and the command log work through a pooler as managed PostgreSQL is usually
reached.

It listens on a free loopback port in front of the test PostgreSQL, with ``auth_type = trust``
(the test server trusts loopback too), ``pool_mode = transaction``, and every database name
forwarded. PgBouncer refuses to run as root, so under root it drops to ``nobody`` (``-u``),
and its files live in a directory of their own that user can read (pytest's ``tmp_path`` is
private to root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests._procs import StartFailed, start_listening, stop
from tests._services import free_port, in_ci

_CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {root}/users.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = {pool}
ignore_startup_parameters = extra_float_digits
admin_users = {user}
"""


def binary() -> str:
    """The ``pgbouncer`` executable, or skip (fail under CI): ``apt-get install pgbouncer``."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        reason = "pgbouncer is not installed (apt-get install -y pgbouncer)"
        if in_ci():
            pytest.fail(f"CI needs pgbouncer: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


class PgBouncer:
    """One pgbouncer process in front of the PostgreSQL at ``server_url``.

    :attr:`url` is ``server_url`` with host and port swapped for the pooler's; the user and
    database stay. ``pool`` is the number of server connections per (user, database): small,
    so many clients really share few sessions.
    """

    def __init__(self, server_url: str, *, pool: int = 8) -> None:
        self.server_url = server_url
        parts = urlsplit(server_url)
        self.user = parts.username or "postgres"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="workhive-pgbouncer-"))
        self.root.chmod(0o755)
        (self.root / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(_CONFIG.format(
            host=parts.hostname or "127.0.0.1", port=parts.port or 5432, listen=self.port,
            root=self.root, pool=pool, user=self.user,
        ))
        self.proc: subprocess.Popen[bytes] | None = None
        netloc = f"{self.user}@127.0.0.1:{self.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def start(self) -> None:
        command = [binary(), str(self.root / "pgbouncer.ini")]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "nobody"]
        try:
            self.proc = start_listening(command, self.port, log=self.root / "pgbouncer.log",
                                        timeout=10)
        except StartFailed as exc:
            raise RuntimeError(f"pgbouncer did not start ({exc}): {self.log()}") from None

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
