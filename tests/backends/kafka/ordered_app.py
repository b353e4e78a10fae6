"""The app the ordering tests run in real ``workhive worker`` processes.

Every attempt appends ``start``/``done``/``fail`` lines (``<kind> <key> <seq> <attempt>``) to
``$ORDER_LEDGER/<pid>.log`` with O_APPEND writes (atomic for short lines), so a test can read,
after a kill -9, in which order each process started the messages of each key.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from workhive import Hive, Module, TaskContext

ordered = Module("ordered")


def _log(line: str) -> None:
    path = os.path.join(os.environ["ORDER_LEDGER"], f"{os.getpid()}.log")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@ordered.task("ordered:step", ordering_key="key", max_retries=5, retry_backoff=0.2)
async def step(p: dict[str, Any], ctx: TaskContext) -> None:
    """Sleep ``p["sleep"]``; fail the first attempt when ``p["fail_first"]``."""
    tag = f"{p['key']} {p['seq']} {ctx.attempt}"
    _log(f"start {tag}")
    await asyncio.sleep(p["sleep"])
    if p.get("fail_first") and ctx.attempt == 0:
        _log(f"fail {tag}")
        raise RuntimeError("the first attempt fails")
    _log(f"done {tag}")


def make_hive() -> Hive:
    hive = Hive.from_config()
    hive.include(ordered)
    return hive
