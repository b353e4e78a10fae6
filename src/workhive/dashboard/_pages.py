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
from workhive.inspector import DeadLetterView, TaskView

#: (JSON key, column title, format, link prefix): format is "", rate, ago, secs, ms, list,
#: time, reason or bar (a fraction as a progress bar); both this module and the refresh
#: script understand them. A link prefix ``@field`` links to the row's own ``field`` (a URL).
Col = tuple[str, str, str, str]

QUEUE_COLS: list[Col] = [
    ("queue", "queue", "", "/queues/"), ("ready", "ready", "", ""), ("delayed", "delayed", "", ""),
    ("in_flight", "in-flight", "", ""), ("dead", "dead", "", ""),
    ("processed", "processed", "", ""), ("failed", "failed", "", ""),
    ("processed_per_s", "processed/s", "rate", ""), ("failed_per_s", "failed/s", "rate", ""),
    ("paused", "state", "", ""),
]
WORKER_COLS: list[Col] = [
    ("id", "worker", "", ""), ("host", "host", "", ""), ("pid", "pid", "", ""),
    ("queues", "queues", "list", ""), ("concurrency", "concurrency", "", ""),
    ("in_flight", "in-flight", "", ""), ("processed", "processed", "", ""),
    ("heartbeat_age_s", "heartbeat", "ago", ""), ("uptime_s", "uptime", "secs", ""),
    ("state", "state", "", ""),
]
TASK_COLS: list[Col] = [
    ("task", "task", "", ""), ("queue", "queue", "", ""), ("attempts", "attempts", "", ""),
    ("succeeded", "succeeded", "", ""), ("retried", "retried", "", ""),
    ("dead", "dead", "", ""), ("failure_pct", "failure %", "", ""),
    ("wait_ms_avg", "queue wait", "ms", ""), ("run_ms_avg", "run time (mean)", "ms", ""),
    ("p50_ms", "p50 \u2264", "ms", ""), ("p95_ms", "p95 \u2264", "ms", ""),
]
DEAD_COLS: list[Col] = [
    ("id", "id", "", "/dead/"), ("queue", "queue", "", ""), ("name", "task", "", ""),
    ("attempts", "attempts", "", ""), ("failed_at", "failed at", "time", ""),
    ("reason", "reason", "reason", ""),
]
RUNNING_COLS: list[Col] = [
    ("id", "task id", "", "@href"), ("name", "task", "", ""), ("queue", "queue", "", ""),
    ("worker", "worker", "", ""), ("running_s", "running for", "secs", ""),
    ("progress", "progress", "bar", ""), ("message", "message", "", ""),
]
CRON_COLS: list[Col] = [
    ("job", "job", "", ""), ("schedule", "schedule", "", ""),
    ("next_fire", "next fire", "time", ""), ("next_in_s", "in", "secs", ""),
    ("target", "target", "", ""), ("last_fire", "last fire", "time", ""),
    ("last_ago_s", "ago", "secs", ""), ("last_outcome", "fired", "reason", ""),
    ("last_worker", "fired by", "", ""), ("last_run", "last run", "", ""),
    ("last_run_at", "ended", "time", ""),
]
NAV = [("/", "Overview"), ("/tasks", "Tasks"), ("/workers", "Workers"),
       ("/dead", "Dead letters"), ("/cron", "Cron"), ("/registrations", "Registrations")]


def value(v: Any, kind: str) -> str:
    """Format one cell exactly as the refresh script's ``text()`` does."""
    if v is None:
        return ""
    if kind == "rate":
        return f"{v:.1f}"
    if kind == "ago":
        return f"{duration(v)} ago"
    if kind == "secs":
        return duration(v)
    if kind == "ms":
        return f"{v:.0f} ms" if v < 1000 else duration(v / 1000, precise=True)
    if kind == "list":
        return ",".join(str(x) for x in v)
    if kind == "time":
        return when(v)
    if kind == "bar":
        return f"{v:.0%}"
    return str(v)


def duration(seconds: float, *, precise: bool = False) -> str:
    """``75`` -> ``1m 15s``, ``93784`` -> ``1d 2h``: two units at most, as people read them
    (the refresh script's ``dur()`` does the same). ``precise`` keeps a tenth below a minute."""
    if precise and seconds < 60:
        return f"{seconds:.1f}s"
    total = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def timestamp(ts: float | None) -> Safe:
    """A ``<time>`` the script rewrites in the browser's time zone; UTC until it runs."""
    if ts is None:
        return Safe("")
    return fmt('<time datetime="{iso}">{text} UTC</time>', iso=f"{ts:.3f}", text=when(ts))


def _cell(row: dict[str, Any], col: Col) -> Safe:
    key, _, kind, prefix = col
    if kind == "time" and not prefix:
        return timestamp(row.get(key))
    text = value(row.get(key), kind)
    if kind == "bar" and row.get(key) is not None:
        return progress_bar(row[key])
    if prefix.startswith("@"):
        href = row.get(prefix[1:])
        return link(str(href), text) if href else esc(text)
    if prefix:
        return link(prefix + quote(str(row.get(key, "")), safe=""), text)
    return esc(text)


def progress_bar(fraction: float) -> Safe:
    """A ``<progress>`` bar with the percentage beside it (the script builds the same)."""
    return fmt('<progress max="1" value="{v}"></progress> {text}', v=f"{fraction:.3f}",
               text=value(fraction, "bar"))


def live_table(cols: list[Col], rows: list[dict[str, Any]], *, src: str, key: str,
               empty: str, bad: str = "", select: str = "") -> Safe:
    """A table the script refreshes from ``src`` (rows under ``key``); rows whose ``bad``
    field is positive are highlighted, on the first paint as after a refresh.

    ``select``: the id of a form (:func:`bulk_form`) the rows can be picked for: a first
    column of checkboxes named ``id`` (the row's id) belonging to that form, and one in the
    header that picks them all. The script keeps what is ticked across refreshes."""
    attrs = fmt('data-live="{src}" data-rows="{key}" data-cols="{cols}" data-empty="{empty}" '
                'data-bad="{bad}" data-select="{select}"', src=src, key=key, empty=empty,
                bad=bad, select=select, cols=json.dumps([[c[0], c[2], c[3]] for c in cols]))
    titles: list[str] = [c[1] for c in cols]
    cells = [[_cell(r, c) for c in cols] for r in rows]
    classes = ["reason" if c[2] == "reason" else "" for c in cols]
    if select:
        titles.insert(0, Safe('<input type="checkbox" data-select-all '
                              'aria-label="select every row">'))
        for row, line in zip(rows, cells, strict=True):
            line.insert(0, fmt('<input type="checkbox" name="id" value="{v}" form="{f}" '
                               'aria-label="select">', v=row.get("id", ""), f=select))
        classes.insert(0, "pick")
    return table(titles, cells, empty=empty, attrs=attrs,
                 row_classes=["bad" if bad and (r.get(bad) or 0) > 0 else "" for r in rows],
                 col_classes=classes)


def bulk_form(form_id: str, buttons: list[tuple[str, str, str, bool]], *, back: str) -> Safe:
    """The form the ticked rows of a :func:`live_table` are sent with: one button per action
    (``(action, label, question, danger)``), each posting the ticked ids to its own URL;
    ``back`` is the page to return to."""
    return fmt('<form id="{id}" class="bulk" method="post" action="{first}">'
               '<input type="hidden" name="back" value="{back}">{buttons}</form>',
               id=form_id, first=buttons[0][0], back=back,
               buttons=join(fmt('<button type="submit" formaction="{a}" data-confirm="{q}"'
                                '{cls}>{label}</button> ', a=a, q=q, label=label,
                                cls=Safe(' class="danger"') if danger else Safe(""))
                            for a, label, q, danger in buttons))


def layout(title: str, body: Safe, *, path: str, backend: str, read_only: bool,
           logout: bool = False) -> Safe:
    """The full document: nav bar, ``body``, the CSS, the chart library and the script.

    ``logout``: show the log-out button (the dashboard has a token)."""
    nav = join(fmt('<a href="{href}"{on}>{label}</a>', href=href, label=label,
                   on=Safe(' class="on"') if href == path else Safe(""))
               for href, label in NAV)
    mode = " (read-only)" if read_only else ""
    out = (Safe('<form class="inline" method="post" action="/logout">'
                '<button type="submit">Log out</button></form>') if logout else Safe(""))
    return fmt(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} · workhive</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/vendor/uPlot.min.css">'
        "<style>{css}</style></head><body>"
        '<header><span class="brand">workhive</span>{nav}'
        '<span class="muted">{backend}{mode}</span><span id="live-status"></span>{out}</header>'
        "<main><h1>{title}</h1>{body}</main>"
        '<script src="/static/vendor/uPlot.iife.min.js"></script>'
        "<script>{js}</script></body></html>",
        title=title, css=Safe(CSS), nav=nav, backend=backend, mode=mode, out=out, body=body,
        js=Safe(JS))


def login(*, next_path: str, failed: bool) -> Safe:
    """The login form: one password field for the dashboard token."""
    error = fmt('<p class="error">{e}</p>', e="That token is not right.") if failed else ""
    return fmt('{error}<form method="post" action="/login" class="login">'
               '<input type="hidden" name="next" value="{next}">'
               '<label>Dashboard token <input type="password" name="token" autofocus '
               'autocomplete="current-password" required></label> '
               '<button type="submit">Log in</button></form>'
               '<p class="muted">The token is the one given to <code>workhive dashboard '
               "--token</code> (or WORKHIVE_DASHBOARD_TOKEN).</p>",
               error=error, next=next_path)


def charts(history: dict[str, Any], *, task: str | None = None,
           queue: str | None = None) -> Safe:
    """Range/queue/task pickers and two charts the script draws from ``/api/history``:
    attempts per point (succeeded, failed) and latency (queue wait, run time p50/p95).

    ``queue``: the charts of that one queue (a queue's own page): no queue picker."""
    if not history["available"]:
        return fmt('<p class="muted">The {b} backend keeps no task history, so there are no '
                   "charts (the memory, sqlite, redis and postgres backends keep one).</p>",
                   b=history["backend"])
    ranges = join(fmt('<option value="{r}"{sel}>last {label}</option>', r=r,
                      label={"1h": "hour", "6h": "6 hours", "1d": "day"}[r],
                      sel=Safe(" selected") if r == history["range"] else Safe(""))
                  for r in ("1h", "6h", "1d"))

    def options(name: str, values: list[str], chosen: str | None) -> Safe:
        opts = [fmt('<option value="">all {n}s</option>', n=name)]
        opts += [fmt('<option value="{v}"{sel}>{v}</option>', v=v,
                     sel=Safe(" selected") if v == chosen else Safe("")) for v in values]
        return fmt('<select name="{n}" data-history-filter="{n}">{o}</select>', n=name,
                   o=join(opts))

    return fmt(
        '<form class="chart-controls" id="chart-controls">'
        '<select name="range" data-history-filter="range">{ranges}</select> {queues} {tasks}'
        '</form><div class="charts">'
        '<figure><figcaption>Attempts per point (succeeded / failed)</figcaption>'
        '<div class="chart" data-chart="throughput" data-total="{total}"></div></figure>'
        '<figure><figcaption>Latency, ms (queue wait, run time p50 / p95)</figcaption>'
        '<div class="chart" data-chart="latency"></div></figure></div>',
        ranges=ranges, total=history["total"],
        queues=(fmt('<input type="hidden" name="queue" value="{q}" data-history-filter="queue">',
                    q=queue) if queue else options("queue", history["queues"], None)),
        tasks=options("task", history["tasks"], task))


def overview(queues: dict[str, Any], workers: dict[str, Any], history: dict[str, Any],
             *, paused: set[str] | None, read_only: bool, notice: str = "") -> Safe:
    interval = queues["rate_interval_s"]
    note = ("rates appear from the next refresh" if interval is None
            else f"rates over the last {interval:.1f}s")
    return fmt("{notice}<h2>Queues</h2>{q}<p class=\"muted\">{note}</p>{controls}"
               "<h2>History</h2>{charts}<h2>Workers</h2>{w}",
               notice=fmt('<p class="notice">{n}</p>', n=notice) if notice else "",
               q=live_table(QUEUE_COLS, queues["queues"], src="/api/queues", key="queues",
                            empty="(no queues yet)", bad="dead"),
               note=note,
               controls=queue_controls([q["queue"] for q in queues["queues"]], paused,
                                       read_only=read_only),
               charts=charts(history),
               w=live_table(WORKER_COLS, workers["workers"], src="/api/workers", key="workers",
                            empty="(no live workers)", bad="lost"))


def queue_controls(queues: list[str], paused: set[str] | None, *, read_only: bool) -> Safe:
    """Pause / resume buttons per queue (workers stop fetching a paused queue)."""
    if paused is None:
        return Safe('<p class="muted">This backend cannot pause queues.</p>')
    if read_only or not queues:
        return Safe("")
    rows = []
    for q in queues:
        verb = "resume" if q in paused else "pause"
        rows.append([q, "paused" if q in paused else "running",
                     _form(f"/queues/{quote(q, safe='')}/{verb}", verb.capitalize(),
                           "" if verb == "resume" else
                           f"Pause queue {q!r}? Workers stop fetching it until it is resumed.")])
    return fmt("<details open><summary>Pause / resume</summary>{t}</details>",
               t=table(["queue", "state", ""], rows, empty=""))


def tasks(breakdown: dict[str, Any], history: dict[str, Any], *, task: str | None) -> Safe:
    """Per-task counts, failure rate and latency over the range, above the charts."""
    if not breakdown["available"]:
        return charts(history)
    return fmt("{t}<h2>History{of}</h2>{c}",
               t=live_table(TASK_COLS, breakdown["tasks"],
                            src=f"/api/tasks?{urlencode({'range': breakdown['range']})}",
                            key="tasks", empty="Nothing ran in this range.", bad="dead"),
               of=f" of {task}" if task else "", c=charts(history, task=task))


def workers(data: dict[str, Any]) -> Safe:
    return fmt('{t}<p class="muted">Workers send a heartbeat every 5 s; one silent for over '
               "12 s is marked lost, and disappears when its record expires.</p>"
               "<h2>Running tasks</h2>{r}<p class=\"muted\">As of each worker's last heartbeat; "
               "progress is what a task reported with <code>ctx.progress()</code>.</p>",
               t=live_table(WORKER_COLS, data["workers"], src="/api/workers", key="workers",
                            empty="(no live workers)", bad="lost"),
               r=live_table(RUNNING_COLS, data["running"], src="/api/workers", key="running",
                            empty="No task is running."))


def _form(action: str, label: str, question: str, *, danger: bool = False,
          hidden: dict[str, str] | None = None) -> Safe:
    fields = join(fmt('<input type="hidden" name="{k}" value="{v}">', k=k, v=v)
                  for k, v in (hidden or {}).items())
    return fmt('<form class="inline" method="post" action="{action}" data-confirm="{q}">'
               '{fields}<button type="submit"{cls}>{label}</button></form>',
               action=action, q=question, fields=fields, label=label,
               cls=Safe(' class="danger"') if danger else Safe(""))


def dead_list(rows: list[dict[str, Any]], *, queue: str | None, notice: str,
              read_only: bool, more: str = "", search: str = "") -> Safe:
    """The list (refreshed live), "all" actions, and a link to ``more`` when the page is full."""
    where = f" in queue {queue!r}" if queue else ""
    parts: list[Safe] = [fmt(
        '<form method="get" action="/dead" class="search">{hidden}<input type="search" name="q" '
        'value="{q}" placeholder="task name, id or error text"> <button type="submit">Search'
        "</button></form>", q=search,
        hidden=fmt('<input type="hidden" name="queue" value="{v}">', v=queue) if queue else "")]
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
    params = {k: v for k, v in (("queue", queue), ("q", search)) if v}
    src = "/api/dead" + (f"?{urlencode(params)}" if params else "")
    if not read_only:
        parts.append(dead_bulk_form("/dead" + (f"?{urlencode(params)}" if params else "")))
    parts.append(live_table(DEAD_COLS, rows, src=src, key="dead_letters",
                            empty="The dead-letter queue is empty.",
                            select="" if read_only else BULK_FORM))
    if more:
        parts.append(fmt("<p>{a}</p>", a=link(more, "next page")))
    return join(parts)


BULK_FORM = "bulk"


def dead_bulk_form(back: str) -> Safe:
    """Replay / purge the ticked dead letters, then return to ``back``."""
    return bulk_form(BULK_FORM, [
        ("/dead/replay-selected", "Replay selected", "Replay the selected dead letters?", False),
        ("/dead/purge-selected", "Purge selected", "Delete the selected dead letters for good?",
         True)], back=back)


def dead_detail(view: DeadLetterView, data: dict[str, Any], *, read_only: bool,
                all_frames: bool = False) -> Safe:
    meta = table(["", ""], [
        ["id", data["id"]], ["queue", data["queue"]], ["task", data["name"]],
        ["kind", data["kind"] or ""], ["failed at", timestamp(data["failed_at"])],
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
    parts.append(attempts(data["history"], all_frames=all_frames))
    return join(parts)


def attempts(history: list[dict[str, Any]], *, all_frames: bool) -> Safe:
    """Each failed attempt: when, the error, and its traceback (framework frames hidden
    unless ``all_frames``)."""
    parts: list[Safe] = []
    hidden_total = 0
    for record in history:
        parts.append(fmt("<h3>Attempt {n} at {at}: {error}</h3>", n=record["attempt"] + 1,
                         at=timestamp(record["at"]), error=record["error"]))
        if record["traceback"]:
            text, hidden = ((record["traceback"], 0) if all_frames
                            else trim_traceback(record["traceback"]))
            hidden_total += hidden
            parts.append(fmt("<pre>{tb}</pre>", tb=text.rstrip()))
    if hidden_total:
        parts.append(fmt('<p class="muted">{n} frame(s) of workhive and asyncio hidden: {a}</p>',
                         n=hidden_total, a=link("?frames=all", "show every frame")))
    return join(parts)


STATE_TITLES = {"ready": "pending", "delayed": "scheduled / retrying", "in_flight": "in flight",
                "dead": "dead"}


def task_cols(queue: str, state: str = "ready") -> list[Col]:
    """The task list's columns (ids link to the task's page in ``queue``); running tasks
    also show their worker, running time and progress."""
    base = f"/queues/{quote(queue, safe='')}/tasks/"
    cols: list[Col] = [("id", "id", "", base), ("name", "task", "", ""),
                       ("attempt", "attempt", "", "")]
    if state == "in_flight":
        cols += [("worker", "worker", "", ""), ("running_s", "running for", "secs", ""),
                 ("progress", "progress", "bar", ""), ("message", "message", "", ""),
                 ("at", "lease ends", "time", "")]
    else:
        cols.append(("at", "due", "time", ""))
    return [*cols, ("enqueued_at", "enqueued", "time", ""),
            ("last_error", "last error", "reason", "")]


def queue_page(data: dict[str, Any], counts: dict[str, int], history: dict[str, Any], *,
               can_browse: bool, read_only: bool, backend: str, can_cancel: bool = False,
               notice: str = "") -> Safe:
    """One queue: a tab per state with its count, a search box, a page of tasks, paging, and
    the queue's own charts below."""
    return fmt("{tasks}<h2>History of queue {q}</h2>{charts}",
               tasks=_queue_tasks(data, counts, can_browse=can_browse, read_only=read_only,
                                  backend=backend, can_cancel=can_cancel, notice=notice),
               q=data["queue"], charts=charts(history, queue=data["queue"]))


def _queue_tasks(data: dict[str, Any], counts: dict[str, int], *, can_browse: bool,
                 read_only: bool, backend: str, can_cancel: bool, notice: str) -> Safe:
    queue, state, search = data["queue"], data["state"], data["search"]
    base = f"/queues/{quote(queue, safe='')}"
    tabs = join(fmt('<a href="{href}"{on}>{title} ({n})</a>', title=STATE_TITLES[st],
                    n=counts.get(st, 0), href=f"{base}?{urlencode({'state': st})}",
                    on=Safe(' class="on"') if st == state else Safe(""))
                for st in STATE_TITLES)
    parts = [fmt('<nav class="tabs">{t}</nav>', t=tabs)]
    if notice:
        parts.append(fmt('<p class="notice">{n}</p>', n=notice))
    if state != "dead" and not can_browse:
        parts.append(fmt('<p class="muted">The {b} backend cannot list the tasks of a queue '
                         "(memory, sqlite, redis and postgres can); the counts above come "
                         "from its statistics.</p>", b=backend))
        return join(parts)
    parts.append(fmt(
        '<form method="get" action="{base}" class="search"><input type="hidden" name="state" '
        'value="{state}"><input type="search" name="q" value="{q}" placeholder="task name, id '
        'or error text"> <button type="submit">Search</button>{clear}</form>',
        base=base, state=state, q=search,
        clear=link(f"{base}?{urlencode({'state': state})}", " clear") if search else ""))
    query = {"state": state, "offset": data["offset"], "limit": data["limit"]}
    if search:
        query["q"] = search
    cols = DEAD_COLS if state == "dead" else task_cols(queue, state)
    what = "dead letters" if state == "dead" else f"{STATE_TITLES[state]} tasks"
    empty = (f"No {what} match {search!r}." if search else f"No {what} in queue {queue!r}.")
    back = f"{base}?{urlencode({'state': state})}"
    select = ""
    if read_only:
        pass
    elif state == "dead":
        parts.append(dead_bulk_form(back))
        select = BULK_FORM
    elif can_cancel:
        label, question = (("Cancel selected", "Ask the workers running the selected tasks to "
                            "stop them?") if state == "in_flight" else
                           ("Delete selected", "Delete the selected tasks for good?"))
        parts.append(bulk_form(BULK_FORM, [(f"{base}/tasks/delete-selected", label, question,
                                            True)], back=back))
        select = BULK_FORM
    parts.append(live_table(cols, data["tasks"], src=f"/api{base}/tasks?{urlencode(query)}",
                            key="tasks", empty=empty, select=select))
    parts.append(pager(base, query, data["total"], len(data["tasks"])))
    return join(parts)


def pager(base: str, query: dict[str, Any], total: int, shown: int) -> Safe:
    """"21-40 of 123" with previous / next links."""
    offset, limit = int(query["offset"]), int(query["limit"])
    links = []
    if offset > 0:
        links.append(link(f"{base}?{urlencode({**query, 'offset': max(offset - limit, 0)})}",
                          "\u2190 previous"))
    if offset + shown < total:
        links.append(link(f"{base}?{urlencode({**query, 'offset': offset + limit})}",
                          "next \u2192"))
    span = f"{offset + 1}\u2013{offset + shown} of {total}" if shown else f"0 of {total}"
    return fmt('<p class="pager">{span} {links}</p>', span=span, links=join(links, " "))


def task_detail(view: TaskView, data: dict[str, Any], *, read_only: bool, can_cancel: bool,
                all_frames: bool = False, running: dict[str, Any] | None = None,
                status: dict[str, Any] | None = None) -> Safe:
    """A stored task: where it stands, payload, headers, attempts; delete / run now.

    ``running``: what its worker's heartbeat says (worker, running time, progress);
    ``status``: its result record, when it asked for one."""
    state = data["state"]
    rows: list[list[object]] = [
        ["id", data["id"]], ["queue", data["queue"]], ["task", data["name"]],
        ["state", STATE_TITLES[state]], ["attempt", data["attempt"]],
        ["lease ends" if state == "in_flight" else "due", timestamp(data["at"])],
        ["enqueued", timestamp(data["enqueued_at"])],
        ["priority", data["priority"]],
        ["max retries", "the task's default" if data["max_retries"] is None
         else data["max_retries"]],
    ]
    if running:
        rows += [["worker", running["worker"]],
                 ["running for", value(running["running_s"], "secs")],
                 ["started", timestamp(running["started_at"])]]
        if running["progress"] is not None:
            rows.append(["progress", fmt("{bar} {m}", bar=progress_bar(running["progress"]),
                                         m=running["message"])])
    parts = [table(["", ""], rows, empty="")]
    if status:
        parts.append(status_table(status))
    base = f"/queues/{quote(data['queue'], safe='')}/tasks/{quote(view.id, safe='')}"
    if not read_only:
        buttons = []
        if state == "delayed":
            buttons.append(_form(base + "/run-now", "Run now", ""))
        if can_cancel:
            label = "Cancel" if state == "in_flight" else "Delete"
            question = ("Ask the worker running this task to stop it?" if state == "in_flight"
                        else "Delete this task for good?")
            buttons.append(_form(base + "/delete", label, question, danger=True))
        parts.append(fmt("<p>{b}</p>", b=join(buttons)))
    if view.envelope is None:
        parts.append(fmt('<p class="error">The stored message could not be decoded: {e}</p>',
                         e=view.decode_error))
        return join(parts)
    payload = json.dumps(data["payload"], indent=2, default=repr, ensure_ascii=False)
    parts.append(fmt("<h2>Payload</h2><pre>{p}</pre>", p=payload))
    parts.append(fmt("<h2>Headers</h2>{t}", t=table(
        ["header", "value"], sorted(data["headers"].items()), empty="(no headers)")))
    parts.append(fmt("<h2>Failed attempts ({n})</h2>", n=len(data["history"])))
    parts.append(attempts(data["history"], all_frames=all_frames))
    return join(parts)


def status_table(status: dict[str, Any]) -> Safe:
    """A task's result record: state, progress, value or error (``handle.status()``)."""
    rows: list[list[object]] = [["state", status["state"]], ["attempt", status["attempt"]],
                                ["updated", timestamp(status["updated_at"] or None)]]
    if status["progress"] is not None:
        rows.append(["progress", fmt("{bar} {m}", bar=progress_bar(status["progress"]),
                                     m=status["message"])])
    if status["state"] == "succeeded":
        rows.append(["value", fmt("<pre>{v}</pre>", v=json.dumps(
            status["value"], indent=2, default=repr, ensure_ascii=False))])
    if status["error_type"] or status["error_message"]:
        rows.append(["error", ": ".join(x for x in (status["error_type"],
                                                      status["error_message"]) if x)])
    parts = [fmt("<h2>Result record</h2>{t}", t=table(["", ""], rows, empty=""))]
    if status["traceback"]:
        text, _ = trim_traceback(status["traceback"])
        parts.append(fmt("<pre>{tb}</pre>", tb=text.rstrip()))
    return join(parts)


def finished_task(queue: str, task_id: str, status: dict[str, Any]) -> Safe:
    """A task no longer in its queue whose result record is still kept."""
    return fmt('<p class="muted">Task {id} is no longer in queue {q}; its result record '
               "says how it ended.</p>{t}", id=task_id, q=queue, t=status_table(status))


_FRAMEWORK = ("/workhive/", "/asyncio/", "/concurrent/futures/", "/contextvars", "/functools")


def trim_traceback(text: str) -> tuple[str, int]:
    """The traceback without the frames of workhive, asyncio and the executor (the user's own
    code is what they came to read), and how many frames were dropped."""
    out: list[str] = []
    hidden = 0
    skipping = False
    for line in text.splitlines():
        stripped = line.lstrip()
        if line.startswith("  File "):
            skipping = any(part in line for part in _FRAMEWORK)
            hidden += skipping
            if skipping:
                continue
        elif skipping and line.startswith("    ") and not stripped.startswith("File "):
            continue  # the source line (and carets) of a hidden frame
        else:
            skipping = False
        out.append(line)
    return "\n".join(out), hidden


def cron(data: dict[str, Any], *, has_app: bool, read_only: bool, notice: str = "") -> Safe:
    empty = "No cron jobs registered." if has_app else (
        "No cron jobs: they are declared in code, start the dashboard with --app to see them.")
    parts = [fmt('<p class="notice">{n}</p>', n=notice) if notice else Safe(""),
             live_table(CRON_COLS, data["jobs"], src="/api/cron", key="jobs", empty=empty,
                        bad="failed"),
             Safe('<p class="muted">The last fire is what the worker that fired it reports in '
                  "its heartbeat, the last run what the worker that ran the job's task does; "
                  "both are forgotten when those workers are no longer running.</p>")]
    if not read_only and data["jobs"]:
        rows = [[j["job"], j["target"],
                 _form(f"/cron/{quote(j['job'], safe='')}/trigger", "Trigger now",
                       f"Run cron job {j['job']!r} now (its schedule is unaffected)?")]
                for j in data["jobs"]]
        parts.append(fmt("<h2>Run now</h2>{t}", t=table(["job", "target", ""], rows, empty="")))
    return join(parts)


def registrations(rows: Sequence[dict[str, Any]], *, has_app: bool) -> Safe:
    empty = "Nothing registered." if has_app else (
        "Nothing registered: start the dashboard with --app to see the app's declarations.")
    return table(["kind", "name", "module", "detail", "flag", "enabled"],
                 [[r["kind"], r["name"], r["module"], r["detail"], r["flag"] or "",
                   "yes" if r["enabled"] else "no (flag off)"] for r in rows], empty=empty)


def message(text: str) -> Safe:
    return fmt('<p class="error">{t}</p>', t=text)
