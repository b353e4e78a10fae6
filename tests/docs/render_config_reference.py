"""Render ``docs/configuration-reference.md`` from the config types in ``workhive.config``.

``python -m tests.docs.render_config_reference`` rewrites the page; ``test_config_reference``
fails when the committed page differs from what this renders, so the reference cannot drift
from the code. Everything comes from the code: keys, types and defaults from the msgspec
structs, descriptions from the comments beside each field, environment variables from the
override table in ``workhive.config``. :data:`NOTES` describes the fields whose line in
``config.py`` carries no comment yet.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import sys
import tokenize
from pathlib import Path
from typing import Any

import msgspec

from workhive import config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration-reference.md"

#: Descriptions of fields whose line in ``config.py`` has no comment (key path -> text).
NOTES = {
    "worker.enabled": "false: `workhive worker` exits at once (producers still work)",
    "worker.backend": "a backend name (`sqlite`, `redis`, `postgres`, `rabbitmq`, `nats`, "
                      "`kafka`, `redis-pubsub`, `memory`, `noop`; also `asynq`, `redpanda`, "
                      "`disable`) or a full URL",
    "worker.concurrency": "handlers running at once per worker process",
    "worker.shutdown_timeout": "seconds a first SIGTERM waits for running handlers",
    "worker.lease": "seconds a fetched message stays invisible before it is redelivered "
                    "(extended while its handler runs; timed-lease backends)",
    "worker.queues": "queues a worker consumes (empty: every queue the app declares)",
    "worker.tasks": "feature flags, `name: true` or `name: false`; an unset flag is off",
    "sqlite.path": "the database file (relative to the working directory)",
    "redis.url": "`redis://`, `rediss://`, `redis+cluster://`, `redis+sentinel://`, `unix://`",
    "postgres.dsn": "`postgresql://user:pass@host/db`; `?schema=` picks the schema",
    "rabbitmq.url": "`amqp://` or `amqps://`",
    "kafka.brokers": "bootstrap servers, `host:port`",
    "nats.url": "`nats://` or `tls://`",
    "nats.stream": "the JetStream stream workhive keeps its messages in",
    "redis.prefix": "prefix of every Redis key workhive writes",
}
#: Struct -> the key path its fields live under, in the order the page shows them.
SECTIONS: list[tuple[type[msgspec.Struct], str]] = [
    (config.WorkerConfig, "worker"),
    (config.SQLiteConfig, "worker.sqlite"),
    (config.RedisConfig, "worker.redis"),
    (config.PostgresConfig, "worker.postgres"),
    (config.RabbitMQConfig, "worker.rabbitmq"),
    (config.NatsConfig, "worker.nats"),
    (config.KafkaConfig, "worker.kafka"),
]


def _comments(source: str) -> dict[int, str]:
    """Line number -> the ``#`` comment on that line (text after the hash)."""
    found: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = tok.string.lstrip("#:").strip()
    return found


def _fields(cls: type[msgspec.Struct]) -> list[tuple[str, str, str]]:
    """(name, annotation as written, comment) of each field of ``cls``, in source order."""
    source = inspect.getsource(cls)
    comments = _comments(source)
    lines = source.splitlines()
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    out = []
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = node.lineno
            note = comments.get(line, "")
            if not note and line >= 2 and lines[line - 2].strip().startswith("#:"):
                note = comments.get(line - 1, "")
            out.append((node.target.id, ast.unparse(node.annotation), note))
    return out


def _env_vars() -> dict[str, str]:
    """Key path (``worker.redis.url``) -> environment variable, read from the override table."""
    tree = ast.parse(inspect.getsource(config._env_overrides))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(value, ast.Tuple)):
                continue
            parts = [e.value if isinstance(e, ast.Constant) else "kafka" for e in value.elts[:-1]]
            found["worker." + ".".join(str(p) for p in parts)] = str(key.value)
    return found


def _default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, msgspec.Struct):
        return "(see below)"
    return f"`{json.dumps(msgspec.to_builtins(value))}`"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no column breaks, no stray HTML tags."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render() -> str:
    env = _env_vars()
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the config types in workhive/config.py by",
        "     `python -m tests.docs.render_config_reference`; do not edit by hand. -->",
        "",
        "Every key workhive reads, with its type, default and the environment variable that",
        "overrides it. Where the keys go (one `workhive.yaml`, or `featureflags.yaml` +",
        "`config.yaml`), the other names some keys go by (`asynq`, `redpanda`, `disable`) and how",
        "files and environment combine: [configuration.md](configuration.md). Feature flags can",
        "also be set with `WORKHIVE_FLAG_<NAME>=true` or `=false`.",
    ]
    for cls, path in SECTIONS:
        instance = cls()
        out += ["", f"## `{path}`", "", "| key | type | default | environment | meaning |",
                "| --- | --- | --- | --- | --- |"]
        for name, annotation, comment in _fields(cls):
            key = f"{path}.{name}"
            note = comment or NOTES.get(f"{path.removeprefix('worker.')}.{name}",
                                        NOTES.get(key, ""))
            var = f"`{env[key]}`" if key in env else ""
            out.append(f"| `{name}` | `{_cell(annotation)}` | "
                       f"{_cell(_default(getattr(instance, name)))} | {var} | {_cell(note)} |")
    return "\n".join(out) + "\n"


def main() -> None:
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
