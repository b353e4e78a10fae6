"""Pausing a NATS queue: the paused set is one KV key, changed with compare-and-set (see
tests/backends/_pauses.py for the worker scenario)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.backends._pauses import paused_queue_waits_and_resumes
from tests.backends.nats.conftest import Make
from workhive import Hive
from workhive.errors import ValidationError
from workhive.pauses import SupportsPause, pauses_of


async def test_a_paused_queue_waits_in_nats_and_runs_once_resumed(make: Make) -> None:
    backend = make()
    hive = Hive(backend)
    try:
        assert pauses_of(backend) is backend
        await paused_queue_waits_and_resumes(hive)
    finally:
        await hive.close()


async def test_two_dashboards_pausing_different_queues_lose_no_change(make: Make) -> None:
    one, two = make(), make()
    await one.open()
    await two.open()
    assert isinstance(one, SupportsPause)
    names = [f"q{i}" for i in range(12)]
    await asyncio.gather(*(b.set_paused(q, True)
                           for q, b in zip(names, [one, two] * 6, strict=True)))
    assert await one.paused_queues() == set(names)
    await asyncio.gather(*(b.set_paused(q, False)
                           for q, b in zip(names[::2], [two, one] * 3, strict=True)))
    await one.set_paused(names[1], True)  # idempotent
    assert await two.paused_queues() == set(names[1::2])
    with pytest.raises(ValidationError, match="queue to pause or resume"):
        await one.set_paused("", True)


async def test_with_a_coordination_store_nats_keeps_its_own_pauses(make: Make,
                                                                   tmp_path: Path) -> None:
    hive = Hive(make(), coordination=f"sqlite:///{tmp_path}/store.db")
    try:
        await hive.open()
        store = pauses_of(hive.backend)
        assert store is getattr(hive.backend, "transport", None)
    finally:
        await hive.close()
