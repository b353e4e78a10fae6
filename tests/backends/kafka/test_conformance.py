"""The whole conformance suite on Kafka (Tansu), with SQLite as the coordination store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workhive.backends.kafka import KafkaBackend
from workhive.backends.sqlite import SQLiteBackend
from workhive.testing.conformance import Harness, Scenario

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


@pytest.fixture
async def harness(kafka_url: str, names: dict[str, Any], tmp_path: Path) -> Any:
    h = Harness(lambda: KafkaBackend.from_url(kafka_url, **names),
                coordination=lambda: SQLiteBackend.from_url(f"sqlite:///{tmp_path / 'c.db'}"))
    yield h
    for backend in h.made:
        await backend.close()


async def test_conformance(conformance_scenario: Scenario, harness: Harness) -> None:
    await conformance_scenario(harness)
