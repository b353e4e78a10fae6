"""App: runs command workers, one asyncio task each, and opens logs from URLs.

Each worker loop calls ``work()`` until it returns 0, then parks on ``log.wait_for`` (a shared
wake-up, not a poll per worker) for a jittered tick, bounded by the worker's next periodic
due time. Jitter keeps 100 workers from waking in lockstep.

``start()`` / ``stop(timeout)`` are the *service* interface ``workhive worker`` uses to run
command workers beside task workers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from workhive._redact import redact_url
from workhive.commandlog._context import AppContext
from workhive.commandlog._errors import WorkerError, WorkerStartError
from workhive.commandlog._executor import Executor
from workhive.commandlog._log import MessageLog
from workhive.commandlog._worker import LogWorker, LogWorkerInfo
from workhive.errors import ConfigError

logger = logging.getLogger(__name__)


def open_log(url: str, *, prefix: str | None = None) -> MessageLog:
    """Build (not open) a log from its URL.

    * ``sqlite:///path/app.db``: the SQLite backend's URL forms; ``?prefix=name`` picks the
      table prefix (default ``workhive``), ``?synchronous=FULL`` and ``?busy_timeout=`` tune it.
    * ``postgresql://user@host/db``: the postgres backend's URL and options (``schema``, default
      ``public`` for a log; ``pooler``, ``listen_url``...) plus ``?prefix=name``.
    * ``nats://host:4222/STREAM`` (or ``tls://``): a JetStream stream (``workhive[nats]``).
    * ``kafka://host:9092/topic`` (or ``redpanda://``): a one-partition topic
      (``workhive[kafka]``).

    The ``prefix`` keyword wins over ``?prefix=``. The path of a broker URL names the log; see
    ``docs/commandlog.md`` for their options.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in _BROKERS:
        if prefix is not None:
            raise ConfigError(f"a {_BROKERS[scheme]} log takes no prefix (that names SQL "
                              "tables): the URL's path names the log")
        return _broker_log(scheme, url)
    if scheme == "sqlite":
        from workhive.commandlog.sqlite import SQLiteMessageLog

        return SQLiteMessageLog.from_url(url, prefix=prefix)
    if scheme in {"postgres", "postgresql"}:
        try:
            from workhive.commandlog.postgres import PostgresMessageLog
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "postgres logs need asyncpg: pip install 'workhive[postgres]'"
            ) from exc
        return PostgresMessageLog(url, prefix=prefix)
    raise ConfigError(f"unsupported message log URL {redact_url(url)!r} (use sqlite:///, "
                      "postgresql://, nats://host/STREAM or kafka://host/topic)")


#: broker URL scheme -> the extra (and driver module) it needs
_BROKERS = {"nats": "nats", "tls": "nats", "kafka": "kafka", "redpanda": "kafka"}
_DRIVERS = {"nats": "nats", "kafka": "aiokafka"}


def _broker_log(scheme: str, url: str) -> MessageLog:
    extra = _BROKERS[scheme]
    try:
        if extra == "nats":
            from workhive.commandlog.nats import NatsMessageLog

            return NatsMessageLog(url)
        from workhive.commandlog.kafka import KafkaMessageLog

        return KafkaMessageLog(url)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing != _DRIVERS[extra]:
            raise
        raise ConfigError(f"{extra} logs need {_DRIVERS[extra]}: pip install "
                          f"'workhive[{extra}]'") from None


class App:
    """Owns a log, an executor and the workers that follow the log."""

    def __init__(
        self, log: MessageLog, executor: Executor | None = None, *, tick: float = 1.0
    ) -> None:
        self.log = log
        self.executor = executor if executor is not None else Executor(log)
        self.tick = tick
        self._workers: list[LogWorker] = []
        self._names: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ctx: AppContext | None = None
        self._stop: asyncio.Future[None] | None = None

    @property
    def workers(self) -> list[LogWorker]:
        return list(self._workers)

    def register_worker(self, worker: LogWorker) -> None:
        """Add a worker; names must be unique (they key the checkpoints)."""
        name = worker.info().name
        if name in self._names:
            raise WorkerError(f"a worker named {name!r} is already registered")
        if self._tasks:
            raise WorkerError("register workers before start_workers()")
        self._names.add(name)
        self._workers.append(worker)
        logger.info("registered worker %r", name, extra={"worker": name})

    def info(self) -> list[LogWorkerInfo]:
        return [w.info() for w in self._workers]

    async def start_workers(self) -> None:
        """Open the log, start (replay) every worker, then run each on its own task.

        If any worker fails in ``start``, the others are stopped again and
        :class:`WorkerStartError` names the failures.
        """
        if self._tasks:
            return
        await self.log.open()
        ctx = self._ctx = AppContext(self.log, self.executor)
        self._stop = asyncio.get_running_loop().create_future()
        results = await asyncio.gather(
            *(w.start(ctx) for w in self._workers), return_exceptions=True
        )
        failures = {
            w.info().name: r
            for w, r in zip(self._workers, results, strict=True)
            if isinstance(r, BaseException)
        }
        if failures:
            for w, r in zip(self._workers, results, strict=True):
                if not isinstance(r, BaseException):
                    await w.stop(ctx)
            raise WorkerStartError(failures)
        for w in self._workers:
            name = w.info().name
            self._tasks[name] = asyncio.create_task(self._run(w, ctx), name=f"worker:{name}")
        logger.info("started %d worker(s)", len(self._workers))

    async def _run(self, worker: LogWorker, ctx: AppContext) -> None:
        assert self._stop is not None
        stop = self._stop
        name = worker.info().name
        wakeup = getattr(worker, "next_wakeup", None)
        try:
            while not stop.done():
                try:
                    moved = await worker.work()
                except Exception:
                    logger.exception("worker %r: work() failed", name, extra={"worker": name})
                    moved = 0
                if moved or stop.done():
                    await asyncio.sleep(0)  # let other workers run between batches
                    continue
                timeout = self.tick * random.uniform(0.8, 1.2)
                due = wakeup() if wakeup is not None else None
                if due is not None:
                    timeout = min(timeout, due)
                last = getattr(worker, "last_processed_id", None)
                if not isinstance(last, int):
                    last = worker.info().last_processed_id
                waiter: asyncio.Future[Any] = asyncio.ensure_future(
                    self.log.wait_for(last, timeout)
                )
                waitables: set[asyncio.Future[Any]] = {waiter, stop}
                await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    await asyncio.gather(waiter, return_exceptions=True)
        finally:
            try:
                await worker.stop(ctx)
            except Exception:
                logger.exception("worker %r: stop() failed", name, extra={"worker": name})

    async def stop_workers(self, timeout: float = 30.0) -> list[str]:
        """Signal every worker, wait up to ``timeout`` seconds, return those that did not stop.

        Workers still running after the timeout are cancelled (and reported in the log).
        """
        if not self._tasks:
            return []
        assert self._stop is not None and self._ctx is not None
        self._ctx.stopping.set()
        if not self._stop.done():
            self._stop.set_result(None)
        tasks = dict(self._tasks)
        self._tasks.clear()
        _, pending = await asyncio.wait(tasks.values(), timeout=timeout)
        stuck = sorted(name for name, task in tasks.items() if task in pending)
        if stuck:
            logger.warning("workers did not stop within %.1fs, cancelling: %s", timeout, stuck)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        for name, task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.error("worker %r crashed: %r", name, task.exception())
        logger.info("stopped %d worker(s)", len(tasks) - len(stuck))
        return stuck

    async def close(self, timeout: float = 30.0) -> list[str]:
        """Stop the workers first, then close the log."""
        stuck = await self.stop_workers(timeout)
        await self.log.close()
        return stuck

    # -- service interface used by `workhive worker` ---------------------------------------
    async def start(self) -> None:
        await self.start_workers()

    async def stop(self, timeout: float) -> None:
        await self.close(timeout)
