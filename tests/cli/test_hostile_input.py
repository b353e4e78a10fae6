"""Bytes that are not UTF-8 and ports out of range: one ``Error:`` line, exit 2, no traceback.

The argv and stdin cases run the real ``python -m workhive.cli`` in a subprocess: only a real
process gets undecodable argv bytes as surrogateescape'd strings, and a real stdin decodes with
the locale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, invoke


def _run(*args: str | bytes, stdin: bytes | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "workhive.cli", *args], cwd=REPO, input=stdin,
                          capture_output=True, timeout=110, env={**os.environ, **(env or {})})


def _one_error_line(stderr: str, expect: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("Error: ")] == [lines[-1]], stderr
    assert expect in lines[-1], stderr


@pytest.mark.parametrize("argv", [
    (b"enqueue", b"\xff", b"{}", b"--queue", b"q", b"--backend", b"memory://x"),
    (b"enqueue", b"t", b'{"name": "\xc3\x28"}', b"--queue", b"q", b"--backend", b"memory://x"),
    (b"publish", b"e", b"{}", b"--backend", b"memory://\xfe"),
    (b"status", b"--backend", b"sqlite:///\xff.db"),
])
def test_non_utf8_argument(argv: tuple[bytes, ...]) -> None:
    proc = _run(*argv)
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc.stderr.decode(errors="replace"), "is not UTF-8 text")


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_non_utf8_stdin(locale: str) -> None:
    proc = _run("enqueue", "t", "-", "--queue", "q", "--backend", "memory://x",
                stdin=b'{"name": "\xff"}', env={"LC_ALL": locale, "PYTHONUTF8": "0"})
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc.stderr.decode(errors="replace"),
                    "PAYLOAD_JSON from stdin is not UTF-8 text (byte 0xff at offset 10)")


def test_utf8_stdin_still_works() -> None:
    proc = _run("enqueue", "t", "-", "--queue", "q", "--backend", "memory://x",
                stdin='{"name": "é"}'.encode())
    assert proc.returncode == 0, proc.stderr


def test_non_utf8_config_file(tmp_path: Path) -> None:
    config = tmp_path / "workhive.yaml"
    config.write_bytes(b"worker:\n  backend: memory\n  # caf\xe9 in latin-1\n")
    result = invoke("status", "--config", str(config))
    assert result.exit_code == 2, result.output
    _one_error_line(result.stderr, "not UTF-8 text (byte 0xe9")


@pytest.mark.parametrize(("url", "expect"), [
    ("redis://localhost:99999/0", "invalid redis url"),
    ("redis://:pw@localhost:65536", "invalid redis url"),
    ("postgresql://x:70000/db", "invalid postgres url"),
    ("postgres://u:pw@x:-1/db", "invalid postgres url"),
])
def test_port_out_of_range(url: str, expect: str) -> None:
    pytest.importorskip("redis" if url.startswith("redis") else "asyncpg")
    for args in (("status", "--backend", url), ("enqueue", "t", "{}", "--queue", "q",
                                                "--backend", url)):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        _one_error_line(result.stderr, expect)
        assert "Port" in result.stderr
        assert ":pw@" not in result.stderr


def test_port_out_of_range_in_a_command_log_url() -> None:
    pytest.importorskip("asyncpg")
    proc = _run("log", "tail", "--log", "postgresql://u:pw@127.0.0.1:70000/db")
    assert proc.returncode == 2, proc.stderr
    stderr = proc.stderr.decode()
    _one_error_line(stderr, "invalid postgres log url")
    assert ":pw@" not in stderr
