"""What both stores (SQLite, PostgreSQL) say the same way, whatever their SQL dialect.

The column lists of the reads that build :class:`~examples.chatear.store.User` and
:class:`~examples.chatear.store.Deletion` (the row mappers rely on their order), and the
deletion state machine's refusals, so that both stores answer alike by construction.
"""

from __future__ import annotations

from examples.chatear.store import Deletion, Purge

#: the users columns a User is built from, in the order the stores' row mappers read them
USER_COLUMNS = "id, email, name, is_deleted, deleted_at"
#: every deletion column, in Deletion's field order
SELECT_DELETIONS = ("SELECT id, user_id, requested_at, purge_at, status, resolved_at "
                    "FROM user_deletions")


def purge_refusal(deletion: Deletion, now: float) -> Purge | None:
    """Why ``deletion`` is not purged at ``now`` (the answer to return), or None if it is due.

    Only a ``scheduled`` deletion whose window has closed is purged; a recovered or already
    purged one stays as it is, so a redelivered purge changes nothing.
    """
    if deletion.status == "recovered":
        return Purge("recovered")
    if deletion.status == "purged":
        return Purge("already_purged")
    if deletion.purge_at > now:
        return Purge("not_due", deletion.purge_at - now)
    return None
