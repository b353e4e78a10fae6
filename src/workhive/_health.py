"""Liveness and readiness of a worker process, and the small HTTP server that answers probes.

* **liveness** (``/healthz``): the process's event loop ran within the last
  :data:`STALE_AFTER` seconds. A ticker task on the loop stamps the time every second and the
  HTTP server (a thread) only reads the stamp, so a loop blocked by a handler that never awaits,
  or a deadlock, shows as not live, and answering a probe never needs the loop.
* **readiness** (``/readyz``): the backend is open, the last broker probe reached the broker,
  and the worker is not shutting down. The probe asks the backend for its queue stats every
  ``interval`` seconds; the same answer feeds the queue-depth gauges, so there is one broker
  call per interval, never one per scrape.

Answers are JSON (``{"status": "ok", ...}``) with 200 when true and 503 when false, which is all
a Kubernetes ``httpGet`` probe looks at. Only the standard library is used: the health endpoints
work without ``workhive[prometheus]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from workhive._redact import redact
from workhive.backend import Backend, QueueStats, SupportsStats
from workhive.errors import ConfigError

logger = logging.getLogger(__name__)

#: The loop counts as dead when it has not ticked for this long. Ten missed one-second ticks is
#: far beyond any pause a healthy worker makes (a garbage collection, a slow DNS lookup).
STALE_AFTER = 10.0



class ProbeListener(Protocol):
    """Told the outcome of every broker probe (the queue-depth gauges are one)."""

    def update(self, stats: list[QueueStats]) -> None: ...

    def broker_down(self) -> None: ...


class Health:
    """What the probes report, written by the worker's loop and read by the HTTP thread.

    Plain attribute writes and reads are atomic in CPython, so no lock is needed: a probe sees
    either the old or the new value of each field.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_tick: float | None = None  # None: the loop has not started yet
        self.opened = False
        self.broker_ok: bool | None = None  # None: not probed yet
        self.broker_error = ""
        self.stopping = False

    def tick(self) -> None:
        self.last_tick = self.clock()

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Live while starting (no tick yet) and while the loop ticked within STALE_AFTER."""
        if self.last_tick is None:
            return True, {"status": "ok", "loop": "starting"}
        age = self.clock() - self.last_tick
        status = "ok" if age < STALE_AFTER else "stalled"
        return age < STALE_AFTER, {"status": status, "loop_idle_seconds": round(age, 3)}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.stopping:
            return False, {"status": "unready", "reason": "shutting down"}
        if not self.opened:
            return False, {"status": "unready", "reason": "backend not open yet"}
        if self.broker_ok is None:
            return False, {"status": "unready", "reason": "broker not probed yet"}
        if not self.broker_ok:
            return False, {"status": "unready",
                           "reason": f"broker unreachable: {self.broker_error}"}
        return True, {"status": "ok"}

    def reached(self) -> None:
        if self.broker_ok is False:
            logger.info("Broker reachable again: ready")
        self.broker_ok, self.broker_error = True, ""

    def failed(self, exc: BaseException) -> None:
        error = redact(" ".join(str(exc).split())) or type(exc).__name__
        if self.broker_ok is not False:
            logger.warning("Broker unreachable (%s): not ready until it answers again", error)
        self.broker_ok, self.broker_error = False, error


async def tick_forever(health: Health, every: float = 1.0) -> None:
    """Stamp the loop's liveness every ``every`` seconds until cancelled."""
    while True:
        health.tick()
        await asyncio.sleep(every)


async def probe_forever(health: Health, backend: Backend, interval: float,
                        listeners: Sequence[ProbeListener] = ()) -> None:
    """Ask the (open) backend for its queue stats every ``interval`` seconds until cancelled.

    A stats call that fails or takes longer than ``interval`` (at least one second) marks the
    broker unreachable; the next one that answers marks it reachable again. A backend that
    cannot count is taken as reachable once open: there is nothing cheaper to ask it.
    """
    health.opened = True
    if not isinstance(backend, SupportsStats):
        health.reached()
        for listener in listeners:
            listener.update([])
        return
    timeout = max(interval, 1.0)
    while True:
        try:
            stats = await asyncio.wait_for(backend.stats(), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever the driver raises, the answer is "not reachable"
            health.failed(exc)
            for listener in listeners:
                listener.broker_down()
        else:
            health.reached()
            for listener in listeners:
                listener.update(stats)
        await asyncio.sleep(interval)


def health_routes(health: Health) -> dict[str, WSGIApplication]:
    """``/healthz`` and ``/readyz`` as WSGI apps, for :func:`start_http_server`."""
    return {"/healthz": _answer(health.liveness), "/readyz": _answer(health.readiness)}


def _answer(check: Callable[[], tuple[bool, dict[str, Any]]]) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        ok, body = check()
        data = json.dumps(body).encode()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(data))), ("Cache-Control", "no-store")])
        return [data]

    return app


def _not_found(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    data = b'{"status": "not found", "paths": ["/healthz", "/readyz"]}'
    start_response("404 Not Found", [("Content-Type", "application/json"),
                                     ("Content-Length", str(len(data)))])
    return [data]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per probe on stderr (a probe every few seconds would drown the logs)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_http_server(host: str, port: int, routes: Mapping[str, WSGIApplication],
                      fallback: WSGIApplication | None = None) -> WSGIServer:
    """Serve ``routes`` (exact paths; anything else goes to ``fallback``, or is a 404) from a
    daemon thread. Returns the server: ``.shutdown()`` then ``.server_close()`` stops it.

    A port already in use is a :class:`ConfigError` naming the address.
    """
    other = fallback or _not_found

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        app = routes.get(environ.get("PATH_INFO") or "/", other)
        return app(environ, start_response)

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
        server: WSGIServer = make_server(host, port, dispatch, server_class, _QuietHandler)
    except OSError as exc:
        raise ConfigError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from exc
    threading.Thread(target=server.serve_forever, name=f"workhive-http-{port}",
                     daemon=True).start()
    return server


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung client never keeps the process from exiting


__all__ = ["STALE_AFTER", "Health", "ProbeListener", "health_routes", "probe_forever",
           "start_http_server", "tick_forever"]
