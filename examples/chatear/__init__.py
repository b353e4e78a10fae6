"""Chatear's background workers on workhive: NATS + PostgreSQL + Redis, or one SQLite file.

* :mod:`.notifications` — ``email.send`` events: templates (or literal subject and body) sent
  by real SMTP, transient failures retried with backoff, 5xx dead-lettered, each mail sent once
  even when a worker is killed mid-send (the ledger protocol in its docstring);
* :mod:`.deletion` — ``user.delete`` / ``user.recover``: soft delete, recovery window, purge,
  audit trail, 10 deletions a day and 2 recovery emails per user a day;
* :mod:`.store` — the state behind one interface, on SQLite or PostgreSQL (asyncpg);
* :mod:`.mailer`, :mod:`.rendering`, :mod:`.settings` — SMTP, ``templates/*.txt``, env;
* :mod:`.app` — ``hive``, the factory ``workhive worker --app examples.chatear.app:hive`` runs;
  the stack follows ``NATS_URL``, ``REDIS_URL`` and ``DATABASE_URL``.
"""
