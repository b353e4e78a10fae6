"""Pausing a RabbitMQ queue: the paused set lives in the coordination store, and the worker
cancels the paused queue's consumers so its messages wait in RabbitMQ, none held unacked
(see tests/backends/_pauses.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends._pauses import paused_in_the_coordination_store
from workhive import Hive
from workhive.pauses import pauses_of

pytestmark = [pytest.mark.rabbitmq, pytest.mark.integration]


async def test_a_paused_queue_waits_in_rabbitmq_and_runs_once_resumed(url: str,
                                                                        tmp_path: Path) -> None:
    await paused_in_the_coordination_store(url, tmp_path / "store.db")


async def test_without_a_coordination_store_rabbitmq_cannot_pause(url: str) -> None:
    hive = Hive(url)
    try:
        assert pauses_of(hive.backend) is None
    finally:
        await hive.close()
