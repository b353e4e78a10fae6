"""Helpers for testing your own handlers with real semantics and no server.

``await run_until_idle(hive)`` runs a real :class:`~workhive.worker.Worker` in-process until the
hive's queues hold nothing ready, running or (by default) delayed — so retries with backoff,
delays and the dead-letter queue behave exactly as in production. Pair it with
``Hive(backend="memory://")`` for speed, or a ``sqlite:///`` file under ``tmp_path``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workhive.errors import WorkhiveError

if TYPE_CHECKING:
    from workhive.hive import Hive
    from workhive.worker import Worker


async def run_until_idle(
    hive: Hive,
    *,
    queues: Sequence[str] | None = None,
    wait_delayed: bool = True,
    timeout: float = 60.0,
    **worker_options: Any,
) -> Worker:
    """Drain the hive's queues in-process and return the worker (for ``.processed`` etc.).

    Raises WorkhiveError if the queues are not idle within ``timeout`` seconds (for example a
    task that keeps deferring itself).
    """
    worker_options.setdefault("cron", False)
    worker = hive.worker(queues=queues, **worker_options)
    try:
        await asyncio.wait_for(worker.run(until_idle=True, wait_delayed=wait_delayed), timeout)
    except TimeoutError as exc:
        raise WorkhiveError(f"queues still busy after {timeout:g}s") from exc
    return worker


__all__ = ["run_until_idle"]
