"""A :class:`Module` groups tasks, subscribers and cron jobs; a Hive includes modules.

Declaring is side-effect free: nothing is registered anywhere until ``hive.include(module)``,
which applies the hive's feature flags (per-module registrars, as Go apps write them). There is
no global registry and no implicit current app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from workhive._task import (
    CronDef,
    Handler,
    HandlerFn,
    OrderingKey,
    RateLimit,
    SubscriberDef,
    TaskDef,
    TaskOptions,
    exception_types,
)
from workhive.errors import RegistryError
from workhive.handles import TaskHandle

if TYPE_CHECKING:
    from workhive._producer import ProducerHive

F = TypeVar("F", bound=HandlerFn)
P = TypeVar("P")
R = TypeVar("R")
C = TypeVar("C")  # the context parameter's type (TaskContext, or whatever the handler says)


class TaskDecorator(Protocol):
    """What ``module.task(...)`` returns: turns a handler into a :class:`TaskHandle` whose
    ``enqueue`` takes the handler's payload type and whose results have its return type."""

    @overload
    def __call__(
        self, fn: Callable[[], Coroutine[Any, Any, R]]
    ) -> TaskHandle[None, R, [], Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(
        self, fn: Callable[[P], Coroutine[Any, Any, R]]
    ) -> TaskHandle[P, R, [P], Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(
        self, fn: Callable[[P, C], Coroutine[Any, Any, R]]
    ) -> TaskHandle[P, R, [P, C], Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[[], R]) -> TaskHandle[None, R, [], R]: ...

    @overload
    def __call__(self, fn: Callable[[P], R]) -> TaskHandle[P, R, [P], R]: ...

    @overload
    def __call__(self, fn: Callable[[P, C], R]) -> TaskHandle[P, R, [P, C], R]: ...


class Module:
    """A named set of declarations, e.g. ``Module("user")`` with its email and export tasks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[TaskDef] = []
        self.subscribers: list[SubscriberDef] = []
        self.crons: list[CronDef] = []
        self.handles: dict[str, TaskHandle[Any, Any, ..., Any]] = {}

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
        ordering_key: OrderingKey | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        dont_retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        store_result: bool = False,
        result_ttl: float | None = None,
        flag: str | None = None,
        **extra: Any,
    ) -> TaskDecorator:
        """Declare a task. ``name`` defaults to ``"<module>:<function>"``. Returns a
        :class:`~workhive.handles.TaskHandle`: the function itself, plus a typed ``enqueue``.

        ``unique=True``: at most one pending copy per ``unique_key`` given at enqueue (or per
        task when none is given). ``ordering_key``: messages with the same key run one at a
        time, in enqueue order (a payload field name, e.g. ``"user_id"``, or a function of the
        payload, e.g. ``lambda p: p.user_id``; a key given at enqueue wins; the backend must
        declare ``Capability.ORDERED_KEYS``). ``flag``: registered only when that feature flag
        is on. ``extra`` options are checked against the middleware that reads them at include
        time.

        ``retry_on``: retry only these exceptions (and subclasses); ``dont_retry_on``: never
        retry these. A failure not retried goes to the dead-letter queue at once.
        ``store_result=True`` keeps each run's return value (or failure) for ``result_ttl``
        seconds (default one day; giving ``result_ttl`` implies ``store_result``); the backend
        must declare ``Capability.RESULTS``.
        """
        if max_retries < 0:
            raise RegistryError(f"max_retries must be >= 0, got {max_retries}")
        if timeout is not None and timeout <= 0:
            raise RegistryError(f"timeout must be > 0 seconds, got {timeout}")
        if ordering_key is not None and not callable(ordering_key) and \
                not (isinstance(ordering_key, str) and ordering_key):
            raise RegistryError("ordering_key must be a payload field name or a function of the "
                                f"payload, got {ordering_key!r}")
        if result_ttl is not None and (isinstance(result_ttl, bool) or not isinstance(
                result_ttl, int | float) or not math.isfinite(result_ttl) or result_ttl <= 0):
            raise RegistryError(f"result_ttl must be a number of seconds > 0, got {result_ttl!r}")
        options = TaskOptions(
            queue, priority, max_retries, timeout, retry_backoff, retry_backoff_max, rate_limit,
            unique, dict(extra), ordering_key,
            retry_on=exception_types("retry_on", retry_on),
            dont_retry_on=exception_types("dont_retry_on", dont_retry_on) or (),
            store_result=store_result or result_ttl is not None,
            result_ttl=None if result_ttl is None else float(result_ttl))

        def register(fn: Any) -> Any:
            if isinstance(fn, TaskHandle):  # one function declared as two tasks
                fn = fn.fn
            task_name = name or f"{self.name}:{fn.__name__}"
            self._check_new(task_name, [t.name for t in self.tasks])
            definition = TaskDef(task_name, Handler.wrap(fn, task_name), options, flag)
            self.tasks.append(definition)
            handle: TaskHandle[Any, Any, ..., Any] = TaskHandle(fn, definition)
            self.handles[task_name] = handle
            return handle

        return register

    def bind(self, hive: ProducerHive) -> None:
        """Tell this module's task handles that ``hive`` includes them (``hive.include``)."""
        for handle in self.handles.values():
            handle.bind(hive)

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
        from workhive._cron import validate_schedule

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
