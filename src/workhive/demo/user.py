"""The user module: four tasks, each behind its own feature flag.

Payloads are msgspec Structs, so a bad enqueue (``user_id="x"``) fails at the caller with the
field named, and the handler receives a typed object. ``user:sync_crm`` always fails (the CRM
is unreachable) with a short backoff, so it retries twice and lands in the dead-letter queue —
the demo uses it to show retries and the DLQ.
"""

from __future__ import annotations

import json
from typing import Literal

import msgspec

from workhive import Module
from workhive.demo.services import ADMIN, Mail, outbox

TASK_SEND_WELCOME_EMAIL = "user:send_welcome_email"
TASK_SEND_PASSWORD_RESET_EMAIL = "user:send_password_reset_email"
TASK_EXPORT_USER_DATA = "user:export_user_data"
TASK_GENERATE_USER_REPORT = "user:generate_user_report"
TASK_SYNC_CRM = "user:sync_crm"

user = Module("user")


class WelcomeEmail(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    name: str = ""


class PasswordResetEmail(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    reset_token: str


class ExportUserData(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    format: Literal["json", "csv"] = "json"


class UserReport(msgspec.Struct, frozen=True):
    user_id: int
    period: Literal["weekly", "monthly"] = "monthly"


class CrmSync(msgspec.Struct, frozen=True):
    user_id: int


@user.task(TASK_SEND_WELCOME_EMAIL, flag="email_notifications", queue="emails", max_retries=5)
def send_welcome_email(p: WelcomeEmail) -> None:
    greeting = f"Hi {p.name}," if p.name else "Hi,"
    outbox.send(Mail(p.email, "Welcome to the app", f"{greeting} your account #{p.user_id} is "
                     "ready.", kind="welcome"))


@user.task(TASK_SEND_PASSWORD_RESET_EMAIL, flag="email_notifications", queue="emails",
           max_retries=5)
def send_password_reset_email(p: PasswordResetEmail) -> None:
    link = f"https://app.example.com/reset?token={p.reset_token}"
    outbox.send(Mail(p.email, "Reset your password", f"Follow {link} within one hour.",
                     kind="password_reset"))


def export_body(p: ExportUserData) -> str:
    """The exported document; a pure function so it is easy to test."""
    record = {"user_id": p.user_id, "email": p.email}
    if p.format == "csv":
        return "user_id,email\n" + f"{p.user_id},{p.email}\n"
    return json.dumps(record, sort_keys=True)


@user.task(TASK_EXPORT_USER_DATA, flag="data_export", queue="exports", timeout=60)
async def export_user_data(p: ExportUserData) -> None:
    outbox.send(Mail(p.email, f"Your data export ({p.format})", export_body(p), kind="export"))


@user.task(TASK_GENERATE_USER_REPORT, flag="reports", queue="exports")
def generate_user_report(p: UserReport) -> None:
    outbox.send(Mail(ADMIN, f"{p.period.title()} report for user {p.user_id}", "(report)",
                     kind="report"))


class CrmUnavailable(ConnectionError):
    """What a real CRM client raises when the service is down."""


@user.task(TASK_SYNC_CRM, queue="default", max_retries=2, retry_backoff=0.05,
           retry_backoff_max=0.2)
async def sync_crm(p: CrmSync) -> None:
    raise CrmUnavailable(f"crm.invalid refused the sync of user {p.user_id}")
