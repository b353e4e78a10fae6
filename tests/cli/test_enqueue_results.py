"""``workhive enqueue --store-result / --result-ttl``, followed by ``workhive result ID``.

A shell user enqueues by name (no handler code), a real ``worker --burst`` process runs the
task on a SQLite file, and ``workhive result`` reads back what the handler returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import invoke

CALC_APP = '''
from workhive import Hive, Module

calc = Module("calc")

@calc.task("calc:add", queue="calc")
def add(p: dict) -> int:
    return p["a"] + p["b"]

@calc.task("calc:mul", queue="calc", store_result=True)
def mul(p: dict) -> int:
    return p["a"] * p["b"]

def hive():
    h = Hive(__import__("os").environ["CALC_DB"])
    h.include(calc)
    return h
'''


def _enqueued_id(output: str) -> str:
    """The id from "Follow it with: workhive result ID", which must be printed."""
    follow = [line for line in output.splitlines() if "workhive result " in line]
    assert follow, output
    return follow[-1].rsplit(" ", 1)[-1]


@pytest.mark.integration
@pytest.mark.sqlite
def test_store_result_then_worker_then_result_shows_the_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'calc.db'}"
    kept = invoke("enqueue", "calc:add", '{"a": 2, "b": 3}', "--queue", "calc",
                  "--store-result", "--backend", url)
    assert kept.exit_code == 0, kept.output
    task_id = _enqueued_id(kept.stdout)
    with_ttl = invoke("enqueue", "calc:add", '{"a": 40, "b": 2}', "--queue", "calc",
                      "--result-ttl", "600", "--backend", url)
    assert with_ttl.exit_code == 0, with_ttl.output
    ttl_id = _enqueued_id(with_ttl.stdout)
    plain = invoke("enqueue", "calc:add", '{"a": 1, "b": 1}', "--queue", "calc",
                   "--backend", url, "--json")
    plain_id = json.loads(plain.stdout)["id"]
    (tmp_path / "calcapp.py").write_text(CALC_APP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # --app calcapp:hive is imported from the cwd
    monkeypatch.setenv("CALC_DB", url)
    declared = invoke("enqueue", "calc:mul", '{"a": 6, "b": 7}', "--app", "calcapp:hive")
    assert declared.exit_code == 0, declared.output
    declared_id = _enqueued_id(declared.stdout)  # the task keeps its result: say so

    worker = subprocess.run(
        [sys.executable, "-m", "workhive.cli", "worker", "--app", "calcapp:hive", "--burst"],
        cwd=tmp_path, text=True, capture_output=True, timeout=110,
        env={**os.environ})
    assert worker.returncode == 0, worker.stderr

    shown = invoke("result", task_id, "--backend", url)
    assert shown.exit_code == 0, shown.output
    assert f"{task_id}: succeeded" in shown.stdout
    assert "value: 5" in shown.stdout
    record = json.loads(invoke("result", ttl_id, "--backend", url, "--json").stdout)
    assert (record["state"], record["value"]) == ("succeeded", 42)
    assert json.loads(invoke("result", declared_id, "--backend", url, "--json").stdout)[
        "value"] == 42
    # without either option nothing is kept: the run reads as pending, as documented
    assert json.loads(invoke("result", plain_id, "--backend", url, "--json").stdout)[
        "state"] == "pending"


def test_plain_enqueue_does_not_point_at_workhive_result(mem_url: str) -> None:
    result = invoke("enqueue", "calc:add", '{"a": 1, "b": 1}', "--queue", "calc",
                    "--backend", mem_url)
    assert result.exit_code == 0, result.output
    assert "workhive result" not in result.stdout


def test_result_ttl_must_be_positive(mem_url: str) -> None:
    result = invoke("enqueue", "calc:add", "--queue", "calc", "--result-ttl", "0",
                    "--backend", mem_url)
    assert result.exit_code == 2
    assert "Invalid value for '--result-ttl'" in result.output


def test_store_result_where_results_cannot_be_kept_is_refused() -> None:
    result = invoke("enqueue", "calc:add", "--queue", "calc", "--store-result",
                    "--backend", "noop://")
    assert result.exit_code != 0
    assert "does not support results" in result.output
