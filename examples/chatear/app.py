"""Chatear's :class:`~workhive.Hive`: ``workhive worker --app examples.chatear.app:hive``.

The stack follows the same environment variables as Chatear's other services, each one
moving one piece off the embedded default:

========================  ==================================  ===============================
variable                  set                                 unset (embedded default)
========================  ==================================  ===============================
``NATS_URL``              events and tasks on NATS JetStream  SQLite file ``chatear-queue.db``
``REDIS_URL``             rate limits, worker heartbeats in   kept by the queue backend
                          Redis (workhive's coordination
                          store)
``DATABASE_URL``          users, deletions, audit, mail       SQLite file ``chatear.db``
                          ledger in PostgreSQL
========================  ==================================  ===============================

workhive's own ``WORKHIVE_BACKEND`` / ``WORKHIVE_COORDINATION`` win over the first two.
``hive`` is a factory so importing this module touches no database, reads no environment and
opens no socket; the CLI calls it once per worker, tests call :func:`create_hive` with their
own settings, environment and backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import yaml
from examples.chatear.deletion import build_deletion_module
from examples.chatear.notifications import build_notifications_module
from examples.chatear.settings import Settings
from examples.chatear.store import Store, open_store

from workhive import Backend, Hive, HiveConfig
from workhive.config import BACKEND_ALIASES, parse_config

CONFIG_PATH = Path(__file__).with_name("workhive.yaml")


def load_chatear_config(env: Mapping[str, str]) -> HiveConfig:
    """This package's ``workhive.yaml`` with ``WORKHIVE_*`` (and URL) overrides from ``env``."""
    raw = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    return parse_config(raw, str(CONFIG_PATH), dict(env))


@dataclass(frozen=True, slots=True)
class Stack:
    """Where the queue and the coordination store are: a config for the transport, and the
    coordination store's URL (None: the transport keeps its own counters)."""

    config: HiveConfig
    coordination: str | None


def choose_stack(config: HiveConfig, env: Mapping[str, str]) -> Stack:
    """The queue on NATS when ``NATS_URL`` is set, the coordination store on Redis when
    ``REDIS_URL`` is, unless workhive's own variables (or the config) chose otherwise.

    The Redis store is passed to the hive explicitly (``Hive(..., coordination=url)``): the
    NATS backend has counters of its own, and only an explicit store moves them to Redis.
    """
    worker = config.worker
    if env.get("NATS_URL") and not env.get("WORKHIVE_BACKEND"):
        nats = msgspec.structs.replace(worker.nats, url=env["NATS_URL"])
        worker = msgspec.structs.replace(worker, backend="nats", nats=nats)
        config = msgspec.structs.replace(config, worker=worker)
    transport = BACKEND_ALIASES.get(worker.backend, worker.backend)
    redis_url = env.get("REDIS_URL")
    if (not redis_url or env.get("WORKHIVE_COORDINATION") or worker.coordination
            or transport == "redis" or worker.backend.startswith(("redis://", "rediss://"))):
        return Stack(config, None)
    return Stack(config, redis_url)


def create_hive(
    config: HiveConfig | None = None,
    *,
    settings: Settings | None = None,
    backend: str | Backend | None = None,
    coordination: str | Backend | None = None,
    store: Store | None = None,
    env: Mapping[str, str] | None = None,
) -> Hive:
    """The notification and user-deletion workers on one hive.

    ``config`` comes first because ``workhive ... --config FILE`` calls the factory with it;
    without one, this package's ``workhive.yaml`` plus overrides from ``env`` apply. ``env``
    (default ``os.environ``) picks the stack (see the module doc) and the settings; ``backend``
    and ``coordination`` (URLs or Backends) and ``store`` win over what it picks.
    """
    env = os.environ if env is None else env
    settings = settings if settings is not None else Settings.from_env(env)
    stack = choose_stack(config if config is not None else load_chatear_config(env), env)
    store = store if store is not None else open_store(settings)
    if coordination is None:
        coordination = stack.coordination
    hive = Hive(backend, coordination=coordination, config=stack.config)
    hive.include(build_notifications_module(settings, store),
                 build_deletion_module(settings, store))
    hive.add_service(store)  # tables checked before the first message, pool closed at exit
    return hive


#: what ``workhive worker --app examples.chatear.app:hive`` calls (with ``--config FILE``, the
#: config is passed in; otherwise this package's ``workhive.yaml`` and the environment apply)
hive = create_hive
