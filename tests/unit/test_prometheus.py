"""PrometheusMetrics through the real worker on memory://, and ``workhive worker --metrics-port``
in real processes on a SQLite file.

Each in-process test uses its own ``CollectorRegistry``: registering the same metric names twice
in one registry is an error, and exact counter values need a registry no other test touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.app import faults
from workhive import Hive, Module, Reject, Retry, Skip, TaskContext
from workhive.errors import ConfigError
from workhive.middleware import Logs
from workhive.middleware.prometheus import OUTCOMES, PrometheusMetrics, start_metrics_server
from workhive.testing import run_until_idle

ROOT = Path(__file__).resolve().parents[2]


def hive_with(prom: PrometheusMetrics, *modules: Module) -> Hive:
    """A memory hive with ``prom`` where ``--metrics-port`` puts it: right after the logs."""
    hive = Hive("memory://")
    assert isinstance(hive.middleware[0], Logs)
    hive.middleware.insert(1, prom)
    for module in modules:
        hive.include(module)
    return hive


def sampler(registry: CollectorRegistry) -> Callable[..., float | None]:
    def sample(name: str, task: str, queue: str = "default", **labels: str) -> float | None:
        return registry.get_sample_value(name, {"task": task, "queue": queue, **labels})

    return sample


async def test_outcomes_durations_queue_wait_and_in_progress() -> None:
    m = Module("p")
    seen_in_progress: list[float | None] = []
    deferred_once: list[int] = []
    registry = CollectorRegistry()
    sample = sampler(registry)

    @m.task("p:ok", queue="fast")
    async def ok() -> None:
        seen_in_progress.append(sample("workhive_tasks_in_progress", "p:ok", "fast"))

    @m.task("p:flaky", max_retries=2, retry_backoff=0.01)
    async def flaky(p: Any, ctx: TaskContext) -> None:
        if ctx.attempt == 0:
            raise RuntimeError("first time unlucky")

    @m.task("p:broken", max_retries=1, retry_backoff=0.01)
    def broken() -> None:  # sync handlers go through the same chain
        raise ValueError("never works")

    @m.task("p:defer")
    async def defer() -> None:
        if not deferred_once:
            deferred_once.append(1)
            raise Retry(0.01, count=False, reason="rate limited")

    @m.task("p:skip")
    async def skip() -> None:
        raise Skip()

    hive = hive_with(PrometheusMetrics(registry), m)
    for name in ("p:ok", "p:ok", "p:flaky", "p:broken", "p:defer", "p:skip"):
        await hive.enqueue(name)
    await run_until_idle(hive)

    expected = {
        ("p:ok", "fast"): {"succeeded": 2},
        ("p:flaky", "default"): {"retried": 1, "succeeded": 1},
        ("p:broken", "default"): {"retried": 1, "dead": 1},
        ("p:defer", "default"): {"deferred": 1, "succeeded": 1},
        ("p:skip", "default"): {"skipped": 1},
    }
    # attempt 0 only; the deferred task keeps attempt 0 (Retry(count=False)), so it counts twice
    first_attempts = {"p:ok": 2, "p:flaky": 1, "p:broken": 1, "p:defer": 2, "p:skip": 1}
    for (task, queue), counts in expected.items():
        for outcome in OUTCOMES:  # the outcomes that never happened are exported at 0
            value = sample("workhive_tasks_total", task, queue, outcome=outcome)
            assert value == counts.get(outcome, 0), (task, outcome, value)
        attempts = sum(counts.values())
        assert sample("workhive_task_duration_seconds_count", task, queue) == attempts
        assert sample("workhive_task_duration_seconds_bucket", task, queue, le="+Inf") == attempts
        assert sample("workhive_task_queue_wait_seconds_count", task, queue) == \
            first_attempts[task], task
        assert sample("workhive_tasks_in_progress", task, queue) == 0, task
    # counted while running: 1, or 2 when both copies ran at once (concurrency 10)
    assert len(seen_in_progress) == 2
    assert all(v in (1.0, 2.0) for v in seen_in_progress), seen_in_progress


async def test_without_retries_layer_a_crash_is_dead() -> None:
    m = Module("n")

    @m.task("n:crash")
    async def crash() -> None:
        raise KeyError("boom")

    @m.task("n:reject")
    async def reject() -> None:
        raise Reject("bad input")

    registry = CollectorRegistry()
    hive = Hive("memory://", middleware=[PrometheusMetrics(registry)])
    hive.include(m)
    await hive.enqueue("n:crash")
    await hive.enqueue("n:reject")
    await run_until_idle(hive)
    sample = sampler(registry)
    for task in ("n:crash", "n:reject"):
        assert sample("workhive_tasks_total", task, outcome="dead") == 1
        assert sample("workhive_tasks_total", task, outcome="succeeded") == 0


async def test_queue_wait_starts_at_eta_and_ignores_clock_skew() -> None:
    m = Module("w")

    @m.task("w:scheduled")
    async def scheduled() -> None: ...

    @m.task("w:skewed")
    async def skewed() -> None: ...

    registry = CollectorRegistry()
    hive = hive_with(PrometheusMetrics(registry), m)
    now = time.time()
    envelopes = [hive.build("w:scheduled"), hive.build("w:skewed")]
    assert envelopes[0] is not None and envelopes[1] is not None
    # enqueued 100 s ago for 1 s ago: it waited about 1 s, not 100 s
    late = msgspec.structs.replace(envelopes[0], enqueued_at=now - 100, eta=now - 1)
    # a producer whose clock runs ahead: no negative waits
    ahead = msgspec.structs.replace(envelopes[1], enqueued_at=now + 100)
    await hive.enqueue_many([late, ahead])
    await run_until_idle(hive)
    sample = sampler(registry)
    waited = sample("workhive_task_queue_wait_seconds_sum", "w:scheduled")
    assert waited is not None and 1 <= waited < 50
    assert sample("workhive_task_queue_wait_seconds_sum", "w:skewed") == 0
    assert sample("workhive_task_queue_wait_seconds_count", "w:skewed") == 1


async def test_labelled_children_are_resolved_once_per_task_and_queue(
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = Module("c")

    @m.task("c:a")
    async def a() -> None: ...

    prom = PrometheusMetrics(CollectorRegistry())
    calls: list[tuple[str, ...]] = []
    for metric in (prom.tasks_total, prom.task_duration, prom.queue_wait, prom.in_progress):
        original = metric.labels

        def counting(*values: str, _original: Any = original) -> Any:
            calls.append(values)
            return _original(*values)

        monkeypatch.setattr(metric, "labels", counting)
    hive = hive_with(prom, m)
    for _ in range(20):
        await hive.enqueue("c:a")
    await hive.enqueue("c:a", queue="other")  # one task, two queues: two series
    await run_until_idle(hive, queues=["default", "other"])
    # 5 outcomes + duration + wait + in-progress, once for each of the two queues
    assert len(calls) == 2 * (len(OUTCOMES) + 3), calls


def test_namespace_prefixes_every_name() -> None:
    registry = CollectorRegistry()
    PrometheusMetrics(registry, namespace="billing")
    names = {metric.name for metric in registry.collect()}
    assert names == {"billing_tasks", "billing_task_duration_seconds",
                     "billing_task_queue_wait_seconds", "billing_tasks_in_progress"}


def test_missing_prometheus_client_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'workhive\[prometheus\]'"):
        PrometheusMetrics(CollectorRegistry())
    with pytest.raises(ConfigError, match=r"pip install 'workhive\[prometheus\]'"):
        start_metrics_server(9, registry=CollectorRegistry())


def test_metrics_server_on_a_busy_port_is_a_config_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            start_metrics_server(port, "127.0.0.1", CollectorRegistry())


# -- workhive worker --metrics-port, in real processes ------------------------------------------


def free_ports(count: int) -> int:
    """A port such that ``port .. port+count-1`` are free right now (children bind them)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port + count - 1 > 65535:
            continue
        try:
            for offset in range(1, count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise AssertionError(f"no {count} consecutive free ports")


def succeeded(port: int) -> float | None:
    """``workhive_tasks_total`` succeeded for fault:work on ``port``; None while not serving."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "workhive_tasks_total" and s.labels == {
                    "task": "fault:work", "queue": "default", "outcome": "succeeded"}:
                return s.value
    return 0.0


@pytest.fixture
def worker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    yield {**os.environ, "WORKHIVE_BACKEND": f"sqlite:///{tmp_path / 'x.db'}",
           "FAULT_LEDGER": str(ledger), "PYTHONPATH": str(ROOT)}


def fill(env: dict[str, str], n: int) -> None:
    async def go() -> None:
        hive = Hive(env["WORKHIVE_BACKEND"])
        hive.include(faults)
        for i in range(n):
            await hive.enqueue("fault:work", {"i": i})
        await hive.close()

    asyncio.run(go())


@pytest.mark.integration
@pytest.mark.sqlite
@pytest.mark.parametrize("processes", [1, 2])
def test_worker_metrics_port_serves_prometheus(worker_env: dict[str, str],
                                               processes: int) -> None:
    n = 3 * processes
    fill(worker_env, n)
    port = free_ports(processes)
    ports = [port + i for i in range(processes)]  # child i of --processes serves port + i
    proc = subprocess.Popen(
        [sys.executable, "-m", "workhive.cli", "worker", "--app", "tests.faults.app:make_hive",
         "--metrics-port", str(port), "--processes", str(processes)],
        env=worker_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        totals: list[float | None] = []
        deadline = time.monotonic() + 60  # a bound on the wait, not a performance assertion
        while time.monotonic() < deadline and proc.poll() is None:
            totals = [succeeded(p) for p in ports]
            if None not in totals and sum(t or 0 for t in totals) == n:
                break
            time.sleep(0.1)
        assert None not in totals and sum(t or 0 for t in totals) == n, totals
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    for p in ports:
        assert f"Prometheus metrics on http://127.0.0.1:{p}/metrics" in text, text
