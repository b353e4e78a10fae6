from __future__ import annotations

from pathlib import Path

import pytest

from workhive import ConfigError, Hive, load_config
from workhive.config import parse_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workhive.yaml"
    path.write_text(text)
    return path


def test_full_file_and_flags(tmp_path: Path) -> None:
    path = write(tmp_path, """
worker:
  backend: memory
  concurrency: 4
  sqlite: {path: other.db}
  tasks: {email_notifications: true, data_export: false}
""")
    cfg = load_config(path)
    assert cfg.worker.concurrency == 4 and cfg.backend_url() == "memory://"
    hive = Hive(config=cfg)
    assert hive.flags == {"email_notifications": True, "data_export": False}


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  concurency: 4\n")
    with pytest.raises(ConfigError, match=r"workhive.yaml: unknown key worker.concurency"):
        load_config(path)


def test_wrong_type_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  concurrency: lots\n")
    with pytest.raises(ConfigError, match=r"workhive.yaml: key worker.concurrency: Expected `int`"):
        load_config(path)


def test_broken_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "worker: [unclosed\n")
    with pytest.raises(ConfigError, match=r"workhive.yaml: not valid YAML"):
        load_config(path)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_env_overrides_win() -> None:
    env = {"WORKHIVE_BACKEND": "redis", "REDIS_URL": "redis://h:1/2",
           "WORKHIVE_CONCURRENCY": "7", "WORKHIVE_FLAG_REPORTS": "off"}
    cfg = parse_config({"worker": {"backend": "sqlite", "tasks": {"reports": True}}}, "f.yaml", env)
    assert cfg.backend_url() == "redis://h:1/2" and cfg.worker.concurrency == 7
    assert cfg.backend_options() == {}  # the default prefix never overrides the URL
    assert cfg.worker.tasks == {"reports": False}


@pytest.mark.parametrize(("env", "message"), [
    ({"WORKHIVE_CONCURRENCY": "x"}, r"\$WORKHIVE_CONCURRENCY: expected int"),
    ({"WORKHIVE_FLAG_A": "maybe"}, r"\$WORKHIVE_FLAG_A: expected true/false"),
    ({"WORKHIVE_COORDINATION": "pigeon"}, r"worker.coordination 'pigeon' is unknown"),
    ({"WORKHIVE_BACKEND": "carrier-pigeon"}, r"'carrier-pigeon' is unknown"),
])
def test_bad_env(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({}, "f.yaml", env)


def test_semantic_checks() -> None:
    with pytest.raises(ConfigError, match="worker.concurrency must be >= 1"):
        parse_config({"worker": {"concurrency": 0}}, "f.yaml", {})
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config([1, 2], "f.yaml", {})


def test_postgres_backend_from_database_url() -> None:
    cfg = parse_config({"worker": {"backend": "postgres"}}, "f.yaml",
                       {"DATABASE_URL": "postgresql://db.internal/app?schema=jobs"})
    assert cfg.backend_url() == "postgresql://db.internal/app?schema=jobs"
    assert cfg.backend_options() == {}


def test_seed_backend_names_and_sections() -> None:
    """Seed-style configs: asynq = redis, disable = noop, redpanda = kafka with its own section
    spelling; worker_count is the concurrency, and may not disagree with it."""
    assert parse_config({"worker": {"backend": "asynq"}}, "f", {}).backend_url().startswith("redis")
    assert parse_config({"worker": {"backend": "disable"}}, "f", {}).backend_url() == "noop://"
    cfg = parse_config({"worker": {"backend": "redpanda", "redpanda": {
        "brokers": ["a:9092", "b:9092"], "topic": "tasks", "consumer_group": "workers",
        "worker_count": 4}}}, "f", {})
    assert cfg.backend_url() == "kafka://a:9092,b:9092" and cfg.worker.concurrency == 4
    assert cfg.backend_options() == {"topic": "tasks", "group": "workers"}
    rabbit = {"url": "amqp://u:p@h/", "exchange": "tasks", "queue": "tasks_queue",
              "worker_count": 3}
    cfg = parse_config({"worker": {"backend": "rabbitmq", "rabbitmq": rabbit}}, "f", {})
    assert cfg.worker.concurrency == 3
    assert cfg.backend_options() == {"exchange": "tasks", "queue": "tasks_queue"}
    with pytest.raises(ConfigError, match="disagree"):
        parse_config({"worker": {"backend": "rabbitmq", "concurrency": 5, "rabbitmq": rabbit}},
                     "f", {})
    cfg = parse_config({"worker": {"backend": "nats", "coordination": "redis"}}, "f", {})
    assert cfg.coordination_url() == "redis://localhost:6379/0"
