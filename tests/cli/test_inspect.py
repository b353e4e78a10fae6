"""``workhive status``, ``dlq list|show|replay|purge`` and ``cron list`` through CliRunner."""

from __future__ import annotations

import json
import time

from tests.cli.conftest import APP, invoke, populate


def _queues(url: str) -> dict[str, dict[str, int]]:
    data = json.loads(invoke("status", "--backend", url, "--json").stdout)
    return {q["queue"]: q for q in data["queues"]}


def _dead_id(url: str) -> str:
    (entry,) = json.loads(invoke("dlq", "list", "--backend", url, "--json").stdout)
    return str(entry["id"])


def test_status_table_and_json(mem_url: str) -> None:
    populate(mem_url)
    table = invoke("status", "--backend", mem_url)
    assert table.exit_code == 0, table.output
    for text in ("Queues (memory)", "emails", "default", "in-flight", "Workers"):
        assert text in table.stdout
    queues = _queues(mem_url)
    assert queues["emails"]["processed"] == 1
    assert queues["default"]["dead"] == 1
    assert queues["default"]["failed"] == 3  # two retries and the final failure


def test_status_with_app_lists_the_apps_empty_queues(mem_url: str) -> None:
    data = json.loads(invoke("status", "--app", APP, "--backend", mem_url, "--json").stdout)
    assert {q["queue"] for q in data["queues"]} >= {"emails", "exports", "@mailer", "@todos"}


def test_status_watch_reports_rates(mem_url: str) -> None:
    populate(mem_url)
    result = invoke("status", "--backend", mem_url, "--watch", "--json", "--count", "2",
                    "--interval", "0.1")
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert "processed_per_s" not in first["queues"][0]
    assert all("processed_per_s" in q for q in second["queues"])
    rich_result = invoke("status", "--backend", mem_url, "--watch", "--count", "2",
                         "--interval", "0.1")
    assert rich_result.exit_code == 0
    assert "processed/s" in rich_result.stdout


def test_dlq_list_and_show_with_history(mem_url: str) -> None:
    populate(mem_url)
    listing = invoke("dlq", "list", "--backend", mem_url)
    assert listing.exit_code == 0
    assert "user:sync_crm" in listing.stdout and "CrmUnavailable" in listing.stdout
    dead_id = _dead_id(mem_url)
    shown = invoke("dlq", "show", dead_id[:20], "--backend", mem_url)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert f"Dead letter {dead_id}" in out
    assert '"user_id": 7' in out
    assert "attempts:  3" in out
    for n in (1, 2, 3):
        assert f"-- attempt {n} at" in out
    assert out.count("Traceback (most recent call last)") == 3
    assert "crm.invalid refused the sync of user 7" in out
    data = json.loads(invoke("dlq", "show", dead_id, "--backend", mem_url, "--json").stdout)
    assert data["payload"] == {"user_id": 7}
    assert [h["attempt"] for h in data["history"]] == [0, 1, 2]


def test_dlq_replay_by_id_puts_it_back(mem_url: str) -> None:
    populate(mem_url)
    result = invoke("dlq", "replay", _dead_id(mem_url), "--backend", mem_url)
    assert result.exit_code == 0, result.output
    assert "Replayed 1 dead letter(s)" in result.stdout
    queues = _queues(mem_url)
    assert queues["default"]["dead"] == 0 and queues["default"]["ready"] == 1
    assert "empty" in invoke("dlq", "list", "--backend", mem_url).stdout


def test_dlq_replay_all_in_queue_and_purge(mem_url: str) -> None:
    populate(mem_url)
    other = invoke("dlq", "replay", "--all", "--queue", "emails", "--backend", mem_url)
    assert "Replayed 0 dead letter(s)" in other.stdout
    purged = invoke("dlq", "purge", "--all", "--backend", mem_url)
    assert purged.exit_code == 0
    assert "Purged 1 dead letter(s)" in purged.stdout
    assert json.loads(invoke("dlq", "list", "--backend", mem_url, "--json").stdout) == []


def test_dlq_purge_by_id(mem_url: str) -> None:
    populate(mem_url)
    result = invoke("dlq", "purge", _dead_id(mem_url), "--backend", mem_url)
    assert "Purged 1 dead letter(s)" in result.stdout


def test_cron_list(mem_url: str) -> None:
    result = invoke("cron", "list", "--app", APP, "--backend", mem_url)
    assert result.exit_code == 0, result.output
    for text in ("todos:overdue_check", "*/5 * * * *", "publish todos.overdue.check"):
        assert text in result.stdout
    (job,) = json.loads(invoke("cron", "list", "--app", APP, "--json").stdout)
    assert job["job"] == "todos:overdue_check"
    assert time.time() < job["next_fire"] <= time.time() + 300
