"""The SQL engine under the SQLite and PostgreSQL backends.

Layers, from the bottom:

* :mod:`.dialect`: how each engine spells the shared statements (table prefix, clock,
  parameters, the few functions named differently);
* :mod:`.engine`: operations as generators of queries, driven by a blocking sqlite3
  connection or an async asyncpg one;
* :mod:`.layout`: the tables, the schema version and :func:`~.layout.migrate`;
* one module per concept: :mod:`.coordination` (events, cron ticks, counters, key claims),
  :mod:`.deadletters`, :mod:`.inspection` (stats, heartbeats), :mod:`.results` (results and
  cancel), :mod:`.history` (history and paused queues), :mod:`.browse`, :mod:`.housekeeping`;
* :mod:`.backend`: :class:`~.backend.SQLBackend`, all of the above behind the backend
  protocols, over one engine's :class:`~.backend.Database`.

What stays with each engine (``backends/sqlite``, ``backends/postgres``): connecting, settings
and error translation, how an idle fetch waits, and the hot claim / settle / enqueue statements.
"""
