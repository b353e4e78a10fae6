"""The example app: handlers as plain functions, then the whole app under run_until_idle."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import msgspec
import pytest
from examples.userapp.app import create_hive

from workhive import ValidationError
from workhive._envelope import decode
from workhive.backend import SupportsDeadLetters
from workhive.demo import scenario, services
from workhive.demo.services import ADMIN, outbox
from workhive.demo.todos import (
    OverdueCheck,
    UserCreated,
    audit_user_created,
    notify_admin,
    overdue_check_payload,
    remind_overdue,
)
from workhive.demo.user import (
    CrmSync,
    CrmUnavailable,
    ExportUserData,
    PasswordResetEmail,
    WelcomeEmail,
    export_body,
    send_password_reset_email,
    send_welcome_email,
    sync_crm,
)
from workhive.testing import run_until_idle


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("WORKHIVE_BACKEND", "WORKHIVE_FLAG_REPORTS", "USERAPP_OUTBOX"):
        monkeypatch.delenv(var, raising=False)
    services.reset()
    yield
    services.reset()


def test_welcome_and_reset_emails_go_to_the_outbox() -> None:
    send_welcome_email(WelcomeEmail(7, "ada@example.com", "Ada"))
    send_password_reset_email(PasswordResetEmail(7, "ada@example.com", "tok"))
    welcome, reset = outbox.to("ada@example.com")
    assert welcome.kind == "welcome" and "Hi Ada," in welcome.body
    assert reset.kind == "password_reset" and "token=tok" in reset.body


def test_outbox_file_for_other_processes(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                         ) -> None:
    path = f"{tmp_path}/outbox.jsonl"
    monkeypatch.setenv("USERAPP_OUTBOX", path)
    send_welcome_email(WelcomeEmail(1, "a@example.com"))
    with open(path, encoding="utf-8") as fh:
        (line,) = fh.read().splitlines()
    assert json.loads(line)["to"] == "a@example.com"


def test_export_body_formats() -> None:
    assert json.loads(export_body(ExportUserData(1, "a@x.io"))) == {"email": "a@x.io",
                                                                     "user_id": 1}
    assert export_body(ExportUserData(1, "a@x.io", "csv")) == "user_id,email\n1,a@x.io\n"


async def test_sync_crm_always_fails() -> None:
    with pytest.raises(CrmUnavailable, match="user 5"):
        await sync_crm(CrmSync(5))


def test_event_handlers() -> None:
    created = UserCreated("9", "new@x.io", "New")
    notify_admin(created)
    audit_user_created(created)
    (notice,) = outbox.to(ADMIN)
    assert notice.subject == "New user: new@x.io"
    assert [(e.action, e.subject_id) for e in services.audit_log.entries] == [
        ("user.created", "9")]


def test_overdue_check_round_trip() -> None:
    payload = overdue_check_payload()
    check = msgspec.convert(payload, OverdueCheck)  # camelCase on the wire, as in seed 004
    assert check.triggered_at == payload["triggeredAt"]
    assert remind_overdue(check) == 1  # t1 is overdue, t2 is due in 2100
    (mail,) = outbox.to("ops@example.com")
    assert mail.kind == "overdue"


async def test_whole_app_on_memory() -> None:
    hive = create_hive(backend="memory://")
    dropped = 0
    for name, payload in scenario.tasks():
        dropped += not (await hive.enqueue(name, payload)).id
    for event, payload in scenario.events():
        assert await hive.publish(event, payload) == 2
    worker = await run_until_idle(hive)
    assert dropped == 2  # user:generate_user_report, flag "reports" is off
    kinds = Counter(m.kind for m in outbox.messages)
    assert kinds == {"welcome": 6, "password_reset": 3, "export": 2, "admin_notice": 4}
    assert len(services.audit_log.entries) == 4
    assert worker.metrics is not None
    assert worker.metrics.counts["user:sync_crm"].retried == 2
    assert isinstance(hive.backend, SupportsDeadLetters)
    (dead,) = await hive.backend.dead_letters()
    envelope = decode(dead.body)
    assert envelope.name == "user:sync_crm"
    assert len(envelope.history) == 3 and "CrmUnavailable" in dead.reason
    await hive.close()


async def test_bad_payload_fails_at_the_caller() -> None:
    hive = create_hive(backend="memory://")
    with pytest.raises(ValidationError, match="user_id"):
        await hive.enqueue("user:send_welcome_email", {"user_id": "x", "email": "a"})
    with pytest.raises(ValidationError, match="format"):
        await hive.enqueue("user:export_user_data",
                           {"user_id": 1, "email": "a", "format": "xml"})


def test_flags_come_from_the_yaml_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_hive(backend="memory://").disabled == {"user:generate_user_report": "reports"}
    monkeypatch.setenv("WORKHIVE_FLAG_REPORTS", "true")
    hive = create_hive(backend="memory://")
    assert "user:generate_user_report" in hive.tasks and not hive.disabled


async def test_cron_job_publishes_the_overdue_check() -> None:
    from workhive.scheduler.loop import fire

    hive = create_hive(backend="memory://", overdue_schedule="* * * * * */2")
    await hive.open()
    (job,) = hive.crons.values()
    await fire(hive, job, 0.0)
    await run_until_idle(hive)
    assert [m.kind for m in outbox.messages] == ["overdue"]
    await hive.close()
