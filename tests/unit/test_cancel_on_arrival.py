"""Where cancel deletes a waiting task itself, the worker makes no extra call per fetched batch;
a composite keeps its transport's own cancel when the transport has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workhive import Hive, Module
from workhive.backend import Capability
from workhive.backends.composite import Composite
from workhive.backends.memory import MemoryBackend
from workhive.testing import run_until_idle


async def test_a_backend_that_deletes_waiting_tasks_is_not_checked_per_batch(
        tmp_path: Path) -> None:
    m, ran = Module("cx"), []

    @m.task("cx:work")
    async def work(p: dict[str, int]) -> None:
        ran.append(p["n"])

    hive = Hive(f"sqlite:///{tmp_path / 'hive.db'}")
    hive.include(m)
    checks: list[int] = []
    real = hive.backend.cancelled  # type: ignore[attr-defined]

    async def counting(ids: Any) -> set[str]:
        checks.append(len(ids))
        found: set[str] = await real(ids)
        return found

    hive.backend.cancelled = counting  # type: ignore[attr-defined]
    try:
        sent = [(await hive.enqueue("cx:work", {"n": n})).id for n in range(10)]
        assert await hive.cancel(sent[0]) is True  # deleted where it waited
        worker = await run_until_idle(hive, concurrency=4, cancel_poll=3600)
    finally:
        await hive.close()
    assert sorted(ran) == list(range(1, 10))
    assert checks == [] and not worker._tracker.screens


async def test_a_composite_keeps_the_transport_s_own_cancel() -> None:
    backend = Composite(MemoryBackend(), MemoryBackend())
    assert backend.features.has(Capability.CANCEL) and not backend.cancel_on_arrival
    assert Capability.CANCEL not in backend.delegated
