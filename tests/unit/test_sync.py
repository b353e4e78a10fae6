"""The blocking producer: same validation and errors as the async one, usable from threads."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from workhive import Hive, Module, UnknownTaskError, ValidationError
from workhive.testing import run_until_idle

m = Module("s")
ran: list[int] = []


@m.task("s:add")
async def add(p: dict[str, int]) -> None:
    ran.append(p["n"])


def test_sync_producer_from_many_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    producer_hive = Hive(url)
    producer_hive.include(m)
    with producer_hive.sync() as producer:
        threads = [threading.Thread(target=producer.enqueue, args=("s:add", {"n": n}))
                   for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with pytest.raises(ValidationError, match="invalid payload for task 's:add'"):
            producer.enqueue("s:add", {"n": "x"})
        with pytest.raises(UnknownTaskError):
            producer.enqueue("s:nope")
        assert producer.publish("nobody.listens", {}) == 0

    async def drain() -> None:
        worker_hive = Hive(url)
        worker_hive.include(m)
        await run_until_idle(worker_hive)
        await worker_hive.close()

    asyncio.run(drain())
    assert sorted(ran) == list(range(20))
