"""Worker settings from YAML plus environment overrides, strictly typed.

Two layouts, one schema (:class:`WorkerConfig`):

* **one file**, ``workhive.yaml``: everything under ``worker:``;
* **a config directory** holding ``featureflags.yaml`` and ``config.yaml``, as apps that keep
  feature flags apart from infrastructure settings do. ``featureflags.yaml``'s ``worker:`` holds
  ``enabled``, ``backend`` and ``tasks`` (the flags); ``config.yaml``'s ``app.worker:`` holds the
  rest (backend sections, concurrency, ...). Every other key of those two files belongs to the
  application and is left alone. When both files set ``enabled`` or ``backend``,
  ``featureflags.yaml`` wins and a disagreement is logged as a warning.

Point at a layout with a path (``load_config("config/")``, ``--config config/config.yaml``,
``$WORKHIVE_CONFIG``); without one, ``./workhive.yaml`` is used, else ``./config/`` when it holds
both files. Inside what workhive owns, an unknown key or a wrong type is a
:class:`~workhive.errors.ConfigError` naming the file and the key as written there
(``workhive.yaml: unknown key worker.concurency``,
``config/config.yaml: key app.worker.rabbitmq.worker_count: Expected `int`, got `str```).

Seed-style names: the backends ``asynq`` (= redis), ``redpanda`` (= kafka) and ``disable``
(= noop); the sections ``asynq: {redis_url, concurrency, prefix}`` (= ``redis:``) and
``redpanda:`` (= ``kafka:``); a section's ``worker_count`` (``asynq.concurrency``) is the
concurrency when that backend runs.

Environment variables win over the files: ``WORKHIVE_BACKEND`` (a name or a full URL),
``WORKHIVE_COORDINATION``, ``WORKHIVE_CONCURRENCY``, ``WORKHIVE_SHUTDOWN_TIMEOUT``,
``WORKHIVE_LEASE``, ``WORKHIVE_SQLITE_PATH``, ``REDIS_URL``, ``WORKHIVE_REDIS_PREFIX``,
``DATABASE_URL``, ``RABBITMQ_URL``, ``WORKHIVE_RABBITMQ_EXCHANGE``, ``WORKHIVE_RABBITMQ_QUEUE``,
``NATS_URL``, ``WORKHIVE_NATS_STREAM``, ``KAFKA_BROKERS`` (comma-separated),
``WORKHIVE_KAFKA_TOPIC``, ``WORKHIVE_KAFKA_GROUP``, ``WORKHIVE_KAFKA_SESSION_TIMEOUT``, and
``WORKHIVE_FLAG_<NAME>=true|false`` for feature flags.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import yaml

from workhive._redact import redact_url
from workhive.errors import ConfigError

logger = logging.getLogger(__name__)

BACKENDS_AVAILABLE = ("sqlite", "redis", "redis-pubsub", "postgres", "rabbitmq", "nats", "kafka",
                      "memory", "noop")
#: other names for a backend (seed-style configs say ``asynq``, ``disable``, ``redpanda``)
BACKEND_ALIASES = {"asynq": "redis", "disable": "noop", "disabled": "noop", "redpanda": "kafka",
                   "amqp": "rabbitmq"}
#: URL schemes of backends that keep cron claims, keys and dead letters themselves: a
#: ``worker.coordination`` store would go unused, so none is opened for them
SELF_COORDINATED = frozenset({"sqlite", "redis", "rediss", "unix", "redis+cluster",
                              "rediss+cluster", "redis+sentinel", "postgres", "postgresql",
                              "nats", "tls", "memory", "noop"})
#: URL scheme -> the config section that describes that backend
_SCHEME_FAMILY = {"amqp": "rabbitmq", "amqps": "rabbitmq", "kafka": "kafka",
                  "redpanda": "kafka", "redis": "redis", "rediss": "redis", "unix": "redis",
                  "redis+cluster": "redis", "rediss+cluster": "redis", "redis+sentinel": "redis"}

FLAGS_FILE = "featureflags.yaml"
SETTINGS_FILE = "config.yaml"
_FLAG_KEYS = ("enabled", "backend", "tasks")
#: ``asynq:`` key -> the ``redis:`` key it means
_ASYNQ_KEYS = {"redis_url": "url", "concurrency": "worker_count", "prefix": "prefix"}

#: key path prefix -> (file, the same key path as written in that file)
Origins = dict[str, tuple[str, str]]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class SQLiteConfig(_Strict):
    path: str = "workhive.db"


class RedisConfig(_Strict):
    url: str = "redis://localhost:6379/0"
    prefix: str = "workhive"
    worker_count: int | None = None  # same as worker.concurrency (asynq's "concurrency")


class RabbitMQConfig(_Strict):
    url: str = "amqp://guest:guest@localhost:5672/"
    exchange: str = "workhive"  # prefix of every exchange and queue name
    queue: str = ""  # physical name of the "default" queue family (default <exchange>.default)
    worker_count: int | None = None  # same as worker.concurrency


class KafkaConfig(_Strict):
    brokers: list[str] = msgspec.field(default_factory=lambda: ["localhost:9092"])
    topic: str = "workhive"  # prefix of every topic
    consumer_group: str = "workers"  # prefix of every consumer group
    worker_count: int | None = None  # same as worker.concurrency
    partition_count: int | None = None  # partitions of topics workhive creates
    replication_factor: int | None = None  # replication of topics workhive creates
    session_timeout: float | None = None  # seconds before a dead worker's partitions move


class NatsConfig(_Strict):
    url: str = "nats://localhost:4222"
    stream: str = "WORKHIVE"


class PostgresConfig(_Strict):
    dsn: str = "postgresql://localhost/app"


class WorkerConfig(_Strict):
    enabled: bool = True
    backend: str = "sqlite"
    coordination: str = ""  # a backend name or URL for cron/unique/rate limits/dead letters
    concurrency: int = 10
    shutdown_timeout: float = 30.0
    lease: float = 30.0
    queues: list[str] = msgspec.field(default_factory=list)
    sqlite: SQLiteConfig = msgspec.field(default_factory=SQLiteConfig)
    redis: RedisConfig = msgspec.field(default_factory=RedisConfig)
    rabbitmq: RabbitMQConfig = msgspec.field(default_factory=RabbitMQConfig)
    kafka: KafkaConfig = msgspec.field(default_factory=KafkaConfig)
    redpanda: KafkaConfig | None = None  # the same section under its Redpanda name
    nats: NatsConfig = msgspec.field(default_factory=NatsConfig)
    postgres: PostgresConfig = msgspec.field(default_factory=PostgresConfig)
    tasks: dict[str, bool] = msgspec.field(default_factory=dict)


class HiveConfig(_Strict):
    worker: WorkerConfig = msgspec.field(default_factory=WorkerConfig)
    #: where the settings came from, for messages (a file, "a + b", "<environment>")
    source: str = "<defaults>"
    #: where each key was written (see :data:`Origins`); empty for a single file
    origins: Origins = msgspec.field(default_factory=dict)

    def where(self, path: str) -> tuple[str, str]:
        """``(file, key as written there)`` for a key path like ``worker.backend``."""
        return _locate(self.origins, self.source, path)

    def backend_url(self) -> str:
        """The URL of the configured backend; an unknown name is refused, naming the known."""
        return self._url_of(self.worker.backend, "worker.backend")

    def backend_label(self, running: str) -> str:
        """The name to show for the running backend: as the user configured it (``asynq``,
        ``redpanda``, ``disable``) when that is the one running, else the backend's own name.
        Never a URL, so never a password."""
        configured = self.worker.backend
        if "://" not in configured and BACKEND_ALIASES.get(configured, configured) == running:
            return configured
        return running

    def coordination_url(self, transport: str | None = None) -> str | None:
        """The URL of the coordination store, if one is configured and the backend needs one.

        A backend that coordinates itself (sqlite, redis, postgres, nats, memory, noop) gets
        none: the store would go unused, and a disabled app must not need it. So one config can
        name a store for RabbitMQ and Kafka and still run on the others unchanged.
        ``transport`` is the URL of the backend actually used (default: the configured one).
        """
        name = self.worker.coordination
        if not name:
            return None
        url = self._url_of(name, "worker.coordination")
        if _scheme(transport or self.backend_url()) in SELF_COORDINATED:
            return None
        return url

    def _url_of(self, name: str, key: str) -> str:
        w = self.worker
        if "://" in name:
            return name
        name = BACKEND_ALIASES.get(name, name)
        urls = {
            "sqlite": f"sqlite:///{w.sqlite.path}",
            "redis": w.redis.url,
            "redis-pubsub": _pubsub_url(w.redis.url),
            "memory": "memory://",
            "noop": "noop://",
            "postgres": w.postgres.dsn,
            "rabbitmq": w.rabbitmq.url,
            "nats": w.nats.url,
            "kafka": "kafka://" + ",".join(self.kafka().brokers),
        }
        if name in urls:
            return urls[name]
        file, shown = self.where(key)
        raise ConfigError(f"{file}: {shown} {redact_url(name)!r} is unknown "
                          f"(available: {', '.join(BACKENDS_AVAILABLE)}; also asynq, redpanda, "
                          "disable)")

    def kafka(self) -> KafkaConfig:
        """The ``kafka:`` section, or ``redpanda:`` when that spelling is used."""
        return self.worker.redpanda or self.worker.kafka

    def backend_options(self, url: str | None = None) -> dict[str, Any]:
        """Options the backend at ``url`` (default: the configured one) takes besides its URL."""
        url = url or self.backend_url()
        if _family(url) == "redis" or url.startswith("redis-pubsub://"):
            # only a prefix set on purpose travels: the default must never override the URL's
            # ``?prefix=`` (two apps would share keys); both set and different is refused by
            # RedisSettings.from_url
            prefix = self.worker.redis.prefix
            return {"prefix": prefix} if prefix != RedisConfig().prefix else {}
        if url.startswith(("amqp://", "amqps://")):
            # the URL's query wins over defaults; an explicit setting that disagrees with it is
            # refused by the backend
            rabbit, query = self.worker.rabbitmq, parse_qs(urlsplit(url).query)
            options: dict[str, Any] = {}
            if rabbit.exchange != RabbitMQConfig().exchange or "exchange" not in query:
                options["exchange"] = rabbit.exchange
            if rabbit.queue:
                options["queue"] = rabbit.queue
            return options
        if url.startswith(("nats://", "tls://")):
            nats, query = self.worker.nats, parse_qs(urlsplit(url).query)
            if nats.stream != NatsConfig().stream or "stream" not in query:
                return {"stream": nats.stream}
            return {}
        if url.startswith(("kafka://", "redpanda://")):
            kafka, query = self.kafka(), parse_qs(urlsplit(url).query)
            defaults, options = KafkaConfig(), {}
            if kafka.topic != defaults.topic or "topic" not in query:
                options["topic"] = kafka.topic
            if kafka.consumer_group != defaults.consumer_group or "group" not in query:
                options["group"] = kafka.consumer_group
            for option, value in (("partitions", kafka.partition_count),
                                  ("replication", kafka.replication_factor),
                                  ("session_timeout", kafka.session_timeout)):
                if value is not None:
                    options[option] = value
            return options
        return {}


# -- locating keys ---------------------------------------------------------------------------


def _locate(origins: Origins, source: str, path: str) -> tuple[str, str]:
    """The file and the key as written there: the longest known prefix of ``path`` decides."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        found = origins.get(".".join(parts[:cut]))
        if found is not None:
            file, shown = found
            return file, ".".join([shown, *parts[cut:]])
    return source, path


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _pubsub_url(redis_url: str) -> str:
    """The ``redis-pubsub://`` URL of the Redis at ``redis_url`` (a cluster stays a cluster)."""
    scheme, rest = redis_url.split("://", 1) if "://" in redis_url else ("redis", redis_url)
    if scheme.endswith("+cluster"):
        rest += ("&" if "?" in rest else "?") + "cluster=true"
    return "redis-pubsub://" + rest


def _family(backend: str) -> str:
    """``rabbitmq``, ``kafka``, ``redis``... for a backend name or URL."""
    if "://" in backend:
        return _SCHEME_FAMILY.get(_scheme(backend), _scheme(backend))
    return BACKEND_ALIASES.get(backend, backend)


# -- environment -------------------------------------------------------------------------------


def _env_overrides(raw: dict[str, Any], env: dict[str, str]) -> set[str]:
    """Apply the environment to ``raw``; returns the key paths it set."""
    worker = raw.setdefault("worker", {})
    if not isinstance(worker, dict):
        return set()  # the type check below reports it with the file name
    applied: set[str] = set()
    simple: dict[str, tuple[str, Callable[[str], Any]]] = {
        "WORKHIVE_BACKEND": ("backend", str),
        "WORKHIVE_COORDINATION": ("coordination", str),
        "WORKHIVE_CONCURRENCY": ("concurrency", int),
        "WORKHIVE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", float),
        "WORKHIVE_LEASE": ("lease", float),
    }
    for var, (key, kind) in simple.items():
        if var in env:
            worker[key] = _convert(var, env[var], kind)
            applied.add(f"worker.{key}")
    kafka = "redpanda" if isinstance(worker.get("redpanda"), dict) else "kafka"
    nested: dict[str, tuple[str, str, Callable[[str], Any]]] = {
        "WORKHIVE_SQLITE_PATH": ("sqlite", "path", str),
        "REDIS_URL": ("redis", "url", str),
        "WORKHIVE_REDIS_PREFIX": ("redis", "prefix", str),
        "DATABASE_URL": ("postgres", "dsn", str),
        "NATS_URL": ("nats", "url", str),
        "WORKHIVE_NATS_STREAM": ("nats", "stream", str),
        "RABBITMQ_URL": ("rabbitmq", "url", str),
        "WORKHIVE_RABBITMQ_EXCHANGE": ("rabbitmq", "exchange", str),
        "WORKHIVE_RABBITMQ_QUEUE": ("rabbitmq", "queue", str),
        "KAFKA_BROKERS": (kafka, "brokers", _broker_list),
        "WORKHIVE_KAFKA_TOPIC": (kafka, "topic", str),
        "WORKHIVE_KAFKA_GROUP": (kafka, "consumer_group", str),
        "WORKHIVE_KAFKA_SESSION_TIMEOUT": (kafka, "session_timeout", float),
    }
    for var, (section, key, kind) in nested.items():
        if var in env:
            target = worker.setdefault(section, {})
            if not isinstance(target, dict):
                continue  # reported below as a wrong type, with the file name
            target[key] = _convert(var, env[var], kind)
            applied.add(f"worker.{section}.{key}")
    for var, value in env.items():
        if var.startswith("WORKHIVE_FLAG_"):
            flag = var.removeprefix("WORKHIVE_FLAG_").lower()
            tasks = worker.setdefault("tasks", {})
            if isinstance(tasks, dict):
                tasks[flag] = _parse_bool(var, value)
    return applied


def _convert(var: str, value: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        names: dict[Callable[[str], Any], str] = {int: "int", float: "float"}
        name = names.get(kind, "host:port[,host:port...]")
        raise ConfigError(f"${var}: expected {name}, got {value!r}") from exc


def _broker_list(value: str) -> list[str]:
    brokers = [b.strip() for b in value.split(",") if b.strip()]
    if not brokers:
        raise ValueError(value)
    return brokers


def _parse_bool(var: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"${var}: expected true/false, got {value!r}")


# -- validation ------------------------------------------------------------------------------


def _humanise(message: str, where: Callable[[str], tuple[str, str]]) -> str:
    """msgspec says "Object contains unknown field `x` - at `$.worker`"; we say
    "<file>: unknown key worker.x", with the key as written in that file."""
    unknown = re.match(r"Object contains unknown field `(.+)` - at `\$\.?(.*)`", message)
    if unknown:
        key = ".".join(p for p in (unknown.group(2), unknown.group(1)) if p)
        file, shown = where(key)
        return f"{file}: unknown key {shown}"
    typed = re.match(r"(.+) - at `\$\.?(.*)`", message)
    if typed:
        path, _, index = typed.group(2).partition("[")  # `queues[2]`: locate `queues`
        file, shown = where(path)
        return f"{file}: key {shown}{'[' + index if index else ''}: {typed.group(1)}"
    file, _ = where("worker")
    return f"{file}: {message}"


def _translate_asynq(worker: dict[str, Any], origins: Origins, source: str) -> None:
    """``asynq: {redis_url, concurrency, prefix}`` is the ``redis:`` section under the name
    seed-style configs use; rewrite it in place, remembering where each key was written."""
    if "asynq" not in worker:
        return
    file, shown = _locate(origins, source, "worker.asynq")
    asynq = worker.pop("asynq")
    if asynq is None:
        return
    if not isinstance(asynq, dict):
        raise ConfigError(f"{file}: key {shown}: Expected `object`, got "
                          f"`{type(asynq).__name__}`")
    if "redis" in worker:
        redis_file, redis_shown = _locate(origins, source, "worker.redis")
        raise ConfigError(f"{file}: {shown} and {redis_shown} ({redis_file}) are the same "
                          "section (the redis backend); keep one")
    for key in asynq:
        if key not in _ASYNQ_KEYS:
            raise ConfigError(f"{file}: unknown key {shown}.{key} (known: "
                              f"{', '.join(_ASYNQ_KEYS)})")
    worker["redis"] = {_ASYNQ_KEYS[key]: value for key, value in asynq.items()}
    for key, meaning in _ASYNQ_KEYS.items():
        origins[f"worker.redis.{meaning}"] = (file, f"{shown}.{key}")


def _check_flags(tasks: Any, where: Callable[[str], tuple[str, str]]) -> None:
    """Name the flag whose value is not true/false (msgspec only says ``tasks[...]``)."""
    if not isinstance(tasks, dict):
        return
    for flag, value in tasks.items():
        if not isinstance(value, bool):
            file, shown = where("worker.tasks")
            raise ConfigError(f"{file}: key {shown}.{flag}: expected true or false, got "
                              f"{value!r}")


def parse_config(raw: Any, source: str, env: dict[str, str] | None = None, *,
                 origins: Origins | None = None) -> HiveConfig:
    """Validate an already-loaded mapping (tests use this directly).

    ``origins`` says which file (and which key there) each part came from, for configs
    merged from several files; without it every key is reported as ``source: worker....``.
    """
    origins = dict(origins or {})

    def where(path: str) -> tuple[str, str]:
        return _locate(origins, source, path)

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ConfigError(f"{source}: expected a mapping at the top level, got {kind}")
    raw = copy.deepcopy(raw)  # the environment and the aliases are applied to a copy
    for key in raw:
        if key != "worker":
            hint = (f" (an app's {SETTINGS_FILE}? keep {FLAGS_FILE} beside it and point at "
                    "their directory)" if key == "app" else " (settings go under worker:)")
            raise ConfigError(f"{source}: unknown key {key}{hint}")
    if isinstance(raw.get("worker"), dict):
        _translate_asynq(raw["worker"], origins, source)
        _check_flags(raw["worker"].get("tasks"), where)
    from_env = _env_overrides(raw, dict(os.environ) if env is None else env)
    try:
        config = msgspec.convert(raw, HiveConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(_humanise(str(exc), where)) from exc
    config.source = source
    config.origins = origins
    _check(config, raw["worker"], from_env)
    return config


def _check(config: HiveConfig, given: dict[str, Any], from_env: set[str]) -> None:
    """What types cannot say: ranges, known backend names, sections that must agree."""
    w = config.worker
    if w.concurrency < 1:
        file, shown = config.where("worker.concurrency")
        raise ConfigError(f"{file}: key {shown} must be >= 1, got {w.concurrency}")
    for key, value, ok in (("shutdown_timeout", w.shutdown_timeout, w.shutdown_timeout >= 0),
                           ("lease", w.lease, w.lease > 0)):
        if not ok:
            file, shown = config.where(f"worker.{key}")
            limit = ">= 0" if key == "shutdown_timeout" else "> 0"
            raise ConfigError(f"{file}: key {shown} must be {limit}, got {value}")
    config.backend_url()  # fail fast on an unknown backend
    config.coordination_url()
    if w.redpanda is not None and w.redpanda != w.kafka and w.kafka != KafkaConfig():
        file, _ = config.where("worker.kafka")
        raise ConfigError(f"{file}: worker.kafka and worker.redpanda are the same section "
                          "and disagree; keep one")
    family = _family(w.backend)
    sections: dict[str, tuple[RedisConfig | RabbitMQConfig | KafkaConfig, str]] = {
        "redis": (w.redis, "redis"), "rabbitmq": (w.rabbitmq, "rabbitmq"),
        "kafka": (config.kafka(), "redpanda" if w.redpanda is not None else "kafka")}
    if family not in sections:
        return
    section, name = sections[family]
    count = section.worker_count
    if count is None:
        return
    count_file, count_key = config.where(f"worker.{name}.worker_count")
    if count < 1:
        raise ConfigError(f"{count_file}: key {count_key} must be >= 1, got {count}")
    if "worker.concurrency" in from_env:
        return  # the environment wins over the file
    concurrency = given.get("concurrency")
    if concurrency is not None and concurrency != count:
        file, shown = config.where("worker.concurrency")
        raise ConfigError(f"{file}: {shown} ({concurrency}) and {count_key} ({count}) "
                          "disagree; set one")
    w.concurrency = count


# -- files -----------------------------------------------------------------------------------


def config_path(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The config :func:`load_config` reads: ``path``, else ``$WORKHIVE_CONFIG``, else
    ``./workhive.yaml``, else ``./config/`` when it holds both files; None when none is there."""
    explicit = path or os.environ.get("WORKHIVE_CONFIG")
    if explicit:
        return Path(explicit)
    if Path("workhive.yaml").exists():
        return Path("workhive.yaml")
    if (Path("config") / FLAGS_FILE).is_file() and (Path("config") / SETTINGS_FILE).is_file():
        return Path("config")
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> HiveConfig:
    """Read ``path`` / ``$WORKHIVE_CONFIG`` / ``./workhive.yaml`` / ``./config/``.

    ``path`` is a ``workhive.yaml``-style file, or a directory holding ``featureflags.yaml`` and
    ``config.yaml`` (either of those two files names its directory too). Nothing found and
    nothing named: the defaults plus the environment.
    """
    target = config_path(path)
    if target is None:
        return parse_config({}, "<environment>")
    if not target.exists():
        raise ConfigError(f"{target}: config file not found")
    config = _load(target)
    logger.info("Config: %s", config.source)
    return config


def _load(target: Path) -> HiveConfig:
    if target.is_dir():
        if not any((target / n).exists() for n in (FLAGS_FILE, SETTINGS_FILE)) and \
                (target / "workhive.yaml").is_file():
            return parse_config(_read_yaml(target / "workhive.yaml"),
                                str(target / "workhive.yaml"))
        return _load_directory(target)
    sibling = {FLAGS_FILE: SETTINGS_FILE, SETTINGS_FILE: FLAGS_FILE}.get(target.name)
    if sibling is not None and (target.parent / sibling).is_file():
        return _load_directory(target.parent)
    return parse_config(_read_yaml(target), str(target))


def _load_directory(directory: Path) -> HiveConfig:
    """``featureflags.yaml`` (``worker.enabled/backend/tasks``) + ``config.yaml``
    (``app.worker``), merged into one worker section; the flags file wins where both speak."""
    flags_path, settings_path = directory / FLAGS_FILE, directory / SETTINGS_FILE
    for file in (flags_path, settings_path):
        if not file.is_file():
            raise ConfigError(f"{file}: config file not found (a config directory holds "
                              f"{FLAGS_FILE} and {SETTINGS_FILE})")
    flags_name, settings_name = str(flags_path), str(settings_path)
    flags = _section(_read_yaml(flags_path), flags_name, ("worker",), required=True)
    settings_raw = _read_yaml(settings_path)
    if isinstance(settings_raw, dict) and "worker" in settings_raw:
        raise ConfigError(f"{settings_name}: worker settings go under app.worker in "
                          f"{SETTINGS_FILE} (found a top-level worker:)")
    settings = _section(settings_raw, settings_name, ("app", "worker"), required=False)
    for key in flags:
        if key not in _FLAG_KEYS:
            raise ConfigError(f"{flags_name}: unknown key worker.{key} ({FLAGS_FILE} holds "
                              f"worker.enabled, worker.backend and worker.tasks; other worker "
                              f"settings go under app.worker in {SETTINGS_FILE})")
    if "tasks" in settings:
        raise ConfigError(f"{settings_name}: key app.worker.tasks: feature flags belong in "
                          f"{FLAGS_FILE} (worker.tasks)")
    origins: Origins = {"worker": (settings_name, "app.worker")}
    merged = dict(settings)
    for key in _FLAG_KEYS:
        if key not in flags:
            continue
        if key in merged and merged[key] != flags[key]:
            logger.warning("%s: worker.%s is %r; %s says app.worker.%s: %r, which is ignored",
                           flags_name, key, flags[key], settings_name, key, merged[key])
        merged[key] = flags[key]
        origins[f"worker.{key}"] = (flags_name, f"worker.{key}")
    return parse_config({"worker": merged}, f"{flags_name} + {settings_name}", origins=origins)


def _section(raw: Any, file: str, keys: tuple[str, ...], *, required: bool) -> dict[str, Any]:
    """``raw[keys[0]][keys[1]]...`` as a mapping; the other keys of the file are the app's."""
    node, walked = raw, list[str]()
    for key in keys:
        if node is None:
            node = {}
        if not isinstance(node, dict):
            where = f"key {'.'.join(walked)}" if walked else "the top level"
            raise ConfigError(f"{file}: {where}: expected a mapping, got {type(node).__name__}")
        walked.append(key)
        if node.get(key) is None:
            if required:
                raise ConfigError(f"{file}: no {'.'.join(walked)}: section (it holds the "
                                  "worker's enabled, backend and tasks)")
            return {}
        node = node[key]
    if not isinstance(node, dict):
        raise ConfigError(f"{file}: key {'.'.join(walked)}: expected a mapping, got "
                          f"{type(node).__name__}")
    return node


def _read_yaml(file: Path) -> Any:
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
