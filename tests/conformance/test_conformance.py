"""Every scenario of :mod:`workhive.testing.conformance` on every backend, real servers."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Harness
from workhive.testing.conformance import SCENARIOS, Scenario

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_conformance(scenario: Scenario, harness: Harness) -> None:
    await scenario(harness)
