"""Chatear's background workers (seed 003), rebuilt on workhive.

* :mod:`.notifications` — ``notify:send_email``: templates rendered and sent by real SMTP,
  transient failures retried with backoff, 5xx dead-lettered, idempotent sends;
* :mod:`.deletion` — the user-deletion worker: soft delete, 24 h recovery window, purge,
  audit log, 10 deletions/day and 2 recovery emails per user per day;
* :mod:`.store` — the SQL tables (users, action_logs, sent_messages) on stdlib sqlite3;
* :mod:`.mailer`, :mod:`.rendering`, :mod:`.settings` — SMTP, ``templates/*.txt``, env;
* :mod:`.app` — ``hive``, the factory ``workhive worker --app examples.chatear.app:hive`` runs.
"""
