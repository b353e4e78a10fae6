"""``workhive enqueue`` / ``workhive publish`` through CliRunner."""

from __future__ import annotations

import asyncio
import json

from tests.cli.conftest import APP, invoke
from workhive.backends import open_backend
from workhive.backends.memory import MemoryBackend


def _stats(url: str) -> dict[str, tuple[int, int]]:
    backend = open_backend(url)
    assert isinstance(backend, MemoryBackend)
    return {s.queue: (s.ready, s.delayed) for s in asyncio.run(backend.stats())}


def test_enqueue_validates_against_the_app_and_stores(mem_url: str) -> None:
    result = invoke("enqueue", "user:send_welcome_email", '{"user_id": 3, "email": "c@x.io"}',
                    "--app", APP, "--backend", mem_url)
    assert result.exit_code == 0, result.output
    assert "Enqueued user:send_welcome_email" in result.stdout
    assert _stats(mem_url) == {"emails": (1, 0)}


def test_enqueue_json_output_and_idempotency_key(mem_url: str) -> None:
    args = ("enqueue", "user:sync_crm", '{"user_id": 1}', "--app", APP, "--backend", mem_url,
            "-k", "crm-1")
    first = json.loads(invoke(*args, "--json").stdout)
    assert first["duplicate"] is False and first["id"]
    second = invoke(*args)
    assert second.exit_code == 0
    assert f"Duplicate of {first['id']}" in second.stdout


def test_enqueue_flag_disabled_task_is_reported_as_dropped(mem_url: str) -> None:
    result = invoke("enqueue", "user:generate_user_report", '{"user_id": 1}', "--app", APP,
                    "--backend", mem_url, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"task": "user:generate_user_report", "id": None,
                                         "duplicate": False, "dropped_by_flag": "reports"}
    assert _stats(mem_url) == {}
    human = invoke("enqueue", "user:generate_user_report", '{"user_id": 1}', "--app", APP,
                   "--backend", mem_url)
    assert "Dropped user:generate_user_report: feature flag 'reports' is off" in human.stdout


def test_enqueue_without_app_needs_queue_and_honours_delay_priority(mem_url: str) -> None:
    result = invoke("enqueue", "billing:charge", '{"cents": 5}', "--queue", "billing",
                    "--delay", "3600", "--priority", "5", "--backend", mem_url)
    assert result.exit_code == 0, result.output
    assert _stats(mem_url) == {"billing": (0, 1)}


def test_enqueue_reads_payload_from_stdin(mem_url: str) -> None:
    result = invoke("enqueue", "user:sync_crm", "-", "--app", APP, "--backend", mem_url,
                    input='{"user_id": 9}')
    assert result.exit_code == 0, result.output
    assert _stats(mem_url) == {"default": (1, 0)}


def test_publish_reaches_both_groups(mem_url: str) -> None:
    result = invoke("publish", "users.created", '{"id": "1", "email": "n@x.io"}', "--app", APP,
                    "--backend", mem_url)
    assert result.exit_code == 0, result.output
    assert "Published users.created to 2 group(s)" in result.stdout
    assert _stats(mem_url) == {"@audit": (1, 0), "@mailer": (1, 0)}


def test_publish_with_no_bound_group_warns(mem_url: str) -> None:
    result = invoke("publish", "nobody.listens", "--backend", mem_url, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"event": "nobody.listens", "groups": 0}
    human = invoke("publish", "nobody.listens", "--backend", mem_url)
    assert "no subscriber group is bound" in human.stdout
