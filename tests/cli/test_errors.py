"""Every user error exits 2 with one red line naming the problem, and no traceback without -v."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import APP, invoke, populate


def _fails(*args: str, expect: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expect in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    # the worker logs its startup first; the error itself is exactly one line, the last
    assert [line for line in lines if line.startswith("Error: ")] == [lines[-1]]
    assert expect in lines[-1]
    return lines[-1]


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway module for --app paths that exist but are wrong."""
    name = f"cliapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from workhive import Hive\n"
        "not_a_hive = 42\n"
        "def bad_factory():\n    return 'nope'\n"
        "def good_factory():\n    return Hive('memory://')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_bad_json(mem_url: str) -> None:
    _fails("enqueue", "x", "{bad", "--queue", "q", "--backend", mem_url,
           expect="PAYLOAD_JSON is not valid JSON")
    _fails("publish", "e", "[1,", "--backend", mem_url, expect="PAYLOAD_JSON is not valid JSON")


def test_unknown_task(mem_url: str) -> None:
    _fails("enqueue", "user:nope", "{}", "--app", APP, "--backend", mem_url,
           expect="UnknownTaskError: unknown task 'user:nope'")


def test_invalid_payload_names_the_field(mem_url: str) -> None:
    _fails("enqueue", "user:send_welcome_email", '{"user_id": "x", "email": "a"}', "--app", APP,
           "--backend", mem_url, expect="ValidationError: invalid payload")
    assert "$.user_id" in invoke("enqueue", "user:send_welcome_email", '{"user_id": "x"}',
                                 "--app", APP, "--backend", mem_url).stderr


def test_missing_capability() -> None:
    # noop:// is the "disable" switch (it idles); redis-pubsub really lacks what the app needs
    _fails("worker", "--app", APP, "--backend", "redis-pubsub://127.0.0.1:1/0", "--burst",
           expect="CapabilityError: the 'redis-pubsub' backend does not support")


def test_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "workhive.yaml"
    bad.write_text("worker:\n  concurency: 3\n")
    _fails("enqueue", "x", "--queue", "q", "--config", str(bad),
           expect="unknown key worker.concurency")
    _fails("status", "--config", str(tmp_path / "missing.yaml"), expect="config file not found")
    _fails("status", "--backend", "kafkaa://x", expect="ConfigError: unknown backend 'kafkaa'")


def test_backend_unavailable() -> None:
    pytest.importorskip("redis", reason="the redis extra is not installed")
    _fails("enqueue", "x", "{}", "--queue", "q", "--backend", "redis://127.0.0.1:1/0",
           expect="BackendUnavailable")


def test_bad_app_paths(mem_url: str, app_module: str) -> None:
    base = ("enqueue", "x", "{}", "--queue", "q", "--backend", mem_url, "--app")
    _fails(*base, "no_colon", expect="expected 'package.module:attribute'")
    _fails(*base, "no_such_pkg_zz.mod:hive", expect="no module named 'no_such_pkg_zz'")
    _fails(*base, f"{app_module}:missing", expect="has no attribute 'missing'")
    _fails(*base, f"{app_module}:not_a_hive", expect="is a int, not a Hive")
    _fails(*base, f"{app_module}:bad_factory", expect="the factory returned a str")
    ok = invoke(*base, f"{app_module}:good_factory")
    assert ok.exit_code == 0, ok.output


def test_commands_that_need_an_app() -> None:
    _fails("worker", "--burst", expect="workhive worker needs --app")
    _fails("cron", "list", expect="workhive cron list needs --app")


def test_dlq_errors(mem_url: str) -> None:
    populate(mem_url)
    _fails("dlq", "show", "ffffffff", "--backend", mem_url, expect="no dead letter with id")
    _fails("dlq", "replay", "--backend", mem_url, expect="name dead-letter ids or pass --all")
    _fails("dlq", "purge", "x", "--all", "--backend", mem_url, expect="(not both)")
    _fails("dlq", "replay", "", "--backend", mem_url, expect="an empty dead-letter id")

def test_dlq_ambiguous_prefix(mem_url: str) -> None:
    populate(mem_url, crm_users=(1, 2))
    first, second = (e["id"] for e in json.loads(
        invoke("dlq", "list", "--backend", mem_url, "--json").stdout))
    common = ""
    for a, b in zip(first, second, strict=True):
        if a != b:
            break
        common += a
    assert common, "ids made in one test share their millisecond-timestamp prefix"
    _fails("dlq", "purge", common, "--backend", mem_url, expect="is ambiguous")


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    _fails("status", "--backend", f"sqlite:///{db}", expect="no sqlite database")
    assert not db.exists()


def test_verbose_shows_the_traceback(mem_url: str) -> None:
    result = invoke("-v", "enqueue", "user:nope", "--app", APP, "--backend", mem_url)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: UnknownTaskError")
    per_command = invoke("enqueue", "user:nope", "--app", APP, "--backend", mem_url, "-v")
    assert "Traceback" in per_command.stderr
