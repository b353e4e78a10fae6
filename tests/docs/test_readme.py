"""The README's and the docs' Python examples run as written (directives: :mod:`._blocks`).

Each page runs in its own scratch directory, each block in a fresh interpreter, exactly as a
reader would paste it into a file: no hidden imports, no top-level ``await``, SQLite files
relative to the working directory. A block saved with ``<!-- file: test_x.py -->`` is a test
module and runs under pytest, so the docs' testing advice is itself tested. A page marked
``<!-- requires-broker: nats -->`` runs against the test broker, whose URL it reads from the
variable a reader's app would (``NATS_URL``...); it skips without the broker, fails under CI.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests._services import require_service
from tests.backends.kafka.tansu import Broker, bootstrap
from tests.docs._blocks import Block, python_blocks

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: A block that hangs is a failure, not a stuck suite.
BLOCK_TIMEOUT = 90.0
#: ``requires-broker`` name -> the variable workhive's configuration reads its address from,
#: which the page's examples read too (with a loopback default, as a reader would run them)
BROKER_ENV = {"nats": "NATS_URL", "rabbitmq": "RABBITMQ_URL", "kafka": "KAFKA_BROKERS",
              "redis": "REDIS_URL", "postgres": "DATABASE_URL"}


def _brokers(page: Path) -> list[str]:
    return sorted({name for block in python_blocks(page) for name in block.brokers})


def _pages() -> list[object]:
    """Runnable pages, each marked with the brokers it needs (``-m "not kafka"`` leaves it out)."""
    return [pytest.param(p, id=p.name, marks=[getattr(pytest.mark, b) for b in _brokers(p)
                                              if b in BROKER_ENV])
            for p in PAGES if python_blocks(p)]


def _env(scratch: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The reader's environment: no workhive settings leaking in from the test run, plus the
    broker addresses the page was given (``extra``)."""
    dropped = {"PYTEST_ADDOPTS", "PYTHONPATH", *BROKER_ENV.values()}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WORKHIVE_") and k not in dropped}
    env.update(extra or {})
    env["PYTHONPATH"] = str(scratch)
    return env


def broker_env(page: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The address of every broker ``page`` asks for; skips (locally) or fails (under CI) when
    one is not reachable. Kafka is the test run's own Tansu broker."""
    env: dict[str, str] = {}
    for name in _brokers(page):
        if name not in BROKER_ENV:
            pytest.fail(f"{page.name}: unknown broker {name!r} in requires-broker (one of "
                        f"{', '.join(sorted(BROKER_ENV))})", pytrace=False)
        if name == "kafka":
            broker: Broker = request.getfixturevalue("kafka_broker")
            env[BROKER_ENV[name]] = bootstrap(broker.url)
        else:
            env[BROKER_ENV[name]] = require_service(name)
    return env


def _command(block: Block, path: Path) -> list[str]:
    if path.name.startswith("test_"):
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "-p", "no:asyncio", "-W", "error", "--rootdir", str(path.parent), str(path)]
    return [sys.executable, str(path)]


def run_block(block: Block, scratch: Path, index: int, env: Mapping[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str] | None:
    """Save the block; run it if it is Python (None when it is only a file to save). ``env``:
    variables added to the reader's environment (broker addresses)."""
    path = scratch / (block.filename or f"block_{index:02d}.py")
    path.write_text(block.code, encoding="utf-8")
    if block.language != "python":
        return None
    return subprocess.run(_command(block, path), cwd=scratch, env=_env(scratch, env), text=True,
                          capture_output=True, timeout=BLOCK_TIMEOUT)


@pytest.mark.parametrize("page", _pages())
def test_page_examples_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = python_blocks(page)
    for module in sorted({m for b in blocks for m in b.requires}):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{page.name} needs {module} (not installed)")
    env = broker_env(page, request)
    for index, block in enumerate(blocks):
        if not block.run:
            if block.language == "python":
                compile(block.code, block.where, "exec")  # shown-only code must still parse
            continue
        result = run_block(block, tmp_path, index, env)
        assert result is None or result.returncode == 0, (
            f"the example at {block.where} failed:\n{block.code}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")

