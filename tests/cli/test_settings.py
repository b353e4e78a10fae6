"""Settings are never silently dropped: the URL's own query wins over defaults, two explicit
settings that disagree are an error, and a named config file the app cannot take is refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from workhive import ConfigError, Hive
from workhive.backends.redis import RedisSettings
from workhive.config import parse_config


def test_url_prefix_wins_over_the_default() -> None:
    cfg = parse_config({}, "env", {"WORKHIVE_BACKEND": "redis://127.0.0.1:6379/0?prefix=myapp"})
    hive = Hive(config=cfg)
    assert hive.backend.settings.prefix == "myapp"  # type: ignore[attr-defined]


def test_explicit_prefix_applies_when_the_url_has_none() -> None:
    cfg = parse_config({"worker": {"redis": {"prefix": "other"}}}, "f.yaml",
                       {"WORKHIVE_BACKEND": "redis://127.0.0.1:6379/0"})
    assert Hive(config=cfg).backend.settings.prefix == "other"  # type: ignore[attr-defined]


def test_two_explicit_prefixes_that_disagree_are_an_error() -> None:
    cfg = parse_config({"worker": {"redis": {"prefix": "other"}}}, "f.yaml",
                       {"WORKHIVE_BACKEND": "redis://127.0.0.1:6379/0?prefix=myapp"})
    with pytest.raises(ConfigError, match="'prefix' is set twice.*'myapp'.*'other'"):
        Hive(config=cfg)
    agreeing = RedisSettings.from_url("redis://h/0?prefix=same", prefix="same")
    assert agreeing.prefix == "same"


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"cfgapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from workhive import Hive, HiveConfig\n"
        "ready = Hive('memory://')\n"
        "def no_config():\n    return Hive('memory://')\n"
        "def with_config(config: HiveConfig):\n    return Hive(config=config)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_named_config_the_app_cannot_take_is_refused(factories: str, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("worker:\n  backend: memory\n")
    for attr, why in (("ready", "is a ready Hive"), ("no_config", "takes no config")):
        result = invoke("status", "--app", f"{factories}:{attr}", "--config", str(other))
        assert result.exit_code == 2, result.output
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: ") and why in last and "other.yaml" in last
        assert "Traceback" not in result.stderr


def test_named_config_is_applied_by_a_factory_that_takes_it(
    factories: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(f"worker:\n  backend: sqlite:///{tmp_path / 'from-file.db'}\n")
    result = invoke("enqueue", "x", "{}", "--queue", "q", "--app", f"{factories}:with_config",
                    "--config", str(other))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-file.db").exists()  # the file's backend was used
