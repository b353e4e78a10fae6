"""Settings are never silently dropped: the URL's own query wins over defaults, two explicit
settings that disagree are an error, and a named config file the app cannot take is refused."""

from __future__ import annotations

import json
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


FLAGS = "worker:\n  enabled: true\n  backend: {backend}\n  tasks: {{email_notifications: true}}\n"
SETTINGS = ("app:\n  server: {{port: 8080}}\n  worker:\n    coordination: asynq\n"
            "    asynq: {{redis_url: 'redis://127.0.0.1:1'}}\n")


def config_dir(tmp_path: Path, backend: str, settings: str = SETTINGS) -> Path:
    directory = tmp_path / "config"
    directory.mkdir(exist_ok=True)
    (directory / "featureflags.yaml").write_text(FLAGS.format(backend=backend))
    (directory / "config.yaml").write_text(settings.format())
    return directory


def test_config_directory_through_either_file(factories: str, tmp_path: Path) -> None:
    """``--config config/config.yaml`` (or featureflags.yaml) brings its sibling along."""
    db = tmp_path / "flags.db"
    directory = config_dir(tmp_path, f"sqlite:///{db}")
    for name in ("config.yaml", "featureflags.yaml"):
        result = invoke("enqueue", "x", "{}", "--queue", "q", "--app",
                        f"{factories}:with_config", "--config", str(directory / name))
        assert result.exit_code == 0, result.output
    assert db.exists()


def test_disabled_worker_starts_says_so_and_exits_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.conftest import APP

    directory = config_dir(tmp_path, "disable")
    result = invoke("worker", "--app", APP, "--config", str(directory / "config.yaml"),
                    "--burst")
    assert result.exit_code == 0, result.output
    for line in ("[INFO] Registered handler: user:send_welcome_email",
                 "[WARNING] Skipped user:export_user_data: feature flag 'data_export' is not set",
                 "[INFO] Worker server running (backend: disable): background tasks are "
                 "disabled", "[INFO] Worker stopped (backend: disable, tasks disabled)"):
        assert line in result.stderr
    # disable opens nothing else: the unreachable Redis coordination store is not used
    assert "Error" not in result.stderr
    monkeypatch.setenv("WORKHIVE_CONFIG", str(directory))  # the directory itself, this time
    dropped = invoke("enqueue", "user:send_welcome_email", '{"user_id": 1, "email": "a@x.io"}',
                     "--app", APP, "--json")
    assert dropped.exit_code == 0, dropped.output
    answer = json.loads(dropped.stdout)  # accepted (an id), and nothing will ever run it
    assert answer["id"] and answer["dropped_by_flag"] is None


def test_config_directory_error_names_file_and_key(tmp_path: Path) -> None:
    settings = SETTINGS + "    rabbitmq: {{worker_count: many}}\n"
    directory = config_dir(tmp_path, "rabbitmq", settings)
    result = invoke("status", "--config", str(directory / "config.yaml"))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ConfigError: ") and "Traceback" not in result.stderr
    assert f"{directory}/config.yaml: key app.worker.rabbitmq.worker_count: Expected `int" in line


def test_enabled_false_names_the_flags_file(tmp_path: Path) -> None:
    from tests.cli.conftest import APP

    directory = config_dir(tmp_path, "disable")
    flags = directory / "featureflags.yaml"
    flags.write_text(flags.read_text().replace("enabled: true", "enabled: false"))
    result = invoke("worker", "--app", APP, "--config", str(flags))
    assert result.exit_code == 0, result.output
    assert (f"[WARNING] Workers are disabled (worker.enabled is false in {flags}); exiting"
            in result.stderr)
