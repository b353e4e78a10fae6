"""Seed 003's user-deletion worker: soft delete, a recovery window, then a purge.

The flow, all of it workhive tasks and events:

1. ``users.deletion_requested`` (event, group ``deletion``) forwards to the ``users:delete``
   task. The hop exists because rate limits are a task option: the seed's "at most 10
   deletions per day in all" is ``RateLimit(10, DAY)`` on ``users:delete``, and the 11th is
   *deferred* to the next window (kept delayed, not failed).
2. ``users:delete`` soft-deletes the user (``deleted_at``/``purge_at``) with an audit row in
   one transaction, then enqueues ``users:purge`` delayed by the recovery window
   (``unique_key`` = user id: one pending purge per user) and the
   ``account_deletion_scheduled`` email. Both keys derive from the stored deletion, so a
   redelivered ``users:delete`` schedules nothing twice.
3. ``users.recovery_requested`` (the user clicked the link) restores the account while the
   window is open, with an audit row.
4. ``users:purge`` hard-deletes and audits — unless the user was restored (``Skip``), or was
   restored and deleted again, in which case the pending purge waits for the new window
   (``Retry(count=False)``, not a failure) because the unique key kept a second purge out.
5. ``users:send_recovery_email`` re-sends the recovery link on request, at most twice per user
   per day (``RateLimit(2, DAY, key="user_id", on_limit="reject")``): the third goes to the
   dead-letter queue with the rate-limit reason, where support can see it.

Rate-limit counters live in the workhive backend (SQL rows, Redis keys), not in process
memory, so they hold across every worker process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import msgspec
from examples.chatear.notifications import send_email
from examples.chatear.settings import DAY, Settings
from examples.chatear.store import Store, User

from workhive import Hive, Module, RateLimit, TaskContext
from workhive.errors import Retry, Skip

logger = logging.getLogger(__name__)

EVENT_DELETION_REQUESTED = "users.deletion_requested"
EVENT_RECOVERY_REQUESTED = "users.recovery_requested"
TASK_DELETE = "users:delete"
TASK_PURGE = "users:purge"
TASK_SEND_RECOVERY_EMAIL = "users:send_recovery_email"
DELETION_QUEUE = "deletions"
PURGE_QUEUE = "purges"
GROUP = "deletion"

DELETIONS_PER_DAY = RateLimit(10, DAY, on_limit="defer")
RECOVERY_EMAILS_PER_USER_PER_DAY = RateLimit(2, DAY, key="user_id", on_limit="reject")


class UserRef(msgspec.Struct, frozen=True):
    """Every payload of this worker, as in the seed: ``{"user_id": "..."}``."""

    user_id: str


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class DeletionWorker:
    """The handlers, bound to settings and the SQL store."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def _mail_vars(self, user: User) -> dict[str, str]:
        assert user.purge_at is not None
        return {"name": user.name or user.email, "purge_at": _when(user.purge_at),
                "recover_url": f"{self.settings.public_url}/account/recover?user={user.id}"}

    async def on_deletion_requested(self, e: UserRef, ctx: TaskContext) -> None:
        # the event copy's id is stable across redeliveries: one users:delete per event
        await ctx.enqueue(TASK_DELETE, e, idempotency_key=f"delete:{ctx.id}")

    async def delete(self, p: UserRef, ctx: TaskContext) -> None:
        now = time.time()
        result = await asyncio.to_thread(self.store.soft_delete, p.user_id, now,
                                         now + self.settings.recovery_seconds)
        if result is None:
            logger.warning("deletion of unknown user %s ignored (already purged?)", p.user_id)
            raise Skip
        user = result.user
        assert user.deleted_at is not None and user.purge_at is not None
        await ctx.enqueue(TASK_PURGE, p, delay=max(user.purge_at - time.time(), 0.0),
                          unique_key=user.id)
        await send_email(ctx, user.email, "account_deletion_scheduled", self._mail_vars(user),
                         key=f"deletion-scheduled:{user.id}:{user.deleted_at!r}")
        logger.info("user %s soft-deleted%s; purge at %s", user.id,
                    "" if result.changed else " (already)", _when(user.purge_at))

    async def on_recovery_requested(self, e: UserRef) -> None:
        status = await asyncio.to_thread(self.store.restore, e.user_id, time.time())
        logger.info("recovery of user %s: %s", e.user_id, status)

    async def purge(self, p: UserRef) -> None:
        outcome = await asyncio.to_thread(self.store.purge, p.user_id, time.time())
        if outcome.status == "not_due":
            # restored and deleted again: this purge holds the unique key, so it waits for
            # the new window itself (not counted as an attempt)
            raise Retry(outcome.remaining, count=False,
                        reason=f"user {p.user_id} was deleted again; purge not due yet")
        if outcome.status != "purged":
            logger.info("purge of user %s skipped: %s", p.user_id, outcome.status)
            raise Skip
        logger.info("user %s purged", p.user_id)

    async def send_recovery_email(self, p: UserRef, ctx: TaskContext) -> None:
        user = await asyncio.to_thread(self.store.get_user, p.user_id)
        if user is None or user.purge_at is None or user.purge_at <= time.time():
            logger.info("no recovery email for user %s: nothing to recover", p.user_id)
            raise Skip
        await send_email(ctx, user.email, "account_recovery", self._mail_vars(user),
                         key=f"recovery-email:{ctx.id}")


def build_deletion_module(settings: Settings, store: Store) -> Module:
    module = Module("users")
    worker = DeletionWorker(settings, store)
    module.subscribe(EVENT_DELETION_REQUESTED, group=GROUP)(worker.on_deletion_requested)
    module.subscribe(EVENT_RECOVERY_REQUESTED, group=GROUP)(worker.on_recovery_requested)
    module.task(TASK_DELETE, queue=DELETION_QUEUE, rate_limit=DELETIONS_PER_DAY)(worker.delete)
    module.task(TASK_PURGE, queue=PURGE_QUEUE)(worker.purge)
    module.task(TASK_SEND_RECOVERY_EMAIL, queue=DELETION_QUEUE,
                rate_limit=RECOVERY_EMAILS_PER_USER_PER_DAY)(worker.send_recovery_email)
    return module


# -- producer API (what Chatear's HTTP handlers call) ------------------------------------


async def request_deletion(hive: Hive, user_id: str) -> int:
    return await hive.publish(EVENT_DELETION_REQUESTED, UserRef(user_id))


async def request_recovery(hive: Hive, user_id: str) -> int:
    return await hive.publish(EVENT_RECOVERY_REQUESTED, UserRef(user_id))


async def request_recovery_email(hive: Hive, user_id: str) -> None:
    await hive.enqueue(TASK_SEND_RECOVERY_EMAIL, UserRef(user_id))
