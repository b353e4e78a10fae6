"""Declarations: what a task, a subscriber and a cron job are, and how payloads are typed.

A handler is ``fn(payload, ctx)``, ``fn(payload)`` or ``fn()``; sync or async. The first
parameter's annotation decides how the stored payload (plain builtins) is converted: pydantic
models via ``model_validate``, msgspec Structs, dataclasses and TypedDicts via
``msgspec.convert``; ``dict``/``Any``/no annotation get the builtins as they are. Conversion is
built once, at declaration, so the hot path is one call.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

import msgspec

from workhive.errors import RegistryError, ValidationError

Converter = Callable[[Any], Any]
HandlerFn = Callable[..., Any]
#: how a task derives a message's ordering key: the name of a payload field, or a function of
#: the payload (as the handler receives it: a model, a Struct, a dict...)
OrderingKey = str | Callable[[Any], Any]
ExceptionTypes = tuple[type[BaseException], ...]


class EnqueueOptions(TypedDict, total=False):
    """The options of one enqueue, in one place for every way to enqueue (``Hive.enqueue``,
    a task handle's ``enqueue`` / ``enqueue_sync``, ``SyncProducer.enqueue``); each is described
    at :meth:`workhive.Hive.build`, which checks them all."""

    queue: str | None
    priority: int | None
    delay: float | None
    eta: float | datetime | None
    max_retries: int | None
    timeout: float | None
    idempotency_key: str | None
    unique_key: str | None
    headers: Mapping[str, str] | None
    ordering_key: str | int | None
    store_result: bool | None
    result_ttl: float | None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs per ``period`` seconds, per ``key`` (a payload field or constant).

    ``key=None`` limits the task as a whole. ``kind="window"`` counts in fixed windows (``10 per
    day``); ``kind="bucket"`` is a token bucket refilled at ``limit/period`` per second with room
    for ``burst``. Over the limit the task is deferred (``on_limit="defer"``: retried when the
    window allows, not counted as a failure) or sent to the dead-letter queue (``"reject"``).
    """

    limit: int
    period: float
    key: str | None = None
    kind: Literal["window", "bucket"] = "window"
    burst: int | None = None
    on_limit: Literal["defer", "reject"] = "defer"

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0:
            raise RegistryError(f"rate limit needs limit >= 1 and period > 0, got {self}")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Per-task defaults; enqueue may override queue, priority, max_retries, timeout, the
    ordering key (``ordering_key``: see :data:`OrderingKey` and :func:`ordering_key_of`) and
    whether the result is kept (``store_result``, ``result_ttl``). ``retry_on`` (None: every
    exception) and ``dont_retry_on`` narrow which failures are retried."""

    queue: str = "default"
    priority: int = 0
    max_retries: int = 3
    timeout: float | None = None
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    rate_limit: RateLimit | None = None
    unique: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    ordering_key: OrderingKey | None = None
    retry_on: ExceptionTypes | None = None
    dont_retry_on: ExceptionTypes = ()
    store_result: bool = False
    result_ttl: float | None = None


def exception_types(option: str, value: object) -> ExceptionTypes | None:
    """An exception class or a tuple of them, as a tuple; RegistryError for anything else."""
    if value is None:
        return None
    items = value if isinstance(value, tuple | list) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise RegistryError(f"{option} takes exception classes, e.g. (TimeoutError,), "
                                f"got {item!r}")
    return tuple(items)


@dataclass(slots=True)
class Handler:
    """A callable plus what the worker needs to call it: converter, ctx flag, async flag."""

    fn: HandlerFn
    convert: Converter | None
    payload_type: Any
    wants_payload: bool
    wants_ctx: bool
    is_async: bool

    @classmethod
    def wrap(cls, fn: HandlerFn, where: str) -> Handler:
        params = list(inspect.signature(fn).parameters.values())
        if len(params) > 2:
            raise RegistryError(f"{where}: a handler takes (payload, ctx), (payload) or (); "
                                f"{fn.__qualname__} takes {len(params)} parameters")
        payload_type = _payload_annotation(fn, params[0], where) if params else Any
        return cls(
            fn=fn,
            convert=converter_for(payload_type),
            payload_type=payload_type,
            wants_payload=len(params) >= 1,
            wants_ctx=len(params) == 2,
            is_async=inspect.iscoroutinefunction(fn),
        )


@dataclass(slots=True)
class TaskDef:
    name: str
    handler: Handler
    options: TaskOptions
    flag: str | None = None


@dataclass(slots=True)
class SubscriberDef:
    """``group`` members compete for each event; every group gets every event."""

    pattern: str
    group: str
    handler: Handler
    options: TaskOptions
    flag: str | None = None

    @property
    def name(self) -> str:
        return f"{self.group}<-{self.pattern}"


@dataclass(slots=True)
class CronDef:
    """Fire ``task`` (enqueue) or ``publish`` (event) on each tick of ``schedule``.

    For ``publish`` jobs ``fn`` is called at the tick and returns the event payload.
    """

    name: str
    schedule: str
    task: str | None = None
    publish: str | None = None
    fn: HandlerFn | None = None
    payload: Any = None
    flag: str | None = None


def _payload_annotation(fn: HandlerFn, param: inspect.Parameter, where: str) -> Any:
    """Resolve the first parameter's annotation, including string (postponed) annotations."""
    if param.annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(param.annotation, str):
        return param.annotation
    try:
        return typing.get_type_hints(fn).get(param.name, Any)
    except NameError as exc:
        raise RegistryError(
            f"{where}: cannot resolve the payload annotation {param.annotation!r} of "
            f"{fn.__qualname__} ({exc}); define the type at module level"
        ) from exc


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_fields")


def converter_for(tp: Any) -> Converter | None:
    """A function turning builtins into ``tp``, or None when builtins are what it wants."""
    if tp is Any or tp is inspect.Parameter.empty or tp is None:
        return None
    if tp is dict or (typing.get_origin(tp) is dict and typing.get_args(tp)[1:] == (Any,)):
        return None  # builtins already are what the handler wants
    if _is_pydantic(tp):
        validate: Converter = tp.model_validate
        return validate
    try:
        msgspec.inspect.type_info(tp)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"cannot use {tp!r} as a payload type: {exc}") from exc

    def convert(value: Any) -> Any:
        return msgspec.convert(value, tp, strict=False)

    return convert


def to_builtins(payload: Any) -> Any:
    """Turn a payload object (Struct, dataclass, pydantic model, dict...) into builtins."""
    if payload is None or isinstance(payload, str | int | float | bool):
        return payload
    if hasattr(payload, "model_dump") and not dataclasses.is_dataclass(payload):
        return payload.model_dump(mode="json")
    return msgspec.to_builtins(payload)


def ordering_key_of(rule: OrderingKey, plain: Any, typed: Any, what: str) -> Any:
    """The raw ordering key a task's rule gives for one payload (None: this message has none);
    the caller checks its type. ``plain`` is the payload as builtins, ``typed`` as the handler
    receives it. A rule that cannot give a key is a :class:`ValidationError` at the caller."""
    if isinstance(rule, str):
        if isinstance(plain, dict) and rule in plain:
            return plain[rule]
        raise ValidationError(
            f"{what}: ordering_key names the payload field {rule!r}, which the payload "
            f"does not have (got {type(plain).__name__})")
    try:
        return rule(typed)
    except Exception as exc:  # the user's function: any failure is a bad payload for it
        raise ValidationError(
            f"{what}: the ordering_key function failed on this payload: "
            f"{type(exc).__name__}: {exc}") from exc


def validate_payload(handler: Handler, payload: Any, what: str) -> Any:
    """Convert ``payload`` for ``handler``, or raise ValidationError naming ``what`` + field."""
    if handler.convert is None:
        return payload
    try:
        return handler.convert(payload)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"invalid payload for {what}: {exc}") from exc
    except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
        detail = _pydantic_summary(exc)
        raise ValidationError(f"invalid payload for {what}: {detail}") from exc


def _pydantic_summary(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{err.get('msg', 'invalid')} - at `$.{loc}`")
        return "; ".join(parts)
    return str(exc)
