"""Chatear's :class:`~workhive.Hive`: ``workhive worker --app examples.chatear.app:hive``.

``hive`` is a factory so importing this module touches no database, reads no environment and
opens no socket; the CLI calls it once per worker, tests call :func:`create_hive` with their own
settings (a throwaway SMTP server, a database under ``tmp_path``) and backend.
"""

from __future__ import annotations

from pathlib import Path

from examples.chatear.deletion import build_deletion_module
from examples.chatear.notifications import build_notifications_module
from examples.chatear.settings import Settings
from examples.chatear.store import Store

from workhive import Backend, Hive, HiveConfig, load_config

CONFIG_PATH = Path(__file__).with_name("workhive.yaml")


def create_hive(
    config: HiveConfig | None = None,
    *,
    settings: Settings | None = None,
    backend: str | Backend | None = None,
) -> Hive:
    """The notification and user-deletion workers on one hive.

    ``config`` comes first because ``workhive ... --config FILE`` calls the factory with it;
    without one, this package's ``workhive.yaml`` plus ``WORKHIVE_*`` overrides apply (SQLite
    file ``chatear-queue.db`` out of the box). ``settings`` default to the environment
    (:meth:`Settings.from_env`); ``backend`` (a URL or a Backend) wins over the config's.
    """
    settings = settings if settings is not None else Settings.from_env()
    store = Store(settings.db_path)
    hive = Hive(backend, config=config if config is not None else load_config(CONFIG_PATH))
    hive.include(build_notifications_module(settings, store),
                 build_deletion_module(settings, store))
    return hive


hive = create_hive
