"""The demo application ``workhive demo`` runs, shipped inside the package.

It needs nothing but ``pip install workhive``: no configuration file, no broker, no checkout.
The same app, with a ``config/`` directory and tests against every broker, lives in the
repository's ``examples/userapp``; this copy is self-contained on purpose, so an installed
package never depends on files outside it.

* :mod:`.user` — four tasks behind feature flags, plus one that always fails so the
  dead-letter queue has something to show;
* :mod:`.todos` — ``users.created`` fanned out to two subscriber groups, and a cron job;
* :mod:`.services` — the outbox and audit log the handlers write to (no real network);
* :mod:`.scenario` — the batch of tasks and events the demo enqueues;
* :mod:`.app` — :func:`create_hive`, also runnable as
  ``workhive worker --app workhive.demo.app:hive``.
"""
