from __future__ import annotations

import logging
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
    cfg = parse_config({"worker": {"backend": "rabbitmq", "coordination": "redis"}}, "f", {})
    assert cfg.coordination_url() == "redis://localhost:6379/0"


def test_coordination_only_for_backends_that_keep_no_keys() -> None:
    """One config can name a store for RabbitMQ/Kafka and still run unchanged on a backend that
    coordinates itself, or on disable, without opening (or needing) that store."""
    for backend in ("rabbitmq", "redpanda", "amqp://h/", "kafka://h:9092"):
        cfg = parse_config({"worker": {"backend": backend, "coordination": "asynq"}}, "f", {})
        assert cfg.coordination_url() == "redis://localhost:6379/0", backend
    for backend in ("asynq", "disable", "nats", "sqlite", "postgres", "memory", "redis://h/1"):
        cfg = parse_config({"worker": {"backend": backend, "coordination": "asynq"}}, "f", {})
        assert cfg.coordination_url() is None, backend
    with pytest.raises(ConfigError, match="worker.coordination 'pigeon' is unknown"):
        parse_config({"worker": {"backend": "asynq", "coordination": "pigeon"}}, "f", {})
    cfg = parse_config({"worker": {"backend": "asynq", "coordination": "asynq"}}, "f", {})
    assert cfg.coordination_url("amqp://h/") == "redis://localhost:6379/0"  # --backend amqp://
    assert cfg.coordination_url("memory://") is None


def test_backend_label_is_the_configured_name_never_a_url() -> None:
    for name, running in (("asynq", "redis"), ("redpanda", "kafka"), ("disable", "noop"),
                          ("rabbitmq", "rabbitmq")):
        cfg = parse_config({"worker": {"backend": name}}, "f", {})
        assert cfg.backend_label(running) == name
    cfg = parse_config({}, "f", {"WORKHIVE_BACKEND": "amqp://u:secret@h/"})
    assert cfg.backend_label("rabbitmq") == "rabbitmq"
    assert parse_config({"worker": {"backend": "asynq"}}, "f", {}).backend_label("sqlite") == \
        "sqlite"  # --backend sqlite:///... replaced it: say what runs


def test_asynq_section_is_the_redis_section() -> None:
    cfg = parse_config({"worker": {"backend": "asynq", "asynq": {
        "redis_url": "redis://cache:6380", "concurrency": 6, "prefix": "shop"}}}, "f", {})
    assert cfg.backend_url() == "redis://cache:6380" and cfg.worker.concurrency == 6
    assert cfg.backend_options() == {"prefix": "shop"}
    env = {"REDIS_URL": "redis://other:1/0", "WORKHIVE_CONCURRENCY": "3"}
    cfg = parse_config({"worker": {"backend": "asynq", "asynq": {
        "redis_url": "redis://cache:6380", "concurrency": 6}}}, "f", env)
    assert cfg.backend_url() == "redis://other:1/0" and cfg.worker.concurrency == 3
    with pytest.raises(ConfigError, match=r"f: unknown key worker.asynq.max_retries"):
        parse_config({"worker": {"asynq": {"max_retries": 3}}}, "f", {})
    with pytest.raises(ConfigError, match=r"f: key worker.asynq.redis_url: Expected `str`"):
        parse_config({"worker": {"asynq": {"redis_url": 5}}}, "f", {})
    with pytest.raises(ConfigError, match=r"worker.asynq.concurrency must be >= 1"):
        parse_config({"worker": {"backend": "asynq", "asynq": {"concurrency": 0}}}, "f", {})
    with pytest.raises(ConfigError, match="same section"):
        parse_config({"worker": {"asynq": {}, "redis": {}}}, "f", {})


def test_kafka_section_options_and_env() -> None:
    raw = {"worker": {"backend": "redpanda", "redpanda": {
        "brokers": ["a:9092"], "topic": "tasks", "consumer_group": "workers",
        "partition_count": 3, "replication_factor": 1}}}
    env = {"KAFKA_BROKERS": "b:1, c:2", "WORKHIVE_KAFKA_TOPIC": "t1",
           "WORKHIVE_KAFKA_GROUP": "g1", "WORKHIVE_KAFKA_SESSION_TIMEOUT": "1.5"}
    cfg = parse_config(raw, "f", env)  # env lands in the redpanda: section the file uses
    assert cfg.backend_url() == "kafka://b:1,c:2"
    assert cfg.backend_options() == {"topic": "t1", "group": "g1", "partitions": 3,
                                     "replication": 1, "session_timeout": 1.5}
    with pytest.raises(ConfigError, match=r"\$KAFKA_BROKERS: expected host:port"):
        parse_config({}, "f", {"KAFKA_BROKERS": " , "})
    with pytest.raises(ConfigError, match=r"\$WORKHIVE_KAFKA_SESSION_TIMEOUT: expected float"):
        parse_config({}, "f", {"WORKHIVE_KAFKA_SESSION_TIMEOUT": "soon"})


def test_rabbitmq_env_and_env_concurrency_wins_over_worker_count() -> None:
    raw = {"worker": {"backend": "rabbitmq", "rabbitmq": {"exchange": "tasks", "worker_count": 9}}}
    env = {"WORKHIVE_RABBITMQ_EXCHANGE": "x1", "WORKHIVE_RABBITMQ_QUEUE": "x1.q",
           "WORKHIVE_CONCURRENCY": "2"}
    cfg = parse_config(raw, "f", env)
    assert cfg.backend_options() == {"exchange": "x1", "queue": "x1.q"}
    assert cfg.worker.concurrency == 2
    # a URL backend takes its section's worker_count too
    url = parse_config(raw, "f", {"WORKHIVE_BACKEND": "amqp://h/"})
    assert url.worker.concurrency == 9


def test_single_file_refuses_other_top_level_keys() -> None:
    with pytest.raises(ConfigError, match=r"f.yaml: unknown key app \(an app's config.yaml\?"):
        parse_config({"app": {"worker": {}}}, "f.yaml", {})
    with pytest.raises(ConfigError, match=r"f.yaml: unknown key source"):
        parse_config({"source": "x"}, "f.yaml", {})


# -- the config directory: featureflags.yaml + config.yaml ------------------------------------

FLAGS = """\
http_handler: echo            # the app's own flags: not workhive's business
cache: redis
worker:
  enabled: true
  backend: redpanda
  tasks:
    email_notifications: true
    data_export: false
"""

SETTINGS = """\
environment: development
app:
  server: {port: "8080"}
  database: {sql: {db_url: "postgres://u:p@h/db"}}
  worker:
    coordination: asynq
    asynq:
      redis_url: "redis://cache:6379"
      concurrency: 10
    rabbitmq:
      url: "amqp://guest:guest@localhost:5672/"
      exchange: "tasks"
      queue: "tasks_queue"
      worker_count: 10
    redpanda:
      brokers: ["localhost:9092"]
      topic: "tasks"
      consumer_group: "workers"
      worker_count: 4
"""


def config_dir(tmp_path: Path, flags: str = FLAGS, settings: str = SETTINGS) -> Path:
    directory = tmp_path / "config"
    directory.mkdir(exist_ok=True)
    (directory / "featureflags.yaml").write_text(flags)
    (directory / "config.yaml").write_text(settings)
    return directory


def test_config_directory(tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    cfg = load_config(directory)
    assert cfg.worker.backend == "redpanda" and cfg.backend_url() == "kafka://localhost:9092"
    assert cfg.backend_options() == {"topic": "tasks", "group": "workers"}
    assert cfg.worker.concurrency == 4  # redpanda.worker_count: redpanda runs
    assert cfg.coordination_url() == "redis://cache:6379"
    assert cfg.worker.tasks == {"email_notifications": True, "data_export": False}
    assert cfg.source == f"{directory}/featureflags.yaml + {directory}/config.yaml"
    assert cfg.backend_label("kafka") == "redpanda"


@pytest.mark.parametrize("pointer", ["config", "config/config.yaml",
                                     "config/featureflags.yaml"])
def test_either_file_or_the_directory_names_the_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pointer: str
) -> None:
    config_dir(tmp_path)
    assert load_config(tmp_path / pointer).worker.backend == "redpanda"
    monkeypatch.setenv("WORKHIVE_CONFIG", str(tmp_path / pointer))
    assert load_config().worker.backend == "redpanda"


def test_config_directory_is_found_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKHIVE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_config().source == "<environment>"
    config_dir(tmp_path)
    assert load_config().worker.backend == "redpanda"
    write(tmp_path, "worker: {backend: memory}\n")  # ./workhive.yaml comes first
    assert load_config().worker.backend == "memory"


def test_config_directory_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKHIVE_BACKEND", "rabbitmq")
    monkeypatch.setenv("WORKHIVE_FLAG_DATA_EXPORT", "yes")
    cfg = load_config(config_dir(tmp_path))
    assert cfg.backend_url() == "amqp://guest:guest@localhost:5672/"
    assert cfg.worker.concurrency == 10 and cfg.worker.tasks["data_export"] is True
    assert cfg.backend_label("rabbitmq") == "rabbitmq"


def test_featureflags_wins_and_a_disagreement_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = SETTINGS.replace("  worker:\n", "  worker:\n    backend: asynq\n    enabled: true\n")
    with caplog.at_level("WARNING", logger="workhive.config"):
        cfg = load_config(config_dir(tmp_path, settings=settings))
    assert cfg.worker.backend == "redpanda"
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "worker.backend is 'redpanda'" in record.getMessage()
    assert "app.worker.backend: 'asynq', which is ignored" in record.getMessage()
    flags = FLAGS.replace("  backend: redpanda\n", "")  # then config.yaml's applies
    assert load_config(config_dir(tmp_path, flags, settings)).worker.backend == "asynq"


@pytest.mark.parametrize(("flags", "settings", "message"), [
    (FLAGS, SETTINGS.replace("worker_count: 4", "worker_count: four"),
     r"config/config.yaml: key app.worker.redpanda.worker_count: Expected `int"),
    (FLAGS, SETTINGS.replace("exchange:", "exchnage:"),
     r"config/config.yaml: unknown key app.worker.rabbitmq.exchnage"),
    (FLAGS, SETTINGS.replace("concurrency: 10", "concurrency: 10\n      max_retries: 3"),
     r"config/config.yaml: unknown key app.worker.asynq.max_retries"),
    (FLAGS, SETTINGS.replace("worker_count: 4", "worker_count: 0"),
     r"config/config.yaml: key app.worker.redpanda.worker_count must be >= 1"),
    (FLAGS.replace("backend: redpanda", "backend: redpand"), SETTINGS,
     r"config/featureflags.yaml: worker.backend 'redpand' is unknown"),
    (FLAGS.replace("data_export: false", "data_export: maybe"), SETTINGS,
     r"config/featureflags.yaml: key worker.tasks.data_export: expected true or false, "
     r"got 'maybe'"),
    (FLAGS.replace("  enabled: true", "  concurrency: 3"), SETTINGS,
     r"config/featureflags.yaml: unknown key worker.concurrency \(featureflags.yaml holds"),
    (FLAGS, SETTINGS.replace("    coordination: asynq", "    coordination: carrier"),
     r"config/config.yaml: app.worker.coordination 'carrier' is unknown"),
    (FLAGS, SETTINGS.replace("    coordination: asynq", "    tasks: {x: true}"),
     r"config/config.yaml: key app.worker.tasks: feature flags belong in featureflags.yaml"),
    (FLAGS, "worker:\n  backend: asynq\n",
     r"config/config.yaml: worker settings go under app.worker"),
    (FLAGS, "app: [1, 2]\n", r"config/config.yaml: key app: expected a mapping, got list"),
    ("cache: redis\n", SETTINGS, r"config/featureflags.yaml: no worker: section"),
    (FLAGS, SETTINGS.replace("worker:\n    coordination", "worker:\n    redis: {}\n"
                             "    coordination"), "same section"),
])
def test_config_directory_errors_name_the_file_and_the_key(
    tmp_path: Path, flags: str, settings: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_dir(tmp_path, flags, settings))


def test_config_directory_needs_both_files(tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    (directory / "config.yaml").unlink()
    with pytest.raises(ConfigError, match=r"config/config.yaml: config file not found"):
        load_config(directory)
    # a lone featureflags.yaml is not a workhive.yaml either: its keys are refused
    with pytest.raises(ConfigError, match="unknown key http_handler"):
        load_config(directory / "featureflags.yaml")


def test_an_app_without_a_worker_section_gets_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(config_dir(tmp_path, settings="app:\n  server: {port: 1}\n"))
    assert cfg.backend_url() == "kafka://localhost:9092" and cfg.worker.concurrency == 10
