"""The pytest plugin behind the conformance suite, registered through the ``pytest11`` entry
point, so installing workhive is enough: any test that asks for ``conformance_scenario`` runs
once per scenario of :mod:`workhive.testing.conformance`. Kept tiny so it costs nothing in test
runs that do not use it (the scenarios are imported only when asked for).
"""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_scenario" in metafunc.fixturenames:
        from workhive.testing.conformance import SCENARIOS

        metafunc.parametrize("conformance_scenario", SCENARIOS, ids=lambda s: s.__name__)
