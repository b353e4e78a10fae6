"""``workhive dashboard``: a small web UI over :class:`~workhive.inspector.Inspector`.

Server-rendered HTML with a little inline JavaScript that refreshes the tables every two
seconds from the ``/api`` JSON endpoints; no JS framework, no build step, no external assets
(the dashboard must work on machines without internet). Needs the ``dashboard`` extra
(``pip install 'workhive[dashboard]'``: Starlette and uvicorn); importing this package without
it raises ImportError, which the CLI turns into that hint.

Use it from the command line (``workhive dashboard --app myapp.tasks:hive``) or mount
``create_app(hive)`` in your own ASGI server.
"""

from workhive.dashboard._app import create_app

__all__ = ["create_app"]
