"""A feature flag nobody set: a warning naming it at ``include``, an error in ``workhive.testing``.

An unset flag is off, so its task's enqueues are dropped. In production that is worth a
warning (a forgotten config line); in a test it would be a green test that ran nothing, which
is how the README's own testing example once passed while testing nothing.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from workhive import ConfigError, Hive, Module
from workhive.config import parse_config
from workhive.testing import check_flags, run_until_idle


def _module() -> tuple[Module, list[str]]:
    module, ran = Module("flags"), []

    @module.task("flags:beta", flag="beta")
    async def beta() -> None:
        ran.append("beta")

    @module.task("flags:legacy", flag="legacy")
    async def legacy() -> None:
        ran.append("legacy")

    @module.task("flags:always")
    async def always() -> None:
        ran.append("always")

    return module, ran


def test_include_warns_naming_an_unset_flag_and_only_informs_of_one_set_off(
        caplog: pytest.LogCaptureFixture) -> None:
    module, _ = _module()
    hive = Hive("memory://", flags={"legacy": False})
    with caplog.at_level(logging.INFO, logger="workhive.hive"):
        hive.include(module)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "flags:beta" in warnings[0] and "'beta' is not set" in warnings[0]
    assert "Hive(flags={'beta': True})" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "Skipped flags:legacy: feature flag 'legacy' is off" in infos
    assert hive.unset_flags() == {"flags:beta": "beta"}


def test_run_until_idle_refuses_an_unset_flag_before_running_anything() -> None:
    module, ran = _module()
    hive = Hive("memory://", flags={"legacy": False})
    hive.include(module)

    async def scenario() -> None:
        async with hive:
            await hive.enqueue("flags:always")
            await hive.enqueue("flags:beta")          # dropped: the flag is off
            await run_until_idle(hive)

    with pytest.raises(ConfigError, match=r"\['beta'\].*flags:beta.*'beta': True"):
        asyncio.run(scenario())
    assert ran == []


def test_flags_set_either_way_are_fine() -> None:
    module, ran = _module()
    hive = Hive("memory://", flags={"legacy": False, "beta": True})
    hive.include(module)
    check_flags(hive)

    async def scenario() -> None:
        async with hive:
            for name in ("flags:always", "flags:beta", "flags:legacy"):
                await hive.enqueue(name)
            await run_until_idle(hive)

    asyncio.run(scenario())
    assert sorted(ran) == ["always", "beta"]


def test_flags_from_the_config_count_as_set() -> None:
    module, _ = _module()
    config = parse_config({"worker": {"tasks": {"beta": False, "legacy": True}}}, "test", env={})
    hive = Hive("memory://", config=config)
    hive.include(module)
    assert hive.unset_flags() == {}
