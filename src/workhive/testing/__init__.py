"""Helpers for testing your own handlers with real semantics and no server.

``await run_until_idle(hive)`` runs a real :class:`~workhive.worker.Worker` in-process until the
hive's queues hold nothing ready, running or (by default) delayed — so retries with backoff,
delays and the dead-letter queue behave exactly as in production. Pair it with
``Hive(backend="memory://")`` for speed, or a ``sqlite:///`` file under ``tmp_path``.

A declaration switched off by a feature flag the hive was never told about (no
``worker.tasks`` entry, no ``flags=``) is an error here, not the warning it is in production:
its enqueues are dropped, so a test of it would pass having run nothing. Set the flag, to
``True`` or deliberately to ``False``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workhive.errors import ConfigError, WorkhiveError

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
    task that keeps deferring itself), and ConfigError, before running anything, if a feature
    flag nobody set switched a declaration off (see :func:`check_flags`).
    """
    check_flags(hive)
    worker_options.setdefault("cron", False)
    worker = hive.worker(queues=queues, **worker_options)
    try:
        await asyncio.wait_for(worker.run(until_idle=True, wait_delayed=wait_delayed), timeout)
    except TimeoutError as exc:
        raise WorkhiveError(f"queues still busy after {timeout:g}s") from exc
    return worker


def check_flags(hive: Hive) -> None:
    """Raise ConfigError naming every declaration a never-set feature flag switched off."""
    unset = hive.unset_flags()
    if unset:
        flags = sorted(set(unset.values()))
        listed = ", ".join(f"{name} (flag {flag!r})" for name, flag in sorted(unset.items()))
        example = ", ".join(f"{flag!r}: True" for flag in flags)
        raise ConfigError(
            f"feature flag(s) {flags} are not set, so {listed} never run and a test of them "
            f"would pass doing nothing; set them, e.g. Hive(..., flags={{{example}}})")


__all__ = ["check_flags", "run_until_idle"]
