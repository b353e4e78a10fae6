"""The whole conformance suite (``workhive.testing.conformance``) on the real NATS servers: the
shared one (delays through the delay stream and its forwarder on nats-server before 2.12) and a
private 2.12+ one (delays and retries through message schedules)."""

from __future__ import annotations

from typing import Any

from workhive.testing.conformance import Harness


async def test_conformance(conformance_scenario: Any, harness: Harness) -> None:
    await conformance_scenario(harness)


async def test_conformance_with_schedules(conformance_scenario: Any,
                                          private_harness: Harness) -> None:
    await conformance_scenario(private_harness)
