"""Pausing a Kafka queue: the paused set lives in the coordination store; the worker stops
taking the queue's records, and its idle group member leaves, so the records wait in Kafka
uncommitted (see tests/backends/_pauses.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backends._pauses import paused_in_the_coordination_store
from workhive.backends.kafka import KafkaBackend

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


async def test_a_paused_queue_waits_in_kafka_and_runs_once_resumed(
        make: Callable[..., KafkaBackend], tmp_path: Path) -> None:
    await paused_in_the_coordination_store(make(), tmp_path / "store.db")
