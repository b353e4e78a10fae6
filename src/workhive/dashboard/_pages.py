"""The HTML pages, rendered on the server from the same dicts the ``/api`` endpoints return.

Why server-rendered: the first paint must work without JavaScript (and be testable with a
plain HTTP client); the inline script only re-fills the tables marked ``data-live``. Column
definitions (:data:`QUEUE_COLS`...) are shared by both renderers so a refresh never changes
how a value is formatted. Every value goes through :mod:`._html`, which escapes by default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from workhive.dashboard._assets import CSS, JS
from workhive.dashboard._html import Safe, esc, fmt, join, link, table, when
from workhive.inspector import DeadLetterView

#: (JSON key, column title, format, link prefix): format is "", rate, ago, secs, list, time
#: or reason; both this module and the refresh script understand them.
Col = tuple[str, str, str, str]

QUEUE_COLS: list[Col] = [
    ("queue", "queue", "", ""), ("ready", "ready", "", ""), ("delayed", "delayed", "", ""),
    ("in_flight", "in-flight", "", ""), ("dead", "dead", "", ""),
    ("processed", "processed", "", ""), ("failed", "failed", "", ""),
    ("processed_per_s", "processed/s", "rate", ""), ("failed_per_s", "failed/s", "rate", ""),
]
WORKER_COLS: list[Col] = [
    ("id", "worker", "", ""), ("host", "host", "", ""), ("pid", "pid", "", ""),
    ("queues", "queues", "list", ""), ("concurrency", "concurrency", "", ""),
    ("in_flight", "in-flight", "", ""), ("processed", "processed", "", ""),
    ("heartbeat_age_s", "heartbeat", "ago", ""),
]
DEAD_COLS: list[Col] = [
    ("id", "id", "", "/dead/"), ("queue", "queue", "", ""), ("name", "task", "", ""),
    ("attempts", "attempts", "", ""), ("failed_at", "failed at (UTC)", "time", ""),
    ("reason", "reason", "reason", ""),
]
CRON_COLS: list[Col] = [
    ("job", "job", "", ""), ("schedule", "schedule", "", ""),
    ("next_fire", "next fire (UTC)", "time", ""), ("next_in_s", "in", "secs", ""),
    ("target", "target", "", ""),
]
NAV = [("/", "Overview"), ("/dead", "Dead letters"), ("/cron", "Cron"),
       ("/registrations", "Registrations")]


def value(v: Any, kind: str) -> str:
    """Format one cell exactly as the refresh script's ``text()`` does."""
    if v is None:
        return ""
    if kind == "rate":
        return f"{v:.1f}"
    if kind == "ago":
        return f"{v:.0f}s ago"
    if kind == "secs":
        return f"{v:.0f}s"
    if kind == "list":
        return ",".join(str(x) for x in v)
    if kind == "time":
        return when(v)
    return str(v)


def _cell(row: dict[str, Any], col: Col) -> Safe:
    key, _, kind, prefix = col
    text = value(row.get(key), kind)
    if prefix:
        return link(prefix + quote(str(row.get(key, "")), safe=""), text)
    return esc(text)


def live_table(cols: list[Col], rows: list[dict[str, Any]], *, src: str, key: str,
               empty: str, bad: str = "") -> Safe:
    """A table the script refreshes from ``src`` (rows under ``key``); rows whose ``bad``
    field is positive are highlighted, on the first paint as after a refresh."""
    attrs = fmt('data-live="{src}" data-rows="{key}" data-cols="{cols}" data-empty="{empty}" '
                'data-bad="{bad}"', src=src, key=key, empty=empty, bad=bad,
                cols=json.dumps([[c[0], c[2], c[3]] for c in cols]))
    return table([c[1] for c in cols], [[_cell(r, c) for c in cols] for r in rows],
                 empty=empty, attrs=attrs,
                 row_classes=["bad" if bad and (r.get(bad) or 0) > 0 else "" for r in rows],
                 col_classes=["reason" if c[2] == "reason" else "" for c in cols])


def layout(title: str, body: Safe, *, path: str, backend: str, read_only: bool) -> Safe:
    """The full document: nav bar, ``body``, the CSS and the refresh script."""
    nav = join(fmt('<a href="{href}"{on}>{label}</a>', href=href, label=label,
                   on=Safe(' class="on"') if href == path else Safe(""))
               for href, label in NAV)
    mode = " (read-only)" if read_only else ""
    return fmt(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} · workhive</title><style>{css}</style></head><body>"
        '<header><span class="brand">workhive</span>{nav}'
        '<span class="muted">{backend}{mode}</span><span id="live-status"></span></header>'
        "<main><h1>{title}</h1>{body}</main><script>{js}</script></body></html>",
        title=title, css=Safe(CSS), nav=nav, backend=backend, mode=mode, body=body, js=Safe(JS))


def overview(queues: dict[str, Any], workers: dict[str, Any]) -> Safe:
    interval = queues["rate_interval_s"]
    note = ("rates appear from the next refresh" if interval is None
            else f"rates over the last {interval:.1f}s")
    return fmt("<h2>Queues</h2>{q}<p class=\"muted\">{note}</p><h2>Workers</h2>{w}",
               q=live_table(QUEUE_COLS, queues["queues"], src="/api/queues", key="queues",
                            empty="(no queues yet)", bad="dead"),
               note=note,
               w=live_table(WORKER_COLS, workers["workers"], src="/api/workers", key="workers",
                            empty="(no live workers)"))


def _form(action: str, label: str, question: str, *, danger: bool = False,
          hidden: dict[str, str] | None = None) -> Safe:
    fields = join(fmt('<input type="hidden" name="{k}" value="{v}">', k=k, v=v)
                  for k, v in (hidden or {}).items())
    return fmt('<form class="inline" method="post" action="{action}" data-confirm="{q}">'
               '{fields}<button type="submit"{cls}>{label}</button></form>',
               action=action, q=question, fields=fields, label=label,
               cls=Safe(' class="danger"') if danger else Safe(""))


def dead_list(rows: list[dict[str, Any]], *, queue: str | None, notice: str,
              read_only: bool, more: str = "") -> Safe:
    """The list (refreshed live), "all" actions, and a link to ``more`` when the page is full."""
    where = f" in queue {queue!r}" if queue else ""
    parts: list[Safe] = []
    if notice:
        parts.append(fmt('<p class="notice">{n}</p>', n=notice))
    if not read_only:
        hidden = {"queue": queue} if queue else {}
        parts.append(fmt("<p>{a}{b}</p>",
                         a=_form("/dead/replay-all", f"Replay all{where}",
                                 f"Replay every dead letter{where}?", hidden=hidden),
                         b=_form("/dead/purge-all", f"Purge all{where}",
                                 f"Delete every dead letter{where} for good?", danger=True,
                                 hidden=hidden)))
    src = "/api/dead" + (f"?{urlencode({'queue': queue})}" if queue else "")
    parts.append(live_table(DEAD_COLS, rows, src=src, key="dead_letters",
                            empty="The dead-letter queue is empty."))
    if more:
        parts.append(fmt("<p>{a}</p>", a=link(more, "next page")))
    return join(parts)


def dead_detail(view: DeadLetterView, data: dict[str, Any], *, read_only: bool) -> Safe:
    meta = table(["", ""], [
        ["id", data["id"]], ["queue", data["queue"]], ["task", data["name"]],
        ["kind", data["kind"] or ""], ["failed at (UTC)", when(data["failed_at"])],
        ["attempts", data["attempts"]], ["reason", data["reason"]],
    ], empty="")
    parts = [meta]
    if not read_only:
        base = "/dead/" + quote(view.id, safe="")
        parts.append(fmt("<p>{a}{b}</p>",
                         a=_form(base + "/replay", "Replay", "Put this dead letter back on "
                                 f"queue {view.letter.queue!r}?"),
                         b=_form(base + "/purge", "Purge", "Delete this dead letter for good?",
                                 danger=True)))
    if view.envelope is None:
        parts.append(fmt('<p class="error">The stored message could not be decoded: {e}</p>',
                         e=view.decode_error))
        return join(parts)
    payload = json.dumps(data["payload"], indent=2, default=repr, ensure_ascii=False)
    parts.append(fmt("<h2>Payload</h2><pre>{p}</pre>", p=payload))
    parts.append(fmt("<h2>Attempts ({n})</h2>", n=len(data["history"])))
    for record in data["history"]:
        parts.append(fmt("<h3>Attempt {n} at {at} UTC: {error}</h3>", n=record["attempt"] + 1,
                         at=when(record["at"]), error=record["error"]))
        if record["traceback"]:
            parts.append(fmt("<pre>{tb}</pre>", tb=record["traceback"].rstrip()))
    return join(parts)


def cron(data: dict[str, Any], *, has_app: bool) -> Safe:
    empty = "No cron jobs registered." if has_app else (
        "No cron jobs: they are declared in code, start the dashboard with --app to see them.")
    return live_table(CRON_COLS, data["jobs"], src="/api/cron", key="jobs", empty=empty)


def registrations(rows: Sequence[dict[str, Any]], *, has_app: bool) -> Safe:
    empty = "Nothing registered." if has_app else (
        "Nothing registered: start the dashboard with --app to see the app's declarations.")
    return table(["kind", "name", "module", "detail", "flag", "enabled"],
                 [[r["kind"], r["name"], r["module"], r["detail"], r["flag"] or "",
                   "yes" if r["enabled"] else "no (flag off)"] for r in rows], empty=empty)


def message(text: str) -> Safe:
    return fmt('<p class="error">{t}</p>', t=text)
