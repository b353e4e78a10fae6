"""The worker runtime: small supervised components in one task group.

* **consumer** leases only for free slots: at most ``concurrency`` messages are running or
  waiting to be settled, plus one batch being committed, so a worker never hoards work it
  cannot start and a kill -9 redelivers at most ``2 * concurrency`` messages; it starts one
  asyncio task per message;
* **settler** (:mod:`workhive._settler`) batches outcomes into one backend call per flush —
  while one flush is in flight the next batch accumulates, so batches grow with load;
* **lease keeper** extends the leases of running messages every ``lease / 3`` s, so a slow task
  is never mistaken for a dead worker, while a killed worker's messages come back after
  ``lease`` seconds;
* **cron** and **heartbeat** loops, and any extra *services* (command-log workers);
* **cancel watcher** (:mod:`workhive._tracking`): polls the backend's cancel flags of running
  tasks every ``cancel_poll`` s (where a cancel only flags a waiting task, as on a broker, the
  consumer also checks each fetched batch and drops the flagged ones unrun); the tracker also
  records results and progress for messages that ask for them.

Acknowledgement happens only after the handler returned (at-least-once). A handler exception, a
malformed message, an unknown task or an invalid payload settles that one message (retry or
dead-letter with the reason) and never stops the worker.

Shutdown (:meth:`Worker.stop`): stop fetching, let running handlers finish within
``shutdown_timeout``, then cancel the rest and *release* them (back to the queue, attempt not
counted). ``stop(force=True)`` — the second SIGTERM — skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workhive._context import TaskContext
from workhive._envelope import Envelope, decode, new_id
from workhive._outcome import settlement_for
from workhive._settler import Settler
from workhive._task import Handler, TaskOptions, validate_payload
from workhive._tracking import Tracker
from workhive._worker_hive import Service, WorkerHive
from workhive.backend import (
    Delivery,
    Settlement,
    SupportsCapacity,
    SupportsInspect,
    SupportsStats,
    WorkerInfo,
    event_group,
    topic_matches,
)
from workhive.errors import (
    BackendError,
    RegistryError,
    Reject,
    Retry,
    SerializationError,
    ValidationError,
)
from workhive.history import HistoryRecorder
from workhive.middleware import CallNext, Metrics, PrometheusMetrics, build_chain
from workhive.pauses import PauseWatch

logger = logging.getLogger(__name__)


class Worker:
    """Consume a hive's queues. One instance per process is typical; run several processes to
    scale out (they compete through the backend's leases)."""

    def __init__(
        self,
        hive: WorkerHive,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        shutdown_timeout: float | None = None,
        lease: float | None = None,
        poll_interval: float = 0.5,
        cron: bool = True,
        services: Sequence[Service] = (),
        threads: int | None = None,
        cancel_poll: float = 1.0,
    ) -> None:
        cfg = hive.config.worker
        self.hive = hive
        self.backend = hive.backend
        self.queues = list(queues or cfg.queues or hive.queues())
        self.concurrency = concurrency or cfg.concurrency
        self.shutdown_timeout = (
            cfg.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        )
        self.lease = lease or cfg.lease
        self.poll_interval = poll_interval
        self.cron_enabled = cron and bool(hive.crons)
        self.services = [*hive.services, *services]
        self.id = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        self.processed = 0
        #: seconds between heartbeats (what dashboards and ``workhive status`` see is this old)
        self.heartbeat_interval = 5.0
        #: cron job -> [tick, fired_at, outcome] of the last tick this worker fired, carried by
        #: the heartbeat so every dashboard shows each job's last fire
        self.cron_fired: dict[str, list[Any]] = {}
        #: cron job -> [tick, settled_at, action] of the last run of its task (or event) here
        self.cron_runs: dict[str, list[Any]] = {}
        self._threads = threads or min(32, self.concurrency)
        # fetch in half-batches: the next fetch runs in the backend while this one is handled
        self._batch = max(1, self.concurrency // 2)
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[asyncio.Task[None], Delivery] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._force = False
        self._settler = Settler(self.backend, self._handover)
        # results, progress, and cancel requests (polled every cancel_poll s while tasks run)
        self._tracker = Tracker(self.backend, cancel_poll)
        self._unsettled = 0  # leased and not yet handed to settle: never more than concurrency
        self._retry_due = 0.0  # latest eta of a failure retry this worker scheduled
        self._routes: dict[str, tuple[Handler, TaskOptions]] = {
            name: (t.handler, t.options) for name, t in hive.tasks.items()
        }
        self._chains: dict[int, CallNext] = {}  # id(TaskOptions) -> its middleware chain
        self.metrics = next((m for m in hive.middleware if isinstance(m, Metrics)), None)
        self._prometheus = [m for m in hive.middleware if isinstance(m, PrometheusMetrics)]
        self._history = HistoryRecorder(self.backend)  # per-minute outcomes for dashboards
        self._pauses = PauseWatch(self.backend)  # queues paused from the dashboard

    # -- control ------------------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Ask the worker to shut down (safe to call from a signal handler via the loop)."""
        if self._stopping.is_set():
            force = True  # a second request means "now"
        self._force = self._force or force
        self._stopping.set()
        self._slot_freed.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def run(self, *, until_idle: bool = False, wait_delayed: bool = True) -> None:
        """Run until :meth:`stop` (or, with ``until_idle``, until the queues are empty).

        ``wait_delayed=False``: idle means nothing ready or running, and no retry this worker
        scheduled still to come; tasks delayed into the future by someone else are left.
        """
        if not self.queues and not self.services:
            raise RegistryError("this worker has nothing to run: register tasks, subscribers "
                                "or a service (hive.add_service) first")
        self.hive.check_runnable()
        await self.hive.open()
        await self.hive.bind_subscribers()
        if isinstance(self.backend, SupportsCapacity):
            self.backend.set_capacity(self.concurrency)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="workhive")
        self._log_startup()
        for service in self.services:
            await service.start()
        background: list[asyncio.Task[None]] = [
            asyncio.create_task(self._lease_loop(), name="workhive-leases"),
            asyncio.create_task(self._heartbeat_loop(), name="workhive-heartbeat"),
            asyncio.create_task(self._tracker.watch(), name="workhive-cancels"),
        ]
        if self.cron_enabled:
            from workhive.scheduler.loop import run_cron

            background.append(asyncio.create_task(run_cron(self.hive, self._stopping,
                                                           self.cron_fired)))
        settler = asyncio.create_task(self._settler.run(), name="workhive-settler")
        try:
            await self._consume(until_idle, wait_delayed)
            await self._drain()
        finally:
            if self._inflight:  # run() itself was cancelled (wait_for, task group): release
                for task in list(self._inflight):
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)
            for service in self.services:
                await service.stop(self.shutdown_timeout)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            # never cancel a settle mid-flight (the batch would be lost until its lease ran
            # out): ask the settler to finish, then flush whatever is left
            self._settler.close()
            await settler
            await self._settler.flush_all()
            await self._history.close()
            await self._forget()
            self._pool.shutdown(wait=False, cancel_futures=True)
            logger.info("Worker %s stopped (%d processed)", self.id, self.processed)

    def _log_startup(self) -> None:
        # the backend as the user named it (asynq, redpanda...), never its URL
        label = self.hive.config.backend_label(self.backend.name)
        logger.info("Worker %s starting: backend=%s queues=%s concurrency=%d", self.id,
                    label, ",".join(self.queues), self.concurrency)
        logger.info("Worker server running (backend: %s)", label)

    # -- consumer -----------------------------------------------------------------------

    async def _consume(self, until_idle: bool, wait_delayed: bool) -> None:
        if not self.queues:  # services only (command-log workers): nothing to fetch
            if not until_idle:
                await self._stopping.wait()
            return
        failures = 0
        while not self._stopping.is_set():
            free = self.concurrency - self._unsettled
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            wait = 0.05 if until_idle else self.poll_interval
            queues = await self._pauses.active(self.queues)
            if not queues:  # every queue is paused
                if until_idle:
                    return
                await self._sleep_unless_stopping(self.poll_interval)
                continue
            try:
                deliveries = await self.backend.fetch(queues, min(free, self._batch),
                                                      lease=self.lease, wait=wait)
                failures = 0
            except Exception as exc:  # a backend bug must not kill the worker either
                failures += 1
                delay = min(30.0, 0.1 * 2 ** min(failures, 8))
                logger.error("fetch failed (%s); retrying in %.1fs", exc, delay,
                             exc_info=not isinstance(exc, BackendError))
                await self._sleep_unless_stopping(delay)
                continue
            self._unsettled += len(deliveries)
            # a broker's cancel only flags a waiting task: one look at the flags per batch
            dropped = await self._tracker.screen(deliveries) if self._tracker.screens else None
            for delivery in deliveries:
                task = asyncio.create_task(self._process(delivery, dropped))
                self._inflight[task] = delivery
                task.add_done_callback(self._on_done)
            if until_idle and not deliveries and await self._idle(wait_delayed):
                return

    async def _idle(self, wait_delayed: bool) -> bool:
        if self._inflight or self._settler.pending:
            return False
        if not isinstance(self.backend, SupportsStats):
            return True
        # read the clock before the stats: a retry that falls due while they are being read
        # shows as delayed in them, and must still count as pending here
        retries_pending = time.time() < self._retry_due
        for stat in await self.backend.stats():
            if stat.queue not in self.queues or self._pauses.is_paused(stat.queue):
                continue
            if stat.ready or stat.in_flight or (stat.delayed and (wait_delayed or
                                                                  retries_pending)):
                return False
        return True

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self.processed += 1

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _drain(self) -> None:
        """Give running handlers ``shutdown_timeout`` to finish, then cancel and release."""
        if not self._inflight:
            return
        if not self._force:
            logger.info("Waiting up to %.0fs for %d running task(s)", self.shutdown_timeout,
                        len(self._inflight))
            deadline = time.monotonic() + self.shutdown_timeout
            while self._inflight and not self._force:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._slot_freed.wait()
        if self._inflight:
            logger.warning("Returning %d unfinished task(s) to the queue", len(self._inflight))
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # -- one message --------------------------------------------------------------------

    async def _process(self, delivery: Delivery, dropped: frozenset[str] | None = None) -> None:
        started = time.time()
        try:
            env = decode(delivery.body)
        except SerializationError as exc:
            self._dead_before_handler(delivery, None, str(exc))
            self._settle(settlement_for(delivery, None, exc, time.time()))
            return
        outcome: BaseException | None = None
        route = self._route(env, delivery.queue)
        if dropped and env.id in dropped:  # cancelled while it waited (Tracker.screen)
            outcome = self._tracker.drop(env, delivery.queue)
        elif route is None:
            outcome = Reject(self._unknown_reason(env, delivery.queue))
            self._dead_before_handler(delivery, env, outcome.reason)
        else:
            handler, options = route
            try:
                payload = validate_payload(handler, env.payload, f"{env.kind} {env.name!r}")
            except ValidationError as exc:
                outcome = Reject(str(exc))
                self._dead_before_handler(delivery, env, outcome.reason)
            else:
                ctx = TaskContext(env, delivery, handler, options, self.hive, payload)
                chain = self._chains.get(id(options)) or self._chain_for(options)
                try:
                    await chain(ctx)
                except asyncio.CancelledError as exc:
                    self._settle(settlement_for(delivery, env, exc, time.time()))
                    raise
                except Exception as exc:  # Retry, Reject, Skip, or a crash without Retries
                    outcome = exc
        settlement = settlement_for(delivery, env, outcome, time.time())
        if self._tracker.records(env):  # asked for its result
            await self._tracker.finish(env, settlement, outcome)
        if isinstance(outcome, Retry) and outcome.count:  # run_until_idle waits for it
            self._retry_due = max(self._retry_due, settlement.eta)
        self._history.observe(delivery.queue, env, settlement.action, started)
        if "cron" in env.headers:  # a cron job's run: how it ended goes in the heartbeat
            self.cron_runs[env.headers["cron"]] = [env.headers.get("cron_tick", ""),
                                                   time.time(), settlement.action]
        self._settle(settlement)

    def _dead_before_handler(self, delivery: Delivery, env: Envelope | None, reason: str) -> None:
        """Never a silent dead letter: no middleware saw this message, so log and count it here."""
        if env is None:
            logger.error("Dead-lettered a malformed message from queue %s: %s", delivery.queue,
                         reason, extra={"queue": delivery.queue})
        else:
            logger.error("Dead-lettered %s %s (%s) from queue %s before its handler ran: %s",
                         env.kind, env.name, env.id, delivery.queue, reason, extra={
                             "task_id": env.id, "task": env.name, "queue": delivery.queue,
                             "attempt": env.attempt})
        for prom in self._prometheus:  # labelled as the handler path labels it: env.queue
            prom.count_dead_before_handler(env.name if env else None,
                                           env.queue if env else delivery.queue)

    def _chain_for(self, options: TaskOptions) -> CallNext:
        layers = [mw for mw in self.hive.middleware if mw.applies(options)]
        chain = self._chains[id(options)] = build_chain(layers, self._execute)
        return chain

    def _route(self, env: Envelope, queue: str) -> tuple[Handler, TaskOptions] | None:
        if env.kind == "task":
            return self._routes.get(env.name)
        # the group is the queue that delivered the event: brokers fan out without telling
        group = event_group(queue) or env.group
        for sub in self.hive.subscribers:
            if sub.group == group and topic_matches(sub.pattern, env.name):
                return sub.handler, sub.options
        return None

    def _unknown_reason(self, env: Envelope, queue: str) -> str:
        if env.name in self.hive.disabled:
            return f"task {env.name!r} is disabled by feature flag {self.hive.disabled[env.name]!r}"
        if env.kind == "event":
            group = event_group(queue) or env.group
            return f"no subscriber in group {group!r} for event {env.name!r}"
        return f"unknown task {env.name!r}: no handler registered in this worker"

    async def _execute(self, ctx: TaskContext) -> None:
        handler = ctx.handler
        if handler.wants_ctx:
            args: tuple[Any, ...] = (ctx.payload, ctx)
        elif handler.wants_payload:
            args = (ctx.payload,)
        else:
            args = ()
        if handler.is_async:
            await self._tracker.execute(ctx, functools.partial(handler.fn, *args))
        else:
            loop = asyncio.get_running_loop()
            # the thread runs in this task's context: spans and contextvars reach sync handlers
            call = functools.partial(contextvars.copy_context().run, handler.fn, *args)
            await self._tracker.execute(ctx, lambda: loop.run_in_executor(self._pool, call))

    # -- settlement, leases, heartbeat ------------------------------------------------------

    def _settle(self, settlement: Settlement) -> None:
        self._settler.add(settlement)

    def _handover(self, delta: int) -> None:
        self._unsettled += delta
        if delta < 0:
            self._slot_freed.set()

    async def _lease_loop(self) -> None:
        if self.backend.features.lease != "timed":
            return  # session leases live as long as the connection; nothing to extend
        while True:
            await asyncio.sleep(self.lease / 3)
            running = list(self._inflight.values())
            if running:
                try:
                    await self.backend.extend(running, self.lease)
                except Exception as exc:
                    logger.error("lease extension failed: %s", exc)

    async def _heartbeat_loop(self) -> None:
        if not isinstance(self.backend, SupportsInspect):
            return
        started = time.time()
        while True:
            info = WorkerInfo(self.id, socket.gethostname(), os.getpid(), self.queues,
                              self.concurrency, started, time.time(),
                              {"processed": self.processed, "in_flight": len(self._inflight),
                               "progress": self._tracker.snapshot(),
                               "running": self._tracker.running_tasks(),
                               "cron": self.cron_fired, "cron_runs": self.cron_runs})
            try:
                await self.backend.heartbeat(info, ttl=15.0)
            except Exception as exc:
                logger.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.heartbeat_interval)

    async def _forget(self) -> None:
        if isinstance(self.backend, SupportsInspect):
            with contextlib.suppress(BackendError):
                await self.backend.forget_worker(self.id)
