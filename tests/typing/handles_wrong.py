"""Typed task handles used wrongly: mypy must report an error on each line marked ``# E:``
(with that error code), and nowhere else."""

from __future__ import annotations

import dataclasses

from workhive import Module, TaskContext

users = Module("user")


@dataclasses.dataclass
class WelcomeEmail:
    user_id: int


@users.task("user:send_welcome_email")
async def send_welcome_email(p: WelcomeEmail, ctx: TaskContext) -> str:
    return f"sent to {p.user_id}"


@users.task()
def count_rows(p: dict[str, int]) -> int:
    return p["rows"]


async def produce() -> None:
    await send_welcome_email.enqueue({"user_id": 7})  # E: arg-type
    await send_welcome_email.enqueue(WelcomeEmail(7), dealy=60)  # E: call-arg
    count_rows.enqueue_sync({"rows": "three"})  # E: dict-item
    run = await send_welcome_email.enqueue(WelcomeEmail(7))
    rows: int = await run.result()  # E: assignment
    count_rows({"rows": 1}, "extra")  # E: call-arg
    print(rows)
