"""The exception tree: a capability refusal is a configuration error, not a broker failure."""

from __future__ import annotations

import pytest

from workhive import Hive
from workhive.errors import BackendError, CapabilityError, ConfigError


def test_capability_error_is_a_config_error_not_a_backend_error() -> None:
    assert issubclass(CapabilityError, ConfigError)
    assert not issubclass(CapabilityError, BackendError)


def test_an_outage_handler_does_not_swallow_a_refusal() -> None:
    hive = Hive("noop://")  # accepts what producers send, runs no worker
    with pytest.raises(CapabilityError, match="'noop' backend does not support queue"):
        try:
            hive.check_runnable()
        except BackendError:  # what a caller writes to ride out an outage
            pytest.fail("a capability refusal must not look like an outage")
