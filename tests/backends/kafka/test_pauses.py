"""Pausing a Kafka queue: the paused set lives in the coordination store; the worker stops
taking the queue's records, and its idle group member leaves, so the records wait in Kafka
uncommitted (see tests/backends/_pauses.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends._pauses import paused_queue_waits_and_resumes
from workhive import Hive
from workhive.backends.composite import Composite
from workhive.backends.kafka import KafkaBackend
from workhive.backends.sqlite import SQLiteBackend
from workhive.pauses import pauses_of

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


async def test_a_paused_queue_waits_in_kafka_and_runs_once_resumed(
        make: Callable[..., KafkaBackend], tmp_path: Path) -> None:
    hive = Hive(make(), coordination=f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert isinstance(hive.backend, Composite)
        assert isinstance(pauses_of(hive.backend), SQLiteBackend)
        await paused_queue_waits_and_resumes(hive)
    finally:
        await hive.close()
