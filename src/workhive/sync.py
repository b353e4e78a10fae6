"""A blocking producer for sync code (Flask and Django views, scripts, Celery-style callers).

``SyncProducer(hive).enqueue(...)`` runs the hive's async producer on a private event loop in a
daemon thread and waits for the result, so the call has the same validation, errors and
guarantees as ``await hive.enqueue(...)``. The hive's backend connections then belong to that
loop: use one hive either through a SyncProducer or from your own event loop, not both.
Thread-safe: many threads may call one producer.

Typed task handles (``task.enqueue_sync(payload)``) use :meth:`SyncProducer.of`, one shared
producer per hive, and return a :class:`SyncResultHandle` whose ``result()`` blocks.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from workhive._producer import ProducerHive
    from workhive._task import EnqueueOptions
    from workhive.backend import EnqueueResult
    from workhive.results import ResultHandle, TaskStatus

T = TypeVar("T")
R = TypeVar("R")


class SyncProducer:
    _shared: ClassVar[weakref.WeakKeyDictionary[ProducerHive, SyncProducer]] = \
        weakref.WeakKeyDictionary()
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, hive: ProducerHive) -> SyncProducer:
        """The hive's shared producer (made on first use), as typed handles' ``enqueue_sync``
        use it."""
        with cls._shared_lock:
            producer = cls._shared.get(hive)
            if producer is None:
                producer = cls._shared[hive] = cls(hive)
            return producer

    def __init__(self, hive: ProducerHive) -> None:
        self.hive = hive
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="workhive-producer",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this producer's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._start()).result()

    _call = call

    def enqueue(
        self, name: str, payload: Any = None, **options: Unpack[EnqueueOptions]
    ) -> EnqueueResult:
        """Blocking :meth:`Hive.enqueue`: same options, same errors."""
        return self._call(self.hive.enqueue(name, payload, **options))

    def cancel(self, task_id: str) -> bool:
        """Blocking :meth:`Hive.cancel`."""
        return self._call(self.hive.cancel(task_id))

    def handle(self, task_id: str) -> SyncResultHandle[Any]:
        """Follow a task enqueued by name (blocking :meth:`Hive.handle`)."""
        return SyncResultHandle(self, self.hive.handle(task_id))

    def publish(self, event: str, payload: Any = None, **options: Any) -> int | None:
        """Blocking :meth:`Hive.publish`."""
        return self._call(self.hive.publish(event, payload, **options))

    def close(self) -> None:
        """Close the hive's backend and stop the private loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.hive.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncResultHandle(Generic[R]):
    """A :class:`~workhive.results.ResultHandle` whose methods block (run on the producer's
    loop)."""

    def __init__(self, producer: SyncProducer, handle: ResultHandle[R]) -> None:
        self.producer = producer
        self.handle = handle

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def duplicate(self) -> bool:
        return self.handle.duplicate

    def __repr__(self) -> str:
        return f"SyncResultHandle(id={self.id!r}, duplicate={self.duplicate})"

    def status(self) -> TaskStatus:
        return self.producer.call(self.handle.status())

    def result(self, timeout: float | None = None) -> R:
        return self.producer.call(self.handle.result(timeout))

    def cancel(self) -> bool:
        return self.producer.call(self.handle.cancel())
