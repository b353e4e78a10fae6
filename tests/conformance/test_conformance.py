"""Every scenario of :mod:`workhive.testing.conformance` on every backend, real servers."""

from __future__ import annotations

import pytest

from workhive.testing.conformance import Harness, Scenario

pytestmark = pytest.mark.integration


async def test_conformance(conformance_scenario: Scenario, harness: Harness) -> None:
    await conformance_scenario(harness)
