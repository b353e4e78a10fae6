"""Logs a person and a log shipper can use: a UTC timestamp on every text line, and
``--log-format json`` (or ``$WORKHIVE_LOG_FORMAT``) writing one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.faults.app import faults
from tests.ops.conftest import ROOT
from workhive import Hive
from workhive.backends.memory import MemoryBackend
from workhive.cli import cli
from workhive.cli._logformat import JsonFormatter

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def fill(url: str) -> None:
    async def go() -> None:
        hive = Hive(url)
        hive.include(faults)
        for i in range(3):
            await hive.enqueue("fault:work", {"i": i})
        await hive.enqueue("fault:retired", {}, queue="default")  # no worker knows it
        await hive.close()

    asyncio.run(go())


@pytest.mark.integration
@pytest.mark.sqlite
@pytest.mark.parametrize("how", ["option", "environment"])
def test_json_lines_from_a_real_worker(tmp_path: Path, how: str) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    fill(url)
    (tmp_path / "ledger").mkdir()
    env = {**os.environ, "WORKHIVE_BACKEND": url, "FAULT_LEDGER": str(tmp_path / "ledger"),
           "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "workhive.cli", "worker", "--app",
            "tests.faults.app:make_hive", "--burst"]
    if how == "option":
        args += ["--log-format", "json"]
    else:
        env["WORKHIVE_LOG_FORMAT"] = "JSON"  # case does not matter
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]  # every line is JSON
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert re.fullmatch(STAMP, line["time"]), line
    messages = [line["message"] for line in lines]
    assert "Registered handler: fault:work" in messages
    assert "Worker server running (backend: sqlite)" in messages
    (dead,) = [line for line in lines if line["level"] == "ERROR"]
    assert dead["logger"] == "workhive.worker"
    assert dead["task"] == "fault:retired" and dead["queue"] == "default"
    assert dead["attempt"] == 0 and len(dead["task_id"]) == 32
    assert "unknown task 'fault:retired'" in dead["message"]


def test_text_lines_carry_a_utc_timestamp_before_the_level() -> None:
    try:
        result = CliRunner().invoke(cli, ["worker", "--app", "tests.faults.app:make_hive",
                                          "--backend", "memory://ops-text", "--burst"],
                                    catch_exceptions=False)
    finally:
        MemoryBackend._instances.pop("ops-text", None)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines and all(re.match(rf"{STAMP} \[(INFO|WARNING|ERROR)\] ", line)
                         for line in lines), lines
    assert any(line.endswith(" [INFO] Registered handler: fault:work") for line in lines), lines


def test_a_bad_log_format_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKHIVE_LOG_FORMAT", "xml")
    result = CliRunner().invoke(cli, ["status", "--backend", "memory://ops-bad"])
    assert result.exit_code == 2
    assert "--log-format" in result.stderr and "'xml' is not one of" in result.stderr


def test_json_carries_extra_fields_and_the_traceback() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        record = logging.LogRecord("workhive.task", logging.ERROR, __file__, 1, "%s crashed",
                                   ("t:x",), sys.exc_info())
    record.task_id, record.when = "abc", object()  # what extra= puts on a record
    line = JsonFormatter().format(record)
    assert "\n" not in line  # one record, one line
    data = json.loads(line)
    assert data["message"] == "t:x crashed" and data["task_id"] == "abc"
    assert data["when"].startswith("<object object")  # not JSON-able: written as str()
    assert data["exception"].startswith("Traceback") and "across lines" in data["exception"]


@pytest.mark.parametrize("verbose", [False, True])
def test_the_error_line_is_json_too(verbose: bool) -> None:
    args = ["enqueue", "nosuch", "{}", "--backend", "memory://ops-err", "--log-format", "json"]
    result = CliRunner().invoke(cli, args + (["-v"] if verbose else []))
    assert result.exit_code == 2
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    last = lines[-1]
    assert (last["level"], last["logger"]) == ("ERROR", "workhive.cli")
    assert last["message"].startswith("Error: UnknownTaskError: unknown task 'nosuch'")
    assert ("exception" in last) is verbose
