"""The work ``workhive demo`` feeds the example app: a batch of tasks and a few events.

Kept beside the app (not in the CLI) so the demo's story lives with the code it exercises:
the report tasks are dropped by the ``reports`` feature flag, the CRM sync fails into the
dead-letter queue, and each ``users.created`` event reaches both the ``mailer`` and ``audit``
groups.
"""

from __future__ import annotations

from typing import Any

from workhive.demo.todos import EVENT_USER_CREATED
from workhive.demo.user import (
    TASK_EXPORT_USER_DATA,
    TASK_GENERATE_USER_REPORT,
    TASK_SEND_PASSWORD_RESET_EMAIL,
    TASK_SEND_WELCOME_EMAIL,
    TASK_SYNC_CRM,
)

NAMES = ["ada", "grace", "linus", "barbara", "ken", "margaret"]


def tasks() -> list[tuple[str, dict[str, Any]]]:
    batch: list[tuple[str, dict[str, Any]]] = []
    for i, name in enumerate(NAMES, start=1):
        batch.append((TASK_SEND_WELCOME_EMAIL,
                      {"user_id": i, "email": f"{name}@example.com", "name": name.title()}))
    for i in (1, 2, 3):
        batch.append((TASK_SEND_PASSWORD_RESET_EMAIL,
                      {"user_id": i, "email": f"{NAMES[i - 1]}@example.com",
                       "reset_token": f"tok-{i:04d}"}))
    batch.append((TASK_EXPORT_USER_DATA, {"user_id": 1, "email": "ada@example.com"}))
    batch.append((TASK_EXPORT_USER_DATA,
                  {"user_id": 2, "email": "grace@example.com", "format": "csv"}))
    batch.append((TASK_GENERATE_USER_REPORT, {"user_id": 1}))
    batch.append((TASK_GENERATE_USER_REPORT, {"user_id": 2, "period": "weekly"}))
    batch.append((TASK_SYNC_CRM, {"user_id": 1}))
    return batch


def events() -> list[tuple[str, dict[str, Any]]]:
    return [(EVENT_USER_CREATED, {"id": str(100 + i), "email": f"new{i}@example.com",
                                  "name": f"New User {i}"}) for i in range(1, 5)]
