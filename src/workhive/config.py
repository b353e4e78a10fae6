"""``workhive.yaml`` plus environment overrides, strictly typed.

An unknown key or a wrong type is a :class:`~workhive.errors.ConfigError` naming the key path and
the file (``workhive.yaml: unknown key worker.concurency``). Environment variables win over the
file: ``WORKHIVE_BACKEND`` (a name or a full URL), ``WORKHIVE_COORDINATION``,
``WORKHIVE_CONCURRENCY``, ``WORKHIVE_SHUTDOWN_TIMEOUT``, ``WORKHIVE_SQLITE_PATH``, ``REDIS_URL``,
``WORKHIVE_REDIS_PREFIX``,
and ``WORKHIVE_FLAG_<NAME>=true|false`` for feature flags.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import yaml

from workhive._redact import redact_url
from workhive.errors import ConfigError

BACKENDS_AVAILABLE = ("sqlite", "redis", "redis-pubsub", "postgres", "rabbitmq", "nats", "kafka",
                      "memory", "noop")
BACKENDS_PLANNED: tuple[str, ...] = ()
#: other names for a backend (seed-style configs say ``asynq``, ``disable``, ``redpanda``)
BACKEND_ALIASES = {"asynq": "redis", "disable": "noop", "disabled": "noop", "redpanda": "kafka",
                   "amqp": "rabbitmq"}


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class SQLiteConfig(_Strict):
    path: str = "workhive.db"


class RedisConfig(_Strict):
    url: str = "redis://localhost:6379/0"
    prefix: str = "workhive"


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
    source: str = "<defaults>"

    def backend_url(self) -> str:
        """The URL of the configured backend; a planned-but-absent backend is a clear error."""
        return self._url_of(self.worker.backend, "worker.backend")

    def coordination_url(self) -> str | None:
        """The URL of the coordination store, if one is configured."""
        name = self.worker.coordination
        return self._url_of(name, "worker.coordination") if name else None

    def _url_of(self, name: str, key: str) -> str:
        w = self.worker
        if "://" in name:
            return name
        name = BACKEND_ALIASES.get(name, name)
        urls = {
            "sqlite": f"sqlite:///{w.sqlite.path}",
            "redis": w.redis.url,
            "redis-pubsub": "redis-pubsub://" + w.redis.url.split("://", 1)[-1],
            "memory": "memory://",
            "noop": "noop://",
            "postgres": w.postgres.dsn,
            "rabbitmq": w.rabbitmq.url,
            "nats": w.nats.url,
            "kafka": "kafka://" + ",".join(self.kafka().brokers),
        }
        if name in urls:
            return urls[name]
        state = "is not available in this version" if name in BACKENDS_PLANNED else "is unknown"
        raise ConfigError(f"{self.source}: {key} {redact_url(name)!r} {state} "
                          f"(available: {', '.join(BACKENDS_AVAILABLE)})")

    def kafka(self) -> KafkaConfig:
        """The ``kafka:`` section, or ``redpanda:`` when that spelling is used."""
        return self.worker.redpanda or self.worker.kafka

    def backend_options(self, url: str | None = None) -> dict[str, Any]:
        """Options the backend at ``url`` (default: the configured one) takes besides its URL."""
        url = url or self.backend_url()
        if url.startswith(("redis://", "rediss://", "unix://", "redis-pubsub://")):
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
            return options
        return {}


def _env_overrides(raw: dict[str, Any], env: dict[str, str]) -> None:
    worker = raw.setdefault("worker", {})
    if not isinstance(worker, dict):
        return  # the type check below reports it with the file name
    simple = {
        "WORKHIVE_BACKEND": ("backend", str),
        "WORKHIVE_COORDINATION": ("coordination", str),
        "WORKHIVE_CONCURRENCY": ("concurrency", int),
        "WORKHIVE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", float),
        "WORKHIVE_LEASE": ("lease", float),
    }
    for var, (key, kind) in simple.items():
        if var in env:
            try:
                worker[key] = kind(env[var])
            except ValueError as exc:
                raise ConfigError(f"${var}: expected {kind.__name__}, got {env[var]!r}") from exc
    nested = {
        "WORKHIVE_SQLITE_PATH": ("sqlite", "path"),
        "REDIS_URL": ("redis", "url"),
        "WORKHIVE_REDIS_PREFIX": ("redis", "prefix"),
        "DATABASE_URL": ("postgres", "dsn"),
        "NATS_URL": ("nats", "url"),
        "RABBITMQ_URL": ("rabbitmq", "url"),
        "WORKHIVE_NATS_STREAM": ("nats", "stream"),
    }
    for var, (section, key) in nested.items():
        if var in env:
            worker.setdefault(section, {})[key] = env[var]
    for var, value in env.items():
        if var.startswith("WORKHIVE_FLAG_"):
            flag = var.removeprefix("WORKHIVE_FLAG_").lower()
            worker.setdefault("tasks", {})[flag] = _parse_bool(var, value)


def _parse_bool(var: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"${var}: expected true/false, got {value!r}")


def _humanise(message: str) -> str:
    """msgspec says "Object contains unknown field `x` - at `$.worker`"; we say worker.x."""
    unknown = re.match(r"Object contains unknown field `(.+)` - at `\$\.?(.*)`", message)
    if unknown:
        key = ".".join(p for p in (unknown.group(2), unknown.group(1)) if p)
        return f"unknown key {key}"
    typed = re.match(r"(.+) - at `\$\.?(.*)`", message)
    if typed:
        return f"key {typed.group(2)}: {typed.group(1)}"
    return message


def parse_config(raw: Any, source: str, env: dict[str, str] | None = None) -> HiveConfig:
    """Validate an already-loaded mapping (tests use this directly)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ConfigError(f"{source}: expected a mapping at the top level, got {kind}")
    _env_overrides(raw, dict(os.environ) if env is None else env)
    try:
        config = msgspec.convert(raw, HiveConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_humanise(str(exc))}") from exc
    config.source = source
    w = config.worker
    if w.concurrency < 1:
        raise ConfigError(f"{source}: key worker.concurrency must be >= 1, got {w.concurrency}")
    if w.shutdown_timeout < 0 or w.lease <= 0:
        raise ConfigError(f"{source}: worker.shutdown_timeout must be >= 0 and worker.lease > 0")
    config.backend_url()  # fail fast on an unknown backend
    config.coordination_url()
    if w.redpanda is not None and w.redpanda != w.kafka and w.kafka != KafkaConfig():
        raise ConfigError(f"{source}: worker.kafka and worker.redpanda are the same section "
                          "and disagree; keep one")
    chosen = BACKEND_ALIASES.get(w.backend, w.backend)
    section = {"rabbitmq": w.rabbitmq, "kafka": config.kafka()}.get(chosen)
    count = getattr(section, "worker_count", None)
    if count is not None:
        given = raw.get("worker", {}).get("concurrency") if isinstance(raw, dict) else None
        if given is not None and given != count:
            raise ConfigError(f"{source}: worker.concurrency ({given}) and "
                              f"worker.{chosen}.worker_count ({count}) disagree; set one")
        if count < 1:
            raise ConfigError(f"{source}: key worker.{chosen}.worker_count must be >= 1")
        w.concurrency = count
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> HiveConfig:
    """Read YAML from ``path`` / ``$WORKHIVE_CONFIG`` / ``./workhive.yaml`` (if present)."""
    explicit = path or os.environ.get("WORKHIVE_CONFIG")
    file = Path(explicit) if explicit else Path("workhive.yaml")
    if not file.exists():
        if explicit:
            raise ConfigError(f"{file}: config file not found")
        return parse_config({}, "<environment>")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    return parse_config(raw, str(file))
