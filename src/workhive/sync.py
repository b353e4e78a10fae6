"""A blocking producer for sync code (Flask and Django views, scripts, Celery-style callers).

``SyncProducer(hive).enqueue(...)`` runs the hive's async producer on a private event loop in a
daemon thread and waits for the result, so the call has the same validation, errors and
guarantees as ``await hive.enqueue(...)``. The hive's backend connections then belong to that
loop: use one hive either through a SyncProducer or from your own event loop, not both.
Thread-safe: many threads may call one producer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from workhive.backend import EnqueueResult
    from workhive.hive import Hive

T = TypeVar("T")


class SyncProducer:
    def __init__(self, hive: Hive) -> None:
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

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._start()).result()

    def enqueue(self, name: str, payload: Any = None, **options: Any) -> EnqueueResult:
        """Blocking :meth:`Hive.enqueue`: same options, same errors."""
        return self._call(self.hive.enqueue(name, payload, **options))

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
