"""Users/todos events: ``users.created`` fans out to two groups, and a cron job checks todos.

Every *group* gets its own copy of each event (``mailer`` notifies the admin, ``audit``
records it); workers in one group share the work. The ``todos:overdue_check`` cron job
publishes ``todos.overdue.check`` each tick, and the ``todos`` group emails the assignee of
every overdue todo. The module is built by :func:`build_todos_module` because the schedule is a
parameter: every 5 minutes in production, every 2 seconds in ``workhive demo``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec

from workhive import Module
from workhive.demo import services
from workhive.demo.services import ADMIN, Mail, audit_log, outbox

EVENT_USER_CREATED = "users.created"
EVENT_OVERDUE_CHECK = "todos.overdue.check"
DEFAULT_OVERDUE_SCHEDULE = "*/5 * * * *"


class UserCreated(msgspec.Struct, frozen=True):
    id: str
    email: str
    name: str = ""


class OverdueCheck(msgspec.Struct, frozen=True, rename="camel"):
    triggered_at: str  # "triggeredAt" on the wire, as the Go services send it


def notify_admin(e: UserCreated) -> None:
    outbox.send(Mail(ADMIN, f"New user: {e.email}", f"{e.name or e.email} signed up (#{e.id}).",
                     kind="admin_notice"))


def audit_user_created(e: UserCreated) -> None:
    audit_log.record("user.created", e.id)


def overdue_check_payload() -> dict[str, str]:
    """Called at each cron tick; its return value is the published event."""
    return {"triggeredAt": datetime.now(UTC).isoformat()}


def remind_overdue(e: OverdueCheck) -> int:
    """Email the assignee of each overdue, unfinished todo; returns how many were overdue."""
    now = time.time()
    overdue = [t for t in services.todos if not t.done and t.due < now]
    for todo in overdue:
        outbox.send(Mail(todo.assignee, f"Overdue: {todo.title}",
                         f"Checked at {e.triggered_at}.", kind="overdue"))
    return len(overdue)


def build_todos_module(overdue_schedule: str = DEFAULT_OVERDUE_SCHEDULE) -> Module:
    todos = Module("todos")
    todos.subscribe(EVENT_USER_CREATED, group="mailer")(notify_admin)
    todos.subscribe(EVENT_USER_CREATED, group="audit")(audit_user_created)
    todos.subscribe(EVENT_OVERDUE_CHECK, group="todos")(remind_overdue)
    todos.cron(overdue_schedule, name="todos:overdue_check",
               publish=EVENT_OVERDUE_CHECK)(overdue_check_payload)
    return todos
