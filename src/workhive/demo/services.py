"""Stand-ins for the app's real dependencies: a mail outbox and an audit log.

Handlers "send" email by appending to :data:`outbox`, so the demo runs anywhere, fast, and
tests can assert on what would have been sent. Set ``USERAPP_OUTBOX=/path/file.jsonl`` to also
append each message as a JSON line — that is how a test sees what a worker *subprocess* sent.
Sync handlers run in a thread pool, hence the lock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str
    kind: str = "mail"


@dataclass
class Outbox:
    """Everything the app would have emailed, in order."""

    messages: list[Mail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, mail: Mail) -> None:
        with self._lock:
            self.messages.append(mail)
            path = os.environ.get("USERAPP_OUTBOX")
            if path:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(asdict(mail)) + "\n")

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.messages if m.to == address]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    subject_id: str
    at: float


@dataclass
class AuditLog:
    """Append-only record of what happened to whom (an action log, in memory)."""

    entries: list[AuditEntry] = field(default_factory=list)

    def record(self, action: str, subject_id: str) -> None:
        self.entries.append(AuditEntry(action, subject_id, time.time()))


@dataclass(frozen=True, slots=True)
class Todo:
    id: str
    title: str
    assignee: str
    due: float
    done: bool = False


ADMIN = "admin@example.com"

outbox = Outbox()
audit_log = AuditLog()
#: The todo list the overdue check scans: one overdue item, one that is not due yet.
todos: list[Todo] = [
    Todo("t1", "Renew TLS certificate", "ops@example.com", due=0.0),
    Todo("t2", "Plan the next release", "pm@example.com", due=4_102_444_800.0),  # year 2100
]


def reset() -> None:
    """Forget everything sent and logged (tests and the demo start clean)."""
    outbox.clear()
    audit_log.entries.clear()
