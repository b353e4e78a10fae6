"""``create_app(hive)``: the Starlette app behind ``workhive dashboard``.

Routes (HTML pages and the ``/api`` JSON they are rendered from)::

    GET  /                  /api/queues, /api/workers      queues with rates; charts; workers
                            /api/history?range=&queue=&task=  chart series (1h, 6h, 1d)
    GET  /tasks?range=&task= /api/tasks?range=             per-task counts and latency
    GET  /workers           /api/workers                    workers, uptime, lost ones, and
                                                            running tasks with their progress
    GET  /queues/{q}?state=&q=&offset=  /api/queues/{q}/tasks?... one queue's tasks by state,
                                                            and its charts
    GET  /queues/{q}/tasks/{id}         /api/queues/{q}/tasks/{id} payload, headers, attempts,
                                        its worker and progress, its result record
    POST /queues/{q}/tasks/{id}/delete|run-now  (and under /api)
    POST /queues/{q}/tasks/delete-selected      (and under /api) form ``id``s or JSON ``ids``
    GET  /dead              /api/dead?queue=&q=&limit=&offset= dead letters (q: search)
    GET  /dead/{id}         /api/dead/{id}                  payload, error, every attempt
    GET  /cron              /api/cron                       cron jobs, next and last fire
    GET  /registrations     /api/registrations              tasks, subscribers, cron, flags
    POST /dead/{id}/replay|purge    /api/dead/{id}/replay|purge
    POST /dead/replay-all|purge-all /api/dead/replay-all|purge-all  (form/query ``queue``)
    POST /dead/replay-selected|purge-selected  (and under /api) form ``id``s or JSON ``ids``
    POST /queues/{q}/pause|resume   /api/queues/{q}/pause|resume
    POST /cron/{job}/trigger        /api/cron/{job}/trigger
    GET|POST /login, POST /logout   (only with a token, see :mod:`._auth`)
    GET  /static/...                the chart library (uPlot) and its licence

Why the POST guards: a dashboard on localhost is reachable by any web page the user visits,
and a plain HTML form may be POSTed cross-site. So a POST whose ``Origin`` (or
``Sec-Fetch-Site``) says it came from another site is refused with 403, as is every POST when
the app is read-only. Non-browser clients (curl, scripts) send neither header and are allowed.
A page on a rebinding DNS name would pass that check, hence ``allowed_hosts``: the CLI sets it
to the loopback names when it listens on loopback, so such requests get 400.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from workhive.dashboard import _pages as pages
from workhive.dashboard._assets import SECURITY_HEADERS
from workhive.dashboard._auth import COOKIE, TokenAuth, safe_next, session_value, token_matches
from workhive.dashboard._board import RANGES, Board, status_json
from workhive.dashboard._html import Safe
from workhive.errors import BackendUnavailable, CapabilityError, WorkhiveError
from workhive.hive import Hive
from workhive.inspector import (
    DeadLetterNotFound,
    TaskNotFound,
    TaskView,
    dead_letter_json,
    task_json,
)

Endpoint = Callable[[Request], Awaitable[Response]]
STATIC = Path(__file__).parent / "static"


class _JSON(JSONResponse):
    """JSON that survives payloads msgpack can hold and JSON cannot (bytes...): ``repr``."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"),
                          default=repr).encode("utf-8")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, not {raw!r}") from None
    return min(max(number, lo), hi)


def _cross_site(request: Request) -> bool:
    """True when a browser says this request came from another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


async def _form_field(request: Request, name: str) -> str | None:
    """One field of a urlencoded form body (our forms have no files, so no python-multipart
    dependency just for ``request.form()``)."""
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return None
    values = parse_qs((await request.body()).decode("utf-8", "replace")).get(name)
    return values[0] if values else None


#: the most ids one bulk action takes (a page of the task browser is at most 500 rows)
MAX_SELECTED = 1000


async def _selected_ids(request: Request) -> list[str]:
    """The ids a bulk action was given: form fields ``id`` (the pages' checkboxes) or a JSON
    body ``{"ids": [...]}`` (scripts); 400 when there are none, too many or not strings."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HTTPException(400, "the body is not valid JSON") from None
        ids = body.get("ids") if isinstance(body, dict) else None
    else:
        ids = parse_qs((await request.body()).decode("utf-8", "replace")).get("id")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise HTTPException(400, "select at least one item: send form fields id=... or JSON "
                                 '{"ids": ["..."]}')
    if len(ids) > MAX_SELECTED:
        raise HTTPException(400, f"at most {MAX_SELECTED} items at once, not {len(ids)}")
    return list(dict.fromkeys(ids))


#: what a bulk action did, as the page it returns to says it: query parameter -> sentence
NOTICES = {"replayed": "Replayed {n} dead letter(s).", "purged": "Purged {n} dead letter(s).",
           "deleted": "Deleted {n} task(s).",
           "cancelling": "Asked the workers to cancel {n} running task(s)."}


def _notice(request: Request) -> str:
    """The sentences for the :data:`NOTICES` in the query (no cancel request: not said)."""
    said = []
    for key, text in NOTICES.items():
        count = _int(request, key, -1, -1, 10**9)
        if count > 0 or (count == 0 and key != "cancelling"):
            said.append(text.format(n=count))
    return " ".join(said)


def _back(target: str | None, default: str, **counts: int) -> str:
    """The page a bulk action returns to (a local path only), with what it did appended."""
    path = safe_next(target) if target else default
    return path + ("&" if "?" in path else "?") + urlencode(counts)


class _Dashboard:
    """The route handlers; one instance per app, holding the board and the mode."""

    def __init__(self, hive: Hive, read_only: bool, has_app: bool, token: str | None) -> None:
        self.board = Board(hive)
        self.read_only = read_only
        self.has_app = has_app
        self.token = token

    def page(self, request: Request, title: str, body: Safe, status: int = 200) -> Response:
        document = pages.layout(title, body, path=request.url.path,
                                backend=self.board.hive.backend.name, read_only=self.read_only,
                                logout=self.token is not None)
        return HTMLResponse(document, status, headers=SECURITY_HEADERS)

    def refused(self, request: Request, what: str) -> Response | None:
        """The 403 for a POST that read-only mode or the cross-site check refuses, else None."""
        if self.read_only:
            return self.error(request, 403, f"the dashboard is read-only (started with "
                                            f"--read-only): {what} is disabled")
        if _cross_site(request):
            return self.error(request, 403, "cross-site request refused")
        return None

    def done(self, request: Request, data: dict[str, Any], back: str) -> Response:
        """An action's answer: JSON for ``/api``, else a redirect (POST-redirect-GET)."""
        if _is_api(request):
            return _JSON(data)
        return RedirectResponse(back, status_code=303)

    def error(self, request: Request, status: int, message: str) -> Response:
        if _is_api(request):
            return _JSON({"error": message}, status)
        return self.page(request, "Error", pages.message(message), status)

    # -- views ---------------------------------------------------------------------

    def _range(self, request: Request) -> str:
        name = request.query_params.get("range") or "1h"
        if name not in RANGES:
            raise HTTPException(400, f"range must be one of {', '.join(RANGES)}, not {name!r}")
        return name

    async def overview(self, request: Request) -> Response:
        queues, workers = await self.board.queues(), await self.board.workers()
        history = await self.board.history(self._range(request))
        notice = ""
        for verb in ("paused", "resumed"):
            if verb in request.query_params:
                notice = f"Queue {request.query_params[verb]!r} {verb}."
        body = pages.overview(queues, workers, history, paused=await self.board.paused(),
                              read_only=self.read_only, notice=notice)
        return self.page(request, "Overview", body)

    async def api_history(self, request: Request) -> Response:
        return _JSON(await self.board.history(self._range(request),
                                              request.query_params.get("queue") or None,
                                              request.query_params.get("task") or None))

    async def tasks(self, request: Request) -> Response:
        name, task = self._range(request), request.query_params.get("task") or None
        body = pages.tasks(await self.board.task_breakdown(name),
                           await self.board.history(name, task=task), task=task)
        return self.page(request, "Tasks", body)

    async def api_tasks(self, request: Request) -> Response:
        return _JSON(await self.board.task_breakdown(self._range(request)))

    async def _queue_tasks(self, request: Request) -> dict[str, Any]:
        state = request.query_params.get("state") or "ready"
        if state not in pages.STATE_TITLES:
            raise HTTPException(400, f"state must be one of {', '.join(pages.STATE_TITLES)}, "
                                     f"not {state!r}")
        return await self.board.tasks(request.path_params["queue"], state,
                                      _int(request, "limit", 50, 1, 500),
                                      _int(request, "offset", 0, 0, 10**9),
                                      request.query_params.get("q", "").strip())

    async def queue(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        can_browse = self.board.can_browse()
        state = request.query_params.get("state") or "ready"
        data = (await self._queue_tasks(request) if can_browse or state == "dead" else
                {"queue": queue, "state": state, "search": "", "offset": 0, "limit": 0,
                 "total": 0, "tasks": []})
        stat = next((s for s in (await self.board.inspector.snapshot()).queues
                     if s.queue == queue), None)
        counts = ({"ready": stat.ready, "delayed": stat.delayed, "in_flight": stat.in_flight,
                   "dead": stat.dead} if stat is not None else {})
        history = await self.board.history(self._range(request), queue=queue)
        body = pages.queue_page(data, counts, history, can_browse=can_browse,
                                read_only=self.read_only, backend=self.board.hive.backend.name,
                                can_cancel=self.board.can_cancel(), notice=_notice(request))
        return self.page(request, f"Queue {queue}", body)

    async def api_queue_tasks(self, request: Request) -> Response:
        return _JSON(await self._queue_tasks(request))

    async def _task_data(self, request: Request) -> tuple[TaskView | None, dict[str, Any]]:
        """The stored task with what its worker reports (``running``) and its result record
        (``status``); a task gone from the queue whose record is kept comes back without a
        view (``state`` "finished"), else :class:`TaskNotFound` answers 404."""
        queue, task_id = request.path_params["queue"], request.path_params["task_id"]
        try:
            view = await self.board.task(queue, task_id)
        except TaskNotFound:
            status = await self.board.status(task_id)
            if status is None:
                raise
            return None, {"id": task_id, "queue": queue, "state": "finished",
                          "status": status_json(status)}
        data = task_json(view, full=True)
        data["running"] = ((await self.board.running()).get(task_id)
                           if data["state"] == "in_flight" else None)
        status = await self.board.status(task_id)
        data["status"] = status_json(status) if status is not None else None
        return view, data

    async def task(self, request: Request) -> Response:
        view, data = await self._task_data(request)
        if view is None:
            return self.page(request, f"Task {data['id']}",
                             pages.finished_task(data["queue"], data["id"], data["status"]))
        body = pages.task_detail(view, data, read_only=self.read_only,
                                 can_cancel=self.board.can_cancel(),
                                 all_frames=request.query_params.get("frames") == "all",
                                 running=data["running"], status=data["status"])
        return self.page(request, f"Task {view.id}", body)

    async def api_task(self, request: Request) -> Response:
        return _JSON((await self._task_data(request))[1])

    def task_action(self, verb: str) -> Endpoint:
        """A POST endpoint that deletes (or cancels a running) task, or runs a delayed one now."""

        async def endpoint(request: Request) -> Response:
            refused = self.refused(request, "changing tasks")
            if refused is not None:
                return refused
            queue, task_id = request.path_params["queue"], request.path_params["task_id"]
            back = f"/queues/{quote(queue, safe='')}"
            if verb == "run-now":
                done = await self.board.run_now(queue, task_id)
                return self.done(request, {"ran_now": done},
                                 back + "?" + urlencode({"state": "ready"}))
            deleted = await self.board.delete_task(queue, task_id)
            return self.done(request, {"deleted": deleted, "cancel_requested": not deleted},
                             back + "?" + urlencode({"state": "ready" if deleted
                                                     else "in_flight"}))

        return endpoint

    async def workers(self, request: Request) -> Response:
        return self.page(request, "Workers", pages.workers(await self.board.workers()))

    async def api_queues(self, request: Request) -> Response:
        return _JSON(await self.board.queues())

    async def api_workers(self, request: Request) -> Response:
        return _JSON(await self.board.workers())

    async def _dead_rows(self, request: Request) -> list[dict[str, Any]]:
        queue = request.query_params.get("queue") or None
        limit, offset = _int(request, "limit", 100, 1, 1000), _int(request, "offset", 0, 0, 10**9)
        search = request.query_params.get("q", "").strip()
        if search:
            views, _ = await self.board.inspector.search_dead(search, queue, limit, offset)
        else:
            views = await self.board.dead_letters(queue, limit, offset)
        return [dead_letter_json(v, full=False) for v in views]

    def _next_page(self, request: Request, shown: int) -> str:
        """The next page's URL when this one is full (there may be more), else ""."""
        limit = _int(request, "limit", 100, 1, 1000)
        if shown < limit:
            return ""
        params: dict[str, object] = {"offset": _int(request, "offset", 0, 0, 10**9) + limit,
                                     "limit": limit}
        if request.query_params.get("queue"):
            params["queue"] = request.query_params["queue"]
        return f"{request.url.path}?{urlencode(params)}"

    async def dead(self, request: Request) -> Response:
        queue = request.query_params.get("queue") or None
        notice = ""
        for action in ("replayed", "purged"):
            if action in request.query_params:
                notice = f"{action.capitalize()} {_int(request, action, 0, 0, 10**9)} " \
                         "dead letter(s)."
        rows = await self._dead_rows(request)
        body = pages.dead_list(rows, queue=queue, notice=notice, read_only=self.read_only,
                               more=self._next_page(request, len(rows)),
                               search=request.query_params.get("q", "").strip())
        return self.page(request, "Dead letters", body)

    async def api_dead(self, request: Request) -> Response:
        return _JSON({"dead_letters": await self._dead_rows(request)})

    async def dead_one(self, request: Request) -> Response:
        view = await self.board.dead_letter(request.path_params["dead_id"])
        body = pages.dead_detail(view, dead_letter_json(view, full=True), read_only=self.read_only,
                                 all_frames=request.query_params.get("frames") == "all")
        return self.page(request, f"Dead letter {view.id}", body)

    async def api_dead_one(self, request: Request) -> Response:
        view = await self.board.dead_letter(request.path_params["dead_id"])
        return _JSON(dead_letter_json(view, full=True))

    async def cron(self, request: Request) -> Response:
        notice = (f"Triggered {request.query_params['triggered']!r}."
                  if "triggered" in request.query_params else "")
        body = pages.cron(await self.board.cron(), has_app=self.has_app,
                          read_only=self.read_only, notice=notice)
        return self.page(request, "Cron jobs", body)

    async def api_cron(self, request: Request) -> Response:
        return _JSON(await self.board.cron())

    async def registrations(self, request: Request) -> Response:
        rows = self.board.registrations()["registrations"]
        return self.page(request, "Registrations", pages.registrations(rows,
                                                                       has_app=self.has_app))

    async def api_registrations(self, request: Request) -> Response:
        return _JSON(self.board.registrations())

    # -- actions -------------------------------------------------------------------

    def action(self, verb: str, *, one: bool) -> Endpoint:
        """A POST endpoint that replays/purges one dead letter (``one``) or all of them."""

        async def endpoint(request: Request) -> Response:
            refused = self.refused(request, "replay and purge")
            if refused is not None:
                return refused
            dead_id = request.path_params["dead_id"] if one else None
            queue = request.query_params.get("queue")
            if queue is None and not _is_api(request):
                queue = await _form_field(request, "queue")
            act = self.board.replay if verb == "replay" else self.board.purge
            count = await act(dead_id, queue or None)
            done = "replayed" if verb == "replay" else "purged"
            if _is_api(request):
                return _JSON({done: count})
            return RedirectResponse(f"/dead?{done}={count}", status_code=303)

        return endpoint

    def dead_selected(self, verb: str) -> Endpoint:
        """A POST endpoint that replays or purges the selected dead letters."""

        async def endpoint(request: Request) -> Response:
            refused = self.refused(request, "replay and purge")
            if refused is not None:
                return refused
            ids = await _selected_ids(request)
            count = await self.board.replay_or_purge_ids(verb, ids)
            done = "replayed" if verb == "replay" else "purged"
            if _is_api(request):
                return _JSON({done: count})
            return RedirectResponse(_back(await _form_field(request, "back"), "/dead",
                                          **{done: count}), status_code=303)

        return endpoint

    async def tasks_delete_selected(self, request: Request) -> Response:
        """Delete the selected waiting tasks of a queue, or cancel the running ones."""
        refused = self.refused(request, "changing tasks")
        if refused is not None:
            return refused
        queue = request.path_params["queue"]
        counts = await self.board.delete_tasks(queue, await _selected_ids(request))
        if _is_api(request):
            return _JSON(counts)
        default = f"/queues/{quote(queue, safe='')}"
        return RedirectResponse(_back(await _form_field(request, "back"), default,
                                      deleted=counts["deleted"],
                                      cancelling=counts["cancel_requested"]), status_code=303)

    def pause(self, paused: bool) -> Endpoint:
        """A POST endpoint that pauses (or resumes) the queue in the path."""

        async def endpoint(request: Request) -> Response:
            refused = self.refused(request, "pausing queues")
            if refused is not None:
                return refused
            queue = request.path_params["queue"]
            await self.board.set_paused(queue, paused)
            verb = "paused" if paused else "resumed"
            return self.done(request, {verb: queue}, f"/?{urlencode({verb: queue})}")

        return endpoint

    async def trigger(self, request: Request) -> Response:
        refused = self.refused(request, "triggering cron jobs")
        if refused is not None:
            return refused
        job = request.path_params["job"]
        try:
            target = await self.board.trigger(job)
        except LookupError as exc:
            return self.error(request, 404, str(exc))
        return self.done(request, {"triggered": job, "target": target},
                         f"/cron?{urlencode({'triggered': job})}")

    # -- login ---------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse("/", 303)
        body = pages.login(next_path=safe_next(request.query_params.get("next")),
                           failed="failed" in request.query_params)
        return self.page(request, "Log in", body)

    async def login(self, request: Request) -> Response:
        if self.token is None:
            return RedirectResponse("/", 303)
        if _cross_site(request):
            return self.error(request, 403, "cross-site request refused")
        given = await _form_field(request, "token") or ""
        target = safe_next(await _form_field(request, "next"))
        if not token_matches(given, self.token):
            return RedirectResponse("/login?" + urlencode({"next": target, "failed": 1}), 303)
        response = RedirectResponse(target, 303)
        response.set_cookie(COOKIE, session_value(self.token), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        if _cross_site(request):
            return self.error(request, 403, "cross-site request refused")
        response = RedirectResponse("/login" if self.token else "/", 303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    # -- errors --------------------------------------------------------------------

    async def on_not_found(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, DeadLetterNotFound) and exc.ambiguous:
            return self.error(request, 409, str(exc))
        return self.error(request, 404, str(exc))

    async def on_workhive_error(self, request: Request, exc: Exception) -> Response:
        """A backend without the capability is 501; an unreachable one 503; else 500."""
        status = (501 if isinstance(exc, CapabilityError)
                  else 503 if isinstance(exc, BackendUnavailable) else 500)
        return self.error(request, status, f"{type(exc).__name__}: {exc}")

    async def on_http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = self.error(request, exc.status_code, exc.detail)
        response.headers.update(exc.headers or {})
        return response


def create_app(hive: Hive, read_only: bool = False, *,
               allowed_hosts: Sequence[str] | None = None, token: str | None = None) -> Starlette:
    """The dashboard for ``hive``; ``read_only`` refuses every action (replay, purge, pause,
    trigger) with 403.

    ``token``: if given, every page and endpoint but ``/login`` and ``/static`` needs it (a
    login cookie, a bearer token or basic auth, see :mod:`._auth`). An empty token is refused:
    it would read as "protected" and let anyone in.

    ``allowed_hosts``: if given, requests whose ``Host`` header is not one of them get 400
    (Starlette's TrustedHostMiddleware), which defeats DNS rebinding against a local dashboard.

    The app reads and acts only through :class:`~workhive.inspector.Inspector` (see
    :mod:`._board`). It opens the hive lazily on the first request and closes it when the
    server shuts down (lifespan); closing is idempotent, so a caller may close it too.
    """
    if token is not None and not token.strip():
        raise ValueError("the dashboard token must not be empty")
    d = _Dashboard(hive, read_only, has_app=bool(hive.modules), token=token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await hive.close()

    get, post = ["GET"], ["POST"]
    routes = [
        Route("/", d.overview, methods=get),
        Route("/login", d.login_page, methods=get),
        Route("/login", d.login, methods=post),
        Route("/logout", d.logout, methods=post),
        Route("/tasks", d.tasks, methods=get),
        Route("/workers", d.workers, methods=get),
        Route("/queues/{queue}", d.queue, methods=get),
        Route("/queues/{queue}/tasks/delete-selected", d.tasks_delete_selected, methods=post),
        Route("/api/queues/{queue}/tasks/delete-selected", d.tasks_delete_selected,
              methods=post),
        Route("/dead/replay-selected", d.dead_selected("replay"), methods=post),
        Route("/dead/purge-selected", d.dead_selected("purge"), methods=post),
        Route("/api/dead/replay-selected", d.dead_selected("replay"), methods=post),
        Route("/api/dead/purge-selected", d.dead_selected("purge"), methods=post),
        Route("/queues/{queue}/tasks/{task_id}", d.task, methods=get),
        Route("/queues/{queue}/tasks/{task_id}/delete", d.task_action("delete"), methods=post),
        Route("/queues/{queue}/tasks/{task_id}/run-now", d.task_action("run-now"),
              methods=post),
        Route("/api/queues/{queue}/tasks", d.api_queue_tasks, methods=get),
        Route("/api/queues/{queue}/tasks/{task_id}", d.api_task, methods=get),
        Route("/api/queues/{queue}/tasks/{task_id}/delete", d.task_action("delete"),
              methods=post),
        Route("/api/queues/{queue}/tasks/{task_id}/run-now", d.task_action("run-now"),
              methods=post),
        Route("/queues/{queue}/pause", d.pause(True), methods=post),
        Route("/queues/{queue}/resume", d.pause(False), methods=post),
        Route("/cron/{job}/trigger", d.trigger, methods=post),
        Route("/api/history", d.api_history, methods=get),
        Route("/api/tasks", d.api_tasks, methods=get),
        Route("/api/queues/{queue}/pause", d.pause(True), methods=post),
        Route("/api/queues/{queue}/resume", d.pause(False), methods=post),
        Route("/api/cron/{job}/trigger", d.trigger, methods=post),
        Route("/dead", d.dead, methods=get),
        Route("/dead/replay-all", d.action("replay", one=False), methods=post),
        Route("/dead/purge-all", d.action("purge", one=False), methods=post),
        Route("/dead/{dead_id}", d.dead_one, methods=get),
        Route("/dead/{dead_id}/replay", d.action("replay", one=True), methods=post),
        Route("/dead/{dead_id}/purge", d.action("purge", one=True), methods=post),
        Route("/cron", d.cron, methods=get),
        Route("/registrations", d.registrations, methods=get),
        Route("/api/queues", d.api_queues, methods=get),
        Route("/api/workers", d.api_workers, methods=get),
        Route("/api/dead", d.api_dead, methods=get),
        Route("/api/dead/replay-all", d.action("replay", one=False), methods=post),
        Route("/api/dead/purge-all", d.action("purge", one=False), methods=post),
        Route("/api/dead/{dead_id}", d.api_dead_one, methods=get),
        Route("/api/dead/{dead_id}/replay", d.action("replay", one=True), methods=post),
        Route("/api/dead/{dead_id}/purge", d.action("purge", one=True), methods=post),
        Route("/api/cron", d.api_cron, methods=get),
        Route("/api/registrations", d.api_registrations, methods=get),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = ([Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
                  if allowed_hosts is not None else [])
    if token is not None:
        middleware.append(Middleware(TokenAuth, token=token))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={
        DeadLetterNotFound: d.on_not_found,
        TaskNotFound: d.on_not_found,
        WorkhiveError: d.on_workhive_error,
        HTTPException: d.on_http_error,
    })
