"""A :class:`Module` groups tasks, subscribers and cron jobs; a Hive includes modules.

Declaring is side-effect free: nothing is registered anywhere until ``hive.include(module)``,
which applies the hive's feature flags (seed 000's per-module registrars). There is no global
registry and no implicit current app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from workhive._task import (
    CronDef,
    Handler,
    HandlerFn,
    RateLimit,
    SubscriberDef,
    TaskDef,
    TaskOptions,
)
from workhive.errors import RegistryError

F = TypeVar("F", bound=HandlerFn)


class Module:
    """A named set of declarations, e.g. ``Module("user")`` with its email and export tasks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[TaskDef] = []
        self.subscribers: list[SubscriberDef] = []
        self.crons: list[CronDef] = []

    def __repr__(self) -> str:
        return (f"Module({self.name!r}, tasks={len(self.tasks)}, "
                f"subscribers={len(self.subscribers)}, crons={len(self.crons)})")

    def task(
        self,
        name: str | None = None,
        *,
        queue: str = "default",
        priority: int = 0,
        max_retries: int = 3,
        timeout: float | None = None,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 600.0,
        rate_limit: RateLimit | None = None,
        unique: bool = False,
        flag: str | None = None,
        **extra: Any,
    ) -> Callable[[F], F]:
        """Declare a task. ``name`` defaults to ``"<module>:<function>"``.

        ``unique=True``: at most one pending copy per ``unique_key`` given at enqueue (or per
        task when none is given). ``flag``: registered only when that feature flag is on.
        ``extra`` options are checked against the middleware that reads them at include time.
        """
        if max_retries < 0:
            raise RegistryError(f"max_retries must be >= 0, got {max_retries}")
        if timeout is not None and timeout <= 0:
            raise RegistryError(f"timeout must be > 0 seconds, got {timeout}")
        options = TaskOptions(queue, priority, max_retries, timeout, retry_backoff,
                              retry_backoff_max, rate_limit, unique, dict(extra))

        def register(fn: F) -> F:
            task_name = name or f"{self.name}:{fn.__name__}"
            self._check_new(task_name, [t.name for t in self.tasks])
            self.tasks.append(TaskDef(task_name, Handler.wrap(fn, task_name), options, flag))
            return fn

        return register

    def subscribe(
        self,
        pattern: str,
        *,
        group: str,
        max_retries: int = 3,
        timeout: float | None = None,
        retry_backoff: float = 1.0,
        rate_limit: RateLimit | None = None,
        flag: str | None = None,
        **extra: Any,
    ) -> Callable[[F], F]:
        """Subscribe ``group`` to events matching ``pattern`` (``users.created``, ``todos.*``).

        Every group gets its own durable copy of each event; workers in one group compete.
        """
        if not group or "@" in group:
            raise RegistryError(f"subscriber group must be a non-empty name without '@': {group!r}")
        options = TaskOptions(queue=f"@{group}", max_retries=max_retries, timeout=timeout,
                              retry_backoff=retry_backoff, rate_limit=rate_limit,
                              extra=dict(extra))

        def register(fn: F) -> F:
            where = f"subscriber {group}<-{pattern}"
            sub = SubscriberDef(pattern, group, Handler.wrap(fn, where), options, flag)
            self._check_new(sub.name, [s.name for s in self.subscribers])
            self.subscribers.append(sub)
            return fn

        return register

    def cron(
        self,
        schedule: str,
        *,
        name: str | None = None,
        publish: str | None = None,
        queue: str = "default",
        max_retries: int = 3,
        timeout: float | None = None,
        flag: str | None = None,
    ) -> Callable[[F], F]:
        """Run on a cron schedule (5 fields, or 6 with seconds last).

        Without ``publish`` the function becomes a task (named ``"<module>:<function>"``) that
        each tick enqueues once. With ``publish`` the function is called at the tick and its
        return value is published as that event.
        """
        from workhive.scheduler.cron import validate_schedule

        validate_schedule(schedule)

        def register(fn: F) -> F:
            job_name = name or f"{self.name}:{fn.__name__}"
            self._check_new(job_name, [c.name for c in self.crons])
            kind: Literal["publish", "task"] = "publish" if publish else "task"
            if kind == "task":
                self.task(job_name, queue=queue, max_retries=max_retries, timeout=timeout,
                          flag=flag)(fn)
                self.crons.append(CronDef(job_name, schedule, task=job_name, flag=flag))
            else:
                self.crons.append(CronDef(job_name, schedule, publish=publish, fn=fn, flag=flag))
            return fn

        return register

    def _check_new(self, name: str, existing: list[str]) -> None:
        if name in existing:
            raise RegistryError(f"{name!r} is declared twice in module {self.name!r}")
