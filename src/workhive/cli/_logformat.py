"""The two log line formats of the command line: ``text`` for people, ``json`` for shippers.

``text``: ``2026-01-31T12:00:00.123Z [INFO] message``: a UTC timestamp with milliseconds, then
the line workers have always printed, so a grep for ``[INFO] Registered handler: ...`` still
finds it. A traceback follows on the next lines.

``json``: one object per line, nothing else on the line::

    {"time": "2026-01-31T12:00:00.123Z", "level": "ERROR", "logger": "workhive.task",
     "message": "user:sync failed ...", "task_id": "...", "task": "user:sync",
     "queue": "default", "attempt": 2, "exception": "Traceback (most recent call last): ..."}

``time``, ``level``, ``logger`` and ``message`` are always there; every field a caller passed in
``extra=`` (the task fields :class:`~workhive.middleware.logs.Logs` adds, or an app's
own) follows, and ``exception`` holds the formatted traceback when there is one. A value JSON
cannot carry is written as its ``str()``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


def utc_time(record: logging.LogRecord) -> str:
    """The record's creation time as ISO 8601 UTC with milliseconds and a ``Z``."""
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``<UTC time> [LEVEL] message``, then the traceback if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(levelname)s] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def formatter(name: str) -> logging.Formatter:
    """The formatter called ``name`` (one of :data:`FORMATS`)."""
    return JsonFormatter() if name == "json" else TextFormatter()
