"""The whole conformance suite (``workhive.testing.conformance``) on the real NATS server."""

from __future__ import annotations

from typing import Any

from workhive.testing.conformance import Harness


async def test_conformance(conformance_scenario: Any, harness: Harness) -> None:
    await conformance_scenario(harness)
