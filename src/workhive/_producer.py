"""What typed task handles, modules and the sync producer use of a :class:`~workhive.hive.Hive`.

The hive includes modules (which bind their task handles to it) and hands out sync producers,
while handles and producers enqueue through a hive, so one side must know the other only by
shape. Handles, modules and :mod:`workhive.sync` do: they type their hive as
:class:`ProducerHive`, which every ``Hive`` satisfies, and none of them imports the hive
module. The worker side does the same with :class:`~workhive._worker_hive.WorkerHive`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from workhive.results import ResultHandle, ResultsHive

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from workhive._task import EnqueueOptions
    from workhive.backend import EnqueueResult


class ProducerHive(ResultsHive, Protocol):
    """The producer calls a task handle or a :class:`~workhive.sync.SyncProducer` makes on its
    hive; opening and the backend (from :class:`~workhive.results.ResultsHive`) let the result
    handles they return read results."""

    async def enqueue(
        self, name: str, payload: Any = None, **options: Unpack[EnqueueOptions]
    ) -> EnqueueResult: ...

    async def publish(
        self, event: str, payload: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> int | None: ...

    def handle(self, task_id: str) -> ResultHandle[Any]: ...

    async def cancel(self, task_id: str) -> bool: ...

    async def close(self) -> None: ...
