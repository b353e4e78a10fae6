"""The application object: config, backend, registry, and the producer API.

A :class:`Hive` is passed around explicitly (no global current app). The worker runtime
(:mod:`workhive.worker`), the cron scheduler and the inspector are separate roles that read the
hive; producers only need ``enqueue``/``publish``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workhive import _validate as check
from workhive._envelope import Envelope, make_envelope
from workhive._task import (
    CronDef,
    EnqueueOptions,
    SubscriberDef,
    TaskDef,
    TaskOptions,
    ordering_key_of,
    validate_payload,
)
from workhive._worker_hive import Service
from workhive.backend import (
    Backend,
    Capability,
    EnqueueResult,
    events_of,
    has,
    require,
)
from workhive.backends import open_backend
from workhive.config import HiveConfig, load_config
from workhive.errors import CapabilityError, RegistryError, UnknownTaskError, ValidationError
from workhive.middleware import Middleware, default_middleware
from workhive.module import Module
from workhive.results import RESULT_HEADER, ResultHandle, cancel_task, result_keep

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from workhive.sync import SyncProducer
    from workhive.worker import Worker

logger = logging.getLogger(__name__)

class Hive:
    """Config + backend + registry. ``backend`` is a URL or a Backend instance.

    ``coordination`` (a URL or Backend; default ``worker.coordination`` from the config) is the
    store for cron claims, rate counters, unique keys, heartbeats and dead letters when the
    backend cannot keep them itself (RabbitMQ): ``Hive("amqp://...", coordination="redis://...")``.

    ``flags`` are the feature flags (a ``featureflags.yaml``): a declaration with
    ``flag="x"`` is registered only when ``flags["x"]`` is true; enqueueing a task that a flag
    switched off is logged and dropped, so callers need not know the flag.
    """

    def __init__(
        self,
        backend: str | Backend | None = None,
        *,
        coordination: str | Backend | None = None,
        config: HiveConfig | None = None,
        flags: Mapping[str, bool] | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        self.config = config or HiveConfig()
        self.backend: Backend = self.connect(backend, coordination)
        self.flags: dict[str, bool] = dict(self.config.worker.tasks)
        self.flags.update(flags or {})
        self.middleware: list[Middleware] = (
            list(middleware) if middleware is not None else default_middleware()
        )
        self.tasks: dict[str, TaskDef] = {}
        self.subscribers: list[SubscriberDef] = []
        self.crons: dict[str, CronDef] = {}
        self.disabled: dict[str, str] = {}  # declaration name -> the flag that turned it off
        self.modules: list[Module] = []
        self.services: list[Service] = []
        #: Called with each new message's headers before the caller's own are added (which
        #: win): how tracing puts the producer's trace context into messages
        #: (:func:`workhive.middleware.otel.instrument`).
        self.header_injectors: list[Callable[[dict[str, str]], None]] = []
        self._opened = False

    def connect(self, backend: str | Backend | None = None,
                coordination: str | Backend | None = None) -> Backend:
        """The backend this hive uses for ``backend`` (default: the config's), wrapped with
        its coordination store (default: ``worker.coordination``) when there is one."""
        transport = self._build(backend, self.config.backend_url())
        # the store depends on the transport really used: one that coordinates itself needs none
        used = backend if isinstance(backend, str) and backend else (
            f"{transport.name}://" if backend is not None else None)
        store = coordination if coordination is not None else self.config.coordination_url(used)
        if not store:
            return transport
        from workhive.backends.composite import Composite

        return Composite(transport, self._build(store, ""))

    def _build(self, backend: str | Backend | None, default_url: str) -> Backend:
        if backend is None or isinstance(backend, str):
            url = backend or default_url
            return open_backend(url, **self.config.backend_options(url))
        return backend

    @classmethod
    def from_config(cls, path: str | None = None, **kwargs: Any) -> Hive:
        """Build from ``workhive.yaml`` (or ``$WORKHIVE_CONFIG``) plus environment overrides."""
        return cls(config=load_config(path), **kwargs)

    def __repr__(self) -> str:
        return (f"Hive(backend={self.backend.name!r}, tasks={len(self.tasks)}, "
                f"subscribers={len(self.subscribers)}, crons={len(self.crons)})")

    # -- registration -----------------------------------------------------------------

    def flag_enabled(self, flag: str | None) -> bool:
        return flag is None or bool(self.flags.get(flag, False))

    def include(self, *modules: Module) -> None:
        """Register a module's declarations that its feature flags allow."""
        for module in modules:
            logger.info("Registering module %s", module.name)
            for task in module.tasks:
                if self._gate(task.name, task.flag):
                    self._register_task(task)
            for sub in module.subscribers:
                if self._gate(sub.name, sub.flag):
                    self._check_events(sub.name)
                    self._check_options(sub.name, sub.options)
                    if any(s.name == sub.name for s in self.subscribers):
                        raise RegistryError(f"subscriber {sub.name!r} is registered twice")
                    self.subscribers.append(sub)
                    logger.info("Registered subscriber: %s", sub.name)
            for job in module.crons:
                if self._gate(job.name, job.flag):
                    require(self.backend, Capability.CRON, f"cron job {job.name}")
                    if job.name in self.crons:
                        raise RegistryError(f"cron job {job.name!r} is registered twice")
                    self.crons[job.name] = job
                    logger.info("Registered cron job: %s (%s)", job.name, job.schedule)
            module.bind(self)  # its task handles now enqueue here
            self.modules.append(module)

    def _check_events(self, subscriber: str) -> None:
        events_of(self.backend, f"subscriber {subscriber}")
        if not has(self.backend, Capability.EVENTS):
            logger.warning(
                "Subscriber %s on the %r backend is at-most-once: every listening process gets "
                "every event, and events published while none listens are lost; use the "
                "'redis' or 'sqlite' backend for durable groups", subscriber, self.backend.name)

    def _gate(self, name: str, flag: str | None) -> bool:
        if self.flag_enabled(flag):
            return True
        assert flag is not None
        self.disabled[name] = flag
        if flag in self.flags:
            logger.info("Skipped %s: feature flag %r is off", name, flag)
        else:
            # An unset flag is off, so a forgotten config line silently drops every enqueue
            # of this task: say so loudly, naming the flag and how to turn it on.
            logger.warning(
                "Skipped %s: feature flag %r is not set, so it is off (enable it with "
                "'worker.tasks: {%s: true}' in the config or Hive(flags={%r: True}))",
                name, flag, flag, flag)
        return False

    def unset_flags(self) -> dict[str, str]:
        """Declarations switched off by a flag the config never mentions: name -> flag.

        A flag set to false is a decision; a flag nobody set is usually a forgotten line.
        :mod:`workhive.testing` refuses to run with any, so a test cannot pass by doing nothing.
        """
        return {name: flag for name, flag in self.disabled.items() if flag not in self.flags}

    def _check_options(self, name: str, options: TaskOptions) -> None:
        known = frozenset().union(*(mw.options for mw in self.middleware))
        unknown = set(options.extra) - known
        if unknown:
            raise RegistryError(
                f"{name!r}: unknown option(s) {sorted(unknown)}; no middleware reads "
                f"them (known extra options: {sorted(known) or 'none'})"
            )
        if options.rate_limit is not None:
            require(self.backend, Capability.COUNTERS, f"rate limit on {name}")
        if options.priority:
            require(self.backend, Capability.PRIORITY, f"priority of {name}")
        if options.unique:
            require(self.backend, Capability.UNIQUE, f"unique task {name}")
        if options.ordering_key is not None:
            require(self.backend, Capability.ORDERED_KEYS, f"ordering_key of task {name}")
        if options.store_result:
            require(self.backend, Capability.RESULTS, f"store_result of task {name}")
        self._check_hold(options.timeout, name)

    def _check_hold(self, timeout: float | None, name: str) -> None:
        """A timeout the backend cannot honour (it takes a message back after ``max_hold``,
        RabbitMQ's consumer_timeout) is refused where it is declared or asked for."""
        hold = self.backend.features.max_hold
        if timeout is not None and hold is not None and timeout > hold:
            raise CapabilityError(
                f"{name!r}: timeout {timeout:g}s is longer than the {self.backend.name!r} "
                f"backend lets a message be held unacknowledged ({hold:g}s; RabbitMQ's "
                "consumer_timeout); lower the timeout or raise the server's limit and declare it "
                "in the backend URL")

    def _register_task(self, task: TaskDef) -> None:
        if task.name in self.tasks:
            raise RegistryError(f"task {task.name!r} is registered twice")
        self._check_options(task.name, task.options)
        self.tasks[task.name] = task
        logger.info("Registered handler: %s", task.name)

    def add_service(self, service: Service) -> None:
        """Run ``service`` (e.g. a command-log ``App``) inside every worker of this hive:
        started before the consumer, stopped with the worker's shutdown timeout."""
        self.services.append(service)
        logger.info("Registered service: %s", type(service).__name__)

    def check_runnable(self) -> None:
        """Raise CapabilityError unless this backend can run this hive's handlers.

        Tasks need durable queues; subscribers alone can run on an at-most-once event backend
        (redis-pubsub). Checked before a worker starts, so the error comes before any fetch.
        """
        if self.tasks or (not self.subscribers and not self.services):
            require(self.backend, Capability.QUEUE, "running a worker")
        elif self.subscribers:
            events_of(self.backend, "running subscribers")

    def queues(self) -> list[str]:
        """Every queue this hive's handlers consume: task queues, then subscriber groups."""
        names = dict.fromkeys(t.options.queue for t in self.tasks.values())
        names.update(dict.fromkeys(s.options.queue for s in self.subscribers))
        return list(names)

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the backend and bind this hive's subscriber groups (so events published
        from here on are kept for them even before a worker starts)."""
        if self._opened:
            return
        await self.backend.open()
        self._opened = True
        await self.bind_subscribers()

    async def bind_subscribers(self) -> None:
        """Persist every subscriber group's binding (idempotent). Workers call it at start, so
        a module included after :meth:`open` still gets its events."""
        if self.subscribers:
            events = events_of(self.backend, "subscribers")
            for sub in self.subscribers:
                await events.bind(sub.pattern, sub.group)

    async def close(self) -> None:
        """Close the backend (also when it was used without :meth:`open`; close is idempotent)."""
        self._opened = False
        await self.backend.close()

    async def __aenter__(self) -> Hive:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- producer ---------------------------------------------------------------------

    async def enqueue(
        self, name: str, payload: Any = None, **options: Unpack[EnqueueOptions]
    ) -> EnqueueResult:
        """Enqueue one task; see :meth:`build` for the options (:meth:`handle` follows the
        result of the returned id)."""
        env = self.build(name, payload, **options)
        if env is None:
            return EnqueueResult("", duplicate=False)
        await self.open()
        (result,) = await self.backend.enqueue([env])
        return result

    async def enqueue_many(self, envelopes: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store many pre-built envelopes (from :meth:`build`) in one round trip."""
        await self.open()
        return await self.backend.enqueue(envelopes)

    def build(
        self,
        name: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        eta: float | datetime | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        unique_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ordering_key: str | int | None = None,
        store_result: bool | None = None,
        result_ttl: float | None = None,
    ) -> Envelope | None:
        """Validate and build the envelope for a task; None if a feature flag disabled it.

        ``ordering_key``: messages with the same key run one at a time, in enqueue order (an
        int becomes its decimal string); without it, the task's declared ``ordering_key`` rule
        derives one from the payload. Refused unless the backend declares
        ``Capability.ORDERED_KEYS``.

        A task declared in this hive has its payload validated here, so bad input fails at the
        caller. A task declared elsewhere (a producer without the handler code) needs an
        explicit ``queue=``: without the declaration nobody knows where it goes.

        ``store_result`` / ``result_ttl`` (seconds): keep this run's result (default: the
        task's declaration; giving ``result_ttl`` implies ``store_result``). Refused unless the
        backend declares ``Capability.RESULTS``.

        Every option is checked first (:mod:`workhive._validate`, rules in
        ``docs/validation.md``): a bad one raises ``ValidationError`` naming it, and a payload
        MessagePack cannot carry raises ``SerializationError``, before any backend call.
        """
        check.name(name)
        queue = check.text("queue", queue)
        priority = check.priority(priority)
        delay = check.seconds("delay", delay)
        at = check.eta(eta)
        max_retries = check.max_retries(max_retries)
        timeout = check.seconds("timeout", timeout)
        idempotency_key = check.text("idempotency_key", idempotency_key)
        unique_key = check.text("unique_key", unique_key)
        header_map = self._producer_headers(headers)
        key = check.ordering_key(ordering_key)
        result_ttl = check.seconds("result_ttl", result_ttl)
        if store_result is not None and not isinstance(store_result, bool):
            raise ValidationError(f"store_result must be True or False, got {store_result!r}")
        if delay is not None and at is not None:
            raise ValidationError("pass delay= or eta=, not both")
        task = self.tasks.get(name)
        if task is None:
            if name in self.disabled:
                logger.info("Dropped %s: feature flag %r is off", name, self.disabled[name])
                return None
            if queue is None:
                known = ", ".join(sorted(self.tasks)) or "none"
                raise UnknownTaskError(
                    f"unknown task {name!r} (registered: {known}); pass queue= to send a task "
                    "declared in another service"
                )
        plain = check.payload(payload, f"task {name!r}")
        typed = (validate_payload(task.handler, plain, f"task {name!r}") if task is not None
                 else plain)
        if key is None and task is not None and task.options.ordering_key is not None:
            what = f"task {name!r}"
            raw = ordering_key_of(task.options.ordering_key, plain, typed, what)
            key = check.ordering_key(raw, f"the ordering key of {what} (from its payload)")
        if key is not None:
            require(self.backend, Capability.ORDERED_KEYS, f"ordering_key of task {name}")
        when = at if at is not None else (time.time() + delay if delay else None)
        if when is not None:
            require(self.backend, Capability.DELAY, f"delayed task {name}")
        if priority:
            require(self.backend, Capability.PRIORITY, f"priority for task {name}")
        self._check_hold(timeout, name)
        if idempotency_key is not None or unique_key is not None or (task and task.options.unique):
            require(self.backend, Capability.UNIQUE, f"unique/idempotent task {name}")
        if task is not None and task.options.unique and unique_key is None:
            unique_key = name
        opts = task.options if task is not None else None
        keep = result_keep(store_result, result_ttl, opts)
        if keep is not None:
            require(self.backend, Capability.RESULTS, f"store_result of task {name}")
            header_map[RESULT_HEADER] = repr(keep)
        return make_envelope(
            name,
            plain,
            queue=queue or (opts.queue if opts else "default"),
            priority=priority if priority is not None else (opts.priority if opts else 0),
            eta=when,
            max_retries=max_retries,
            timeout=timeout,
            idempotency_key=idempotency_key,
            unique_key=f"{name}:{unique_key}" if unique_key is not None else None,
            ordering_key=key,
            headers=header_map,
        )

    def _producer_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """The caller's headers (validated) over what the :attr:`header_injectors` add."""
        own = check.headers(headers)
        if not self.header_injectors:
            return own
        injected: dict[str, str] = {}
        for inject in self.header_injectors:
            inject(injected)
        return {**check.headers(injected), **own}

    async def publish(
        self, event: str, payload: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> int | None:
        """Publish an event to every subscribed group; returns how many groups got a copy, or
        None when the broker fans out itself and does not say (RabbitMQ)."""
        if not event:
            raise RegistryError("event name must not be empty")
        check.name(event, "event name")
        plain = check.payload(payload, f"event {event!r}")
        header_map = self._producer_headers(headers)
        await self.open()
        events = events_of(self.backend, f"publish {event}")
        env = make_envelope(event, plain, kind="event", headers=header_map)
        return await events.publish(env)

    # -- results and cancellation ------------------------------------------------------

    def handle(self, task_id: str) -> ResultHandle[Any]:
        """Follow a task enqueued by name: ``await hive.handle(id).result(timeout=5)``."""
        return ResultHandle(self, task_id)

    async def cancel(self, task_id: str) -> bool:
        """Cancel a task: True when it was waiting (pending or delayed) and is now deleted;
        False when it was flagged: the worker running it stops it, and on a broker (RabbitMQ,
        Kafka, NATS with a coordination store), which cannot delete a waiting message, a task
        that still waits is dropped when a worker receives it (see
        :func:`workhive.results.cancel_task`). Refused unless the backend declares
        ``Capability.CANCEL``."""
        return await cancel_task(self, task_id)

    # -- roles ------------------------------------------------------------------------

    def sync(self) -> SyncProducer:
        """A blocking producer for sync code; see :class:`workhive.sync.SyncProducer`."""
        from workhive.sync import SyncProducer

        return SyncProducer(self)

    def worker(self, **options: Any) -> Worker:
        """A worker runtime for this hive; see :class:`workhive.worker.Worker`."""
        from workhive.worker import Worker

        return Worker(self, **options)
