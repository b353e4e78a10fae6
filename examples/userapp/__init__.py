"""The seeds' example application as one package, run by ``workhive demo`` and the tests.

* :mod:`.user` — seed 000's user module: four tasks behind feature flags, plus one task that
  always fails so the dead-letter queue has something to show;
* :mod:`.todos` — seed 004's users/todos events: two subscriber groups on ``users.created``
  and a cron job publishing ``todos.overdue.check``;
* :mod:`.services` — the outbox and audit log the handlers write to (no real network);
* :mod:`.app` — ``hive``, the factory ``workhive worker --app examples.userapp.app:hive`` runs.
"""
