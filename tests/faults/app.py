"""The app the fault tests run in real ``workhive worker`` processes.

Every execution appends ``start``/``end`` lines to ``$FAULT_LEDGER/<pid>.log`` with O_APPEND
writes (atomic for short lines), so the test can count runs per task after a kill -9.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from workhive import Hive, Module, TaskContext

faults = Module("fault")


def _log(line: str) -> None:
    path = os.path.join(os.environ["FAULT_LEDGER"], f"{os.getpid()}.log")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@faults.task("fault:work", max_retries=5)
async def work(p: dict[str, Any], ctx: TaskContext) -> None:
    _log(f"start {p['i']} {time.time():.6f}")
    await asyncio.sleep(p.get("sleep", 0))
    _log(f"end {p['i']} {time.time():.6f}")


def make_hive() -> Hive:
    hive = Hive.from_config()
    hive.include(faults)
    return hive
