"""Typed task handles: what ``@module.task(...)`` returns.

A :class:`TaskHandle` is still the function it decorates (call it directly in unit tests), and
it can enqueue itself with the payload type its handler declares, so mypy checks producers::

    @users.task("user:send_welcome_email", store_result=True)
    async def send_welcome_email(p: WelcomeEmail, ctx: TaskContext) -> str: ...

    run = await send_welcome_email.enqueue(WelcomeEmail(user_id=7), delay=60)
    receipt: str = await run.result(timeout=30)
    send_welcome_email.enqueue_sync(WelcomeEmail(user_id=8))      # from sync code

**Which hive.** A handle learns its hive when its module is included (``hive.include``). A
module included in several live hives makes ``enqueue`` ambiguous: it then needs ``hive=``
(a :class:`RegistryError` says so). Hives are held weakly, so a hive that is gone (a test's)
does not count. String names keep working: ``hive.enqueue("user:send_welcome_email", {...})``.
"""

from __future__ import annotations

import functools
import typing
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from workhive._task import EnqueueOptions, TaskDef, converter_for
from workhive.errors import RegistryError
from workhive.results import ResultHandle

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from workhive._producer import ProducerHive
    from workhive.sync import SyncProducer, SyncResultHandle

P = TypeVar("P")  # the payload type the handler declares
R = TypeVar("R")  # what the handler returns (awaited, for async handlers)
A = ParamSpec("A")  # the handler's own parameters, for direct calls
T = TypeVar("T")  # the handler's own return type (a coroutine for async handlers)


class TaskHandle(Generic[P, R, A, T]):
    """A declared task: callable as its function, and able to enqueue itself."""

    def __init__(self, fn: Callable[A, T], definition: TaskDef) -> None:
        self.fn = fn
        self.definition = definition
        self._hives: weakref.WeakSet[ProducerHive] = weakref.WeakSet()
        self._convert = _result_converter(fn)
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return self.definition.name

    def __repr__(self) -> str:
        return f"TaskHandle({self.name!r})"

    def __call__(self, *args: A.args, **kwargs: A.kwargs) -> T:
        return self.fn(*args, **kwargs)

    def bind(self, hive: ProducerHive) -> None:
        """Called by ``hive.include``: enqueue goes to this hive (see the module docs)."""
        self._hives.add(hive)

    def hive_for(self, hive: ProducerHive | None) -> ProducerHive:
        if hive is not None:
            return hive
        hives = list(self._hives)
        if len(hives) == 1:
            return hives[0]
        if not hives:
            raise RegistryError(f"task {self.name!r} is not in any hive: include its module "
                                "(hive.include(module)) or pass hive=")
        raise RegistryError(f"task {self.name!r} is included in {len(hives)} hives; pass "
                            "hive= to say which one to enqueue to")

    async def enqueue(
        self, payload: P, *, hive: ProducerHive | None = None, **options: Unpack[EnqueueOptions]
    ) -> ResultHandle[R]:
        """Enqueue this task (options as :meth:`Hive.enqueue`); a handle on the run."""
        target = self.hive_for(hive)
        sent = await target.enqueue(self.name, payload, **options)
        return ResultHandle(target, sent.id, duplicate=sent.duplicate, convert=self._convert)

    def enqueue_sync(
        self, payload: P, *, producer: SyncProducer | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> SyncResultHandle[R]:
        """Blocking :meth:`enqueue` for sync code, through ``producer`` (default: the hive's
        shared :meth:`SyncProducer.of`)."""
        from workhive.sync import SyncProducer, SyncResultHandle

        sync = producer if producer is not None else SyncProducer.of(self.hive_for(None))
        handle = sync.call(self.enqueue(payload, hive=sync.hive, **options))
        return SyncResultHandle(sync, handle)


def _result_converter(fn: Callable[..., Any]) -> Callable[[Any], Any] | None:
    """Turn a stored result (builtins) back into the handler's declared return type, when that
    type is one payload conversion understands (a model, Struct, dataclass...)."""
    try:
        hint = typing.get_type_hints(fn).get("return", Any)
        return converter_for(hint)
    except Exception:  # an annotation we cannot resolve or convert: give builtins back
        return None


__all__ = ["TaskHandle"]
