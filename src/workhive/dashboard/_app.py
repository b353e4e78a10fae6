"""``create_app(hive)``: the Starlette app behind ``workhive dashboard``.

Routes (HTML pages and the ``/api`` JSON they are rendered from)::

    GET  /                  /api/queues, /api/workers      queues with rates; workers
    GET  /dead              /api/dead?queue=&limit=&offset= dead letters
    GET  /dead/{id}         /api/dead/{id}                  payload, error, every attempt
    GET  /cron              /api/cron                       cron jobs and their next fire
    GET  /registrations     /api/registrations              tasks, subscribers, cron, flags
    POST /dead/{id}/replay|purge    /api/dead/{id}/replay|purge
    POST /dead/replay-all|purge-all /api/dead/replay-all|purge-all  (form/query ``queue``)

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
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from workhive.dashboard import _pages as pages
from workhive.dashboard._assets import SECURITY_HEADERS
from workhive.dashboard._board import Board
from workhive.dashboard._html import Safe
from workhive.errors import BackendUnavailable, CapabilityError, WorkhiveError
from workhive.hive import Hive
from workhive.inspector import DeadLetterNotFound, dead_letter_json

Endpoint = Callable[[Request], Awaitable[Response]]


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


class _Dashboard:
    """The route handlers; one instance per app, holding the board and the mode."""

    def __init__(self, hive: Hive, read_only: bool, has_app: bool) -> None:
        self.board = Board(hive)
        self.read_only = read_only
        self.has_app = has_app

    def page(self, request: Request, title: str, body: Safe, status: int = 200) -> Response:
        document = pages.layout(title, body, path=request.url.path,
                                backend=self.board.hive.backend.name, read_only=self.read_only)
        return HTMLResponse(document, status, headers=SECURITY_HEADERS)

    def error(self, request: Request, status: int, message: str) -> Response:
        if _is_api(request):
            return _JSON({"error": message}, status)
        return self.page(request, "Error", pages.message(message), status)

    # -- views ---------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        queues, workers = await self.board.queues(), await self.board.workers()
        return self.page(request, "Overview", pages.overview(queues, workers))

    async def api_queues(self, request: Request) -> Response:
        return _JSON(await self.board.queues())

    async def api_workers(self, request: Request) -> Response:
        return _JSON(await self.board.workers())

    async def _dead_rows(self, request: Request) -> list[dict[str, Any]]:
        queue = request.query_params.get("queue") or None
        views = await self.board.dead_letters(queue, _int(request, "limit", 100, 1, 1000),
                                              _int(request, "offset", 0, 0, 10**9))
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
                               more=self._next_page(request, len(rows)))
        return self.page(request, "Dead letters", body)

    async def api_dead(self, request: Request) -> Response:
        return _JSON({"dead_letters": await self._dead_rows(request)})

    async def dead_one(self, request: Request) -> Response:
        view = await self.board.dead_letter(request.path_params["dead_id"])
        body = pages.dead_detail(view, dead_letter_json(view, full=True), read_only=self.read_only)
        return self.page(request, f"Dead letter {view.id}", body)

    async def api_dead_one(self, request: Request) -> Response:
        view = await self.board.dead_letter(request.path_params["dead_id"])
        return _JSON(dead_letter_json(view, full=True))

    async def cron(self, request: Request) -> Response:
        return self.page(request, "Cron jobs", pages.cron(self.board.cron(),
                                                          has_app=self.has_app))

    async def api_cron(self, request: Request) -> Response:
        return _JSON(self.board.cron())

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
            if self.read_only:
                return self.error(request, 403, "the dashboard is read-only (started with "
                                                "--read-only): replay and purge are disabled")
            if _cross_site(request):
                return self.error(request, 403, "cross-site request refused")
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

    # -- errors --------------------------------------------------------------------

    async def on_not_found(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DeadLetterNotFound)
        return self.error(request, 409 if exc.ambiguous else 404, str(exc))

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
               allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The dashboard for ``hive``; ``read_only`` refuses replay and purge with 403.

    ``allowed_hosts``: if given, requests whose ``Host`` header is not one of them get 400
    (Starlette's TrustedHostMiddleware), which defeats DNS rebinding against a local dashboard.

    The app reads and acts only through :class:`~workhive.inspector.Inspector` (see
    :mod:`._board`). It opens the hive lazily on the first request and closes it when the
    server shuts down (lifespan); closing is idempotent, so a caller may close it too.
    """
    d = _Dashboard(hive, read_only, has_app=bool(hive.modules))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await hive.close()

    get, post = ["GET"], ["POST"]
    routes = [
        Route("/", d.overview, methods=get),
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
    ]
    middleware = ([Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
                  if allowed_hosts is not None else [])
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={
        DeadLetterNotFound: d.on_not_found,
        WorkhiveError: d.on_workhive_error,
        HTTPException: d.on_http_error,
    })
