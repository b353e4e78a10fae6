"""Login for the dashboard: one shared token, given as a cookie, a bearer token or basic auth.

Why one token and no user accounts: the dashboard is an operator's tool next to a queue, not
an application; whoever can read the broker's URL can do more than the dashboard lets them.
What matters is that a dashboard reachable from a network is never open, so the CLI refuses
to listen beyond loopback without a token (see ``workhive.cli._dashboard``).

Ways in (any one is enough):

* the login page (``/login``) sets an ``HttpOnly``, ``SameSite=Strict`` cookie holding an
  HMAC of the token, never the token itself; changing the token logs everyone out;
* ``Authorization: Bearer <token>`` for scripts;
* ``Authorization: Basic`` with any user name and the token as password (curl ``-u``,
  reverse proxies).

Without a valid one, a page redirects to the login page and ``/api`` answers 401. The static
files (the chart library) and the login page itself are public. Tokens are compared in
constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "workhive_session"


def session_value(token: str) -> str:
    """The cookie's value: proves knowledge of the token without storing it in the browser."""
    return hmac.new(token.encode(), b"workhive-dashboard-session", hashlib.sha256).hexdigest()


def _basic_password(header: str) -> str | None:
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] if ":" in decoded else None


def token_matches(given: str, token: str) -> bool:
    """``given == token``, in constant time (an empty ``given`` never matches)."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def authorized(request: Request, token: str) -> bool:
    """Whether the request carries the token (cookie, bearer or basic auth)."""
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and hmac.compare_digest(cookie, session_value(token)):
        return True
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    given = (value.strip() if scheme.lower() == "bearer"
             else _basic_password(value.strip()) if scheme.lower() == "basic" else None)
    return given is not None and token_matches(given, token)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a local path only (never ``//evil.example``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class TokenAuth:
    """ASGI middleware: let through requests with the token, send the rest to log in."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path == "/login" or path.startswith("/static/") or authorized(request, self.token):
            await self.app(scope, receive, send)
            return
        response: Response
        if path.startswith("/api/") or request.method != "GET":
            response = JSONResponse({"error": "log in first: send the dashboard token as "
                                              "'Authorization: Bearer <token>'"}, 401,
                                    headers={"WWW-Authenticate": 'Basic realm="workhive"'})
        else:
            target = path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse("/login?next=" + quote(target, safe=""), 303)
        await response(scope, receive, send)
