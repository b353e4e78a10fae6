"""Typed task handles used correctly: mypy (strict) must accept every line."""

from __future__ import annotations

import dataclasses

from workhive import Hive, Module, TaskContext
from workhive.results import ResultHandle
from workhive.sync import SyncResultHandle

users = Module("user")


@dataclasses.dataclass
class WelcomeEmail:
    user_id: int


@users.task("user:send_welcome_email", store_result=True)
async def send_welcome_email(p: WelcomeEmail, ctx: TaskContext) -> str:
    return f"sent to {p.user_id}"


@users.task()
def count_rows(p: dict[str, int]) -> int:
    return p["rows"]


@users.task()
async def tick() -> None:
    return None


async def produce(hive: Hive) -> None:
    hive.include(users)
    run: ResultHandle[str] = await send_welcome_email.enqueue(WelcomeEmail(7), delay=60)
    receipt: str = await run.result(timeout=5)
    rows: SyncResultHandle[int] = count_rows.enqueue_sync({"rows": 3}, priority=1)
    total: int = rows.result() + len(receipt)
    await tick.enqueue(None)
    direct: int = count_rows({"rows": total})  # still the plain function
    await send_welcome_email.enqueue(WelcomeEmail(direct), hive=hive, store_result=False)
    await hive.enqueue("user:send_welcome_email", {"user_id": 8})  # string names still work
