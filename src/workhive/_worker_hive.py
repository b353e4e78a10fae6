"""What the worker runtime uses of a :class:`~workhive.hive.Hive`, as protocols.

The hive builds workers (:meth:`Hive.worker <workhive.hive.Hive.worker>`) and the worker runs a
hive, so one of the two must know the other only by shape. The worker does: it types its hive
as :class:`WorkerHive`, which every ``Hive`` satisfies, and neither module imports the other
at load time. :class:`Service` lives here too because the hive keeps a list of them.
"""

from __future__ import annotations

from typing import Any, Protocol

from workhive._task import CronDef, SubscriberDef, TaskDef
from workhive.backend import Backend, EnqueueResult
from workhive.config import HiveConfig
from workhive.middleware import Middleware


class Service(Protocol):
    """Something that runs beside the task consumer (e.g. a command-log ``App``)."""

    async def start(self) -> None: ...

    async def stop(self, timeout: float) -> None: ...


class WorkerHive(Protocol):
    """The registry, backend and producer calls a worker reads from its hive."""

    config: HiveConfig
    backend: Backend
    tasks: dict[str, TaskDef]
    subscribers: list[SubscriberDef]
    crons: dict[str, CronDef]
    disabled: dict[str, str]
    services: list[Service]
    middleware: list[Middleware]

    def queues(self) -> list[str]: ...

    def check_runnable(self) -> None: ...

    async def open(self) -> None: ...

    async def bind_subscribers(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(
        self, name: str, payload: Any = None, *args: Any, **options: Any
    ) -> EnqueueResult: ...

    async def publish(
        self, event: str, payload: Any = None, *args: Any, **options: Any
    ) -> int | None: ...
