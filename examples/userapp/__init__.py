"""The example application: the app ``workhive demo`` runs (``workhive.demo``: the user module's
tasks behind feature flags, users/todos events, a cron job, an outbox instead of real mail),
configured the way a deployed app is, by its ``config/`` directory, and tested on every broker.

* :mod:`.app` — ``hive``, the factory ``workhive worker --app examples.userapp.app:hive`` runs.
"""
