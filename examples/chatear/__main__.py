"""``python -m examples.chatear``: the few state commands an operator needs.

Events and tasks go through workhive's own CLI (``workhive publish user.delete ...``); these
read and change the state database the same environment points at (``DATABASE_URL`` or
``CHATEAR_DB``)::

    python -m examples.chatear add-user u1 ada@example.com Ada
    python -m examples.chatear show u1            # user, deletions, audit trail
    python -m examples.chatear mail KEY           # a mail's ledger status
    python -m examples.chatear forget-mail KEY    # after an "outcome unknown" was checked
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from examples.chatear.settings import Settings
from examples.chatear.store import Store, open_store


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


async def _run(args: argparse.Namespace, store: Store) -> int:
    if args.command == "add-user":
        await store.add_user(args.user_id, args.email, args.name)
        print(f"user {args.user_id} added")
        return 0
    if args.command == "show":
        user = await store.get_user(args.user_id)
        print(f"user {args.user_id}: " + ("gone" if user is None else
              f"{user.email} deleted={user.is_deleted} deleted_at={_when(user.deleted_at)}"))
        for d in await store.deletions(args.user_id):
            print(f"  deletion {d.id}: {d.status}, requested {_when(d.requested_at)}, "
                  f"purge at {_when(d.purge_at)}")
        for entry in await store.audit_log(args.user_id):
            print(f"  {_when(entry.at)} {entry.action} {entry.detail}")
        return 0
    if args.command == "mail":
        print(await store.mail_status(args.key) or "no such mail")
        return 0
    if await store.forget_mail(args.key):
        print(f"mail {args.key} forgotten: replaying its request sends it")
        return 0
    print(f"mail {args.key} is not pending (sent, or unknown key): nothing forgotten")
    return 1


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; ``env`` (default ``os.environ``) says where the state is."""
    parser = argparse.ArgumentParser(prog="python -m examples.chatear", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-user", help="create a user")
    add.add_argument("user_id")
    add.add_argument("email")
    add.add_argument("name", nargs="?", default="")
    sub.add_parser("show", help="a user, their deletions and audit trail").add_argument("user_id")
    sub.add_parser("mail", help="a mail's ledger status").add_argument("key")
    sub.add_parser("forget-mail", help="drop an unfinished mail so a replay sends it"
                   ).add_argument("key")
    args = parser.parse_args(argv)

    async def go() -> int:
        store = open_store(Settings.from_env(env))
        try:
            return await _run(args, store)
        finally:
            await store.close()

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
