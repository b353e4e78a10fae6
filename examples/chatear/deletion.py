"""The user-deletion worker: soft delete, a recovery window, then a purge.

The flow, all of it workhive events and tasks:

1. ``user.delete`` ``{"user_id": ...}`` (group ``user-deletion``) soft-deletes the user
   (``users.is_deleted``), opens a row in ``user_deletions`` due at the end of the recovery
   window and writes an audit row, in one transaction; then enqueues ``users:purge`` for that
   deletion, delayed by the window, and publishes the "deletion scheduled" ``email.send``.
   At most **10 deletions per day in all**: ``RateLimit(10, day)`` on the subscriber, counted
   in the coordination store (Redis on the production stack); the 11th is *deferred* to the
   next day (kept delayed, not failed).
2. ``user.recover`` (the user clicked the link) restores the account while the window is open,
   and marks the deletion ``recovered``, with an audit row.
3. ``users:purge`` removes the user of a deletion that is due and still scheduled, and audits
   it; a deletion that was recovered is skipped. A user who recovers and is deleted again has
   a new deletion and its own purge.
4. ``users:send_recovery_email`` re-sends the recovery link on request, at most **2 per user
   per day** (``RateLimit(2, day, key="user_id", on_limit="reject")``): the third goes to the
   dead-letter queue with the rate-limit reason, where support can see it.

Every step is safe to run twice (at-least-once delivery): the store finds the deletion already
open and returns it, the purge task's unique key is the deletion id, and each mail's key is
derived from the deletion (or the request), so a redelivered step sends nothing twice.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import msgspec
from examples.chatear.notifications import send_email
from examples.chatear.settings import Settings
from examples.chatear.store import Deletion, Store, User

from workhive import Hive, Module, RateLimit, TaskContext
from workhive.errors import Retry, Skip

logger = logging.getLogger(__name__)

EVENT_USER_DELETE = "user.delete"
EVENT_USER_RECOVER = "user.recover"
TASK_PURGE = "users:purge"
TASK_SEND_RECOVERY_EMAIL = "users:send_recovery_email"
GROUP = "user-deletion"
DELETION_QUEUE = f"@{GROUP}"
PURGE_QUEUE = "purges"
RECOVERY_EMAIL_QUEUE = "recovery-emails"

DELETIONS_PER_DAY = 10
RECOVERY_EMAILS_PER_USER_PER_DAY = 2


class UserRef(msgspec.Struct, frozen=True):
    """``user.delete`` / ``user.recover`` payload, as Chatear publishes it."""

    user_id: str


class PurgeRequest(msgspec.Struct, frozen=True):
    user_id: str
    deletion_id: int


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class DeletionWorker:
    """The handlers, bound to settings and the store."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def _mail_vars(self, user: User, deletion: Deletion) -> dict[str, str]:
        return {"name": user.name or user.email, "purge_at": _when(deletion.purge_at),
                "recover_url": f"{self.settings.public_url}/account/recover?user={user.id}"}

    async def on_delete(self, e: UserRef, ctx: TaskContext) -> None:
        now = time.time()
        scheduled = await self.store.schedule_deletion(e.user_id, now,
                                                       now + self.settings.recovery_seconds)
        if scheduled is None:
            logger.warning("deletion of unknown user %s ignored (already purged?)", e.user_id)
            raise Skip
        deletion, user = scheduled.deletion, scheduled.user
        await ctx.enqueue(TASK_PURGE, PurgeRequest(user.id, deletion.id),
                          delay=max(deletion.purge_at - time.time(), 0.0),
                          unique_key=f"purge:{deletion.id}")
        await send_email(ctx, user.email, "account_deletion_scheduled",
                         self._mail_vars(user, deletion), key=f"deletion-scheduled:{deletion.id}")
        logger.info("user %s soft-deleted%s; purge at %s", user.id,
                    "" if scheduled.changed else " (already)", _when(deletion.purge_at))

    async def on_recover(self, e: UserRef) -> None:
        status = await self.store.recover(e.user_id, time.time())
        logger.info("recovery of user %s: %s", e.user_id, status)

    async def purge(self, p: PurgeRequest) -> None:
        outcome = await self.store.purge(p.deletion_id, time.time())
        if outcome.status == "not_due":  # a clock behind the one that scheduled it
            raise Retry(outcome.remaining, count=False,
                        reason=f"deletion {p.deletion_id} of user {p.user_id} is not due yet")
        if outcome.status != "purged":
            logger.info("purge of user %s skipped: %s", p.user_id, outcome.status)
            raise Skip
        logger.info("user %s purged", p.user_id)

    async def send_recovery_email(self, p: UserRef, ctx: TaskContext) -> None:
        user = await self.store.get_user(p.user_id)
        deletion = await self.store.open_deletion(p.user_id)
        if user is None or deletion is None or deletion.purge_at <= time.time():
            logger.info("no recovery email for user %s: nothing to recover", p.user_id)
            raise Skip
        await send_email(ctx, user.email, "account_recovery", self._mail_vars(user, deletion),
                         key=f"recovery-email:{ctx.id}")


def build_deletion_module(settings: Settings, store: Store) -> Module:
    day = settings.rate_window_seconds
    module = Module("users")
    worker = DeletionWorker(settings, store)
    module.subscribe(EVENT_USER_DELETE, group=GROUP,
                     rate_limit=RateLimit(DELETIONS_PER_DAY, day, on_limit="defer"),
                     )(worker.on_delete)
    module.subscribe(EVENT_USER_RECOVER, group=GROUP)(worker.on_recover)
    module.task(TASK_PURGE, queue=PURGE_QUEUE)(worker.purge)
    module.task(TASK_SEND_RECOVERY_EMAIL, queue=RECOVERY_EMAIL_QUEUE,
                rate_limit=RateLimit(RECOVERY_EMAILS_PER_USER_PER_DAY, day, key="user_id",
                                     on_limit="reject"))(worker.send_recovery_email)
    return module


# -- producer API (what Chatear's HTTP handlers call) ------------------------------------


async def request_deletion(hive: Hive, user_id: str) -> int | None:
    return await hive.publish(EVENT_USER_DELETE, UserRef(user_id))


async def request_recovery(hive: Hive, user_id: str) -> int | None:
    return await hive.publish(EVENT_USER_RECOVER, UserRef(user_id))


async def request_recovery_email(hive: Hive, user_id: str) -> None:
    await hive.enqueue(TASK_SEND_RECOVERY_EMAIL, UserRef(user_id))
