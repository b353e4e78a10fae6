"""Middleware: retries, timeouts, rate limits, logging and metrics, one onion chain.

``default_middleware()`` is the chain every worker gets unless told otherwise, outermost first.
"""

from __future__ import annotations

from workhive.middleware.base import CallNext, Middleware, build_chain
from workhive.middleware.logs import Logs
from workhive.middleware.metrics import Metrics
from workhive.middleware.prometheus import PrometheusMetrics
from workhive.middleware.ratelimit import RateLimiter
from workhive.middleware.retry import Retries, backoff_delay
from workhive.middleware.timeout import Timeouts


def default_middleware() -> list[Middleware]:
    return [Logs(), Metrics(), Retries(), RateLimiter(), Timeouts()]


__all__ = [
    "CallNext",
    "Logs",
    "Metrics",
    "Middleware",
    "PrometheusMetrics",
    "RateLimiter",
    "Retries",
    "Timeouts",
    "backoff_delay",
    "build_chain",
    "default_middleware",
]
