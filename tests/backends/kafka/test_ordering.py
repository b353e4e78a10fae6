"""Per-key order on Kafka (Tansu): one record of a key at a time, different keys at once.

The backend-level tests drive ``fetch``/``settle`` by hand to pin down the mechanics (held
back behind a running record, a keyed retry kept in memory, the commit never passing either).
The worker tests run many keys x many messages with random handler times at concurrency 16 on
four partitions, in-process and then in real ``workhive worker`` processes with a kill -9.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from tests.backends.kafka.conftest import SESSION
from tests.backends.kafka.ordered_app import ordered
from tests.backends.kafka.tansu import bootstrap
from workhive import Hive, Module, TaskContext
from workhive._envelope import Envelope, decode, encode, make_envelope
from workhive.backend import Delivery, Settlement
from workhive.backends.kafka import KafkaBackend
from workhive.testing import run_until_idle

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 4


async def fetch_n(backend: KafkaBackend, n: int, wait: float = 10.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + wait
    while len(got) < n and time.monotonic() < deadline:
        got += await backend.fetch(["default"], n - len(got), lease=30, wait=0.5)
    assert len(got) == n, f"fetched {len(got)} of {n} within {wait}s"
    return got


def payloads(got: list[Delivery]) -> list[Any]:
    return [decode(d.body).payload for d in got]


def keyed(key: str, n: int) -> Envelope:
    return make_envelope("t", {"n": n}, ordering_key=key)


# -- the mechanics, one partition ------------------------------------------------------------


async def test_a_keyed_record_waits_while_its_key_runs(make: Callable[..., KafkaBackend]) -> None:
    backend = make(partitions=1)
    await backend.enqueue([keyed("a", 1), keyed("a", 2), make_envelope("t", {"n": 3}),
                           keyed("b", 4)])
    first = await fetch_n(backend, 3)
    assert payloads(first) == [{"n": 1}, {"n": 3}, {"n": 4}]  # a:2 waits behind a:1
    assert await backend.fetch(["default"], 10, lease=30, wait=0.5) == []
    (stat,) = await backend.stats()
    assert stat.in_flight == 4  # three running, one held back: none of them committed
    await backend.settle([Settlement(first[0], "release")])  # a:1 keeps its key
    (again,) = await fetch_n(backend, 1)
    assert payloads([again]) == [{"n": 1}]
    await backend.settle([Settlement(again, "ack")])
    (second,) = await fetch_n(backend, 1)
    assert payloads([second]) == [{"n": 2}]
    await backend.settle([Settlement(d, "ack") for d in [second, *first[1:]]])
    (stat,) = await backend.stats()
    assert (stat.ready, stat.in_flight) == (0, 0)


async def test_a_keyed_retry_runs_before_the_rest_of_its_key(
        make: Callable[..., KafkaBackend]) -> None:
    """A retry stays in memory (not in a delay tier, where later records would overtake it);
    it is never early, and a dead letter lets the key go on."""
    backend = make(partitions=1)
    envs = [keyed("a", 1), keyed("a", 2), keyed("a", 3)]
    await backend.enqueue(envs)
    (first,) = await fetch_n(backend, 1)
    nxt = msgspec.structs.replace(envs[0], attempt=1)
    due = time.time() + 0.8
    await backend.settle([Settlement(first, "retry", body=encode(nxt), eta=due)])
    (stat,) = await backend.stats()
    assert (stat.delayed, stat.in_flight) == (0, 3)  # kept here, not in a delay tier
    (retried,) = await fetch_n(backend, 1)
    assert time.time() >= due
    assert (decode(retried.body).attempt, decode(retried.body).payload) == (1, {"n": 1})
    await backend.settle([Settlement(retried, "dead", reason="gave up")])
    (second,) = await fetch_n(backend, 1)
    assert payloads([second]) == [{"n": 2}]
    await backend.settle([Settlement(second, "ack")])
    (third,) = await fetch_n(backend, 1)
    assert payloads([third]) == [{"n": 3}]
    await backend.settle([Settlement(third, "ack")])


async def test_the_commit_never_passes_a_held_key(make: Callable[..., KafkaBackend]) -> None:
    """A worker leaves while a:1 waits for its retry and a:2 waits behind it; the next member
    starts at a:1 (its original record) and still runs a:2 after it."""
    first = make(partitions=1)
    await first.enqueue([keyed("a", 1), keyed("a", 2), make_envelope("t", {"n": 3})])
    got = await fetch_n(first, 2)
    assert payloads(got) == [{"n": 1}, {"n": 3}]
    retry = msgspec.structs.replace(decode(got[0].body), attempt=1)
    await first.settle([Settlement(got[0], "retry", body=encode(retry), eta=time.time() + 60),
                        Settlement(got[1], "ack")])
    await first.close()
    second = make(partitions=1)
    again = await fetch_n(second, 2, wait=15)
    by_n = {decode(d.body).payload["n"]: decode(d.body) for d in again}
    assert set(by_n) == {1, 3}  # n=3 finished above the held offsets: it runs again
    assert by_n[1].attempt == 0  # the original record: the retry count starts over
    assert await second.fetch(["default"], 10, lease=30, wait=0.5) == []
    await second.settle([Settlement(d, "ack") for d in again])
    (last,) = await fetch_n(second, 1)
    assert payloads([last]) == [{"n": 2}]
    await second.settle([Settlement(last, "ack")])


def key_in(partition: int, partitions: int, prefix: str) -> str:
    """An ordering key the default partitioner puts in ``partition``."""
    for i in range(10_000):
        key = f"{prefix}-{i}"
        if DefaultPartitioner()(key.encode(), list(range(partitions)), []) == partition:
            return key
    raise AssertionError("no key found")


async def test_a_hot_key_does_not_stop_the_other_partitions(
        make: Callable[..., KafkaBackend]) -> None:
    """More records of one key than the whole buffer holds, its first one still running: the
    records behind it wait, and records produced afterwards into the other partition still
    come (a buffer full of one key would stop fetching for every partition)."""
    backend = make(partitions=2)
    hot, cool = key_in(0, 2, "hot"), key_in(1, 2, "cool")
    await backend.enqueue([keyed(hot, n) for n in range(1200)])  # buffer: 500 records
    (running,) = await fetch_n(backend, 1)
    assert payloads([running]) == [{"n": 0}]
    assert await backend.fetch(["default"], 10, lease=30, wait=1.0) == []
    await backend.enqueue([keyed(cool, n) for n in range(20)])
    got = await fetch_n(backend, 1)  # then one at a time: the cool key runs in order too
    while len(got) < 20:
        await backend.settle([Settlement(got[-1], "ack")])
        got += await fetch_n(backend, 1)
    assert payloads(got) == [{"n": n} for n in range(20)]
    await backend.settle([Settlement(got[-1], "ack"), Settlement(running, "ack")])
    (after,) = await fetch_n(backend, 1)
    assert payloads([after]) == [{"n": 1}]  # and the hot key goes on where it was


# -- a worker, many keys, four partitions ------------------------------------------------------


def plan(keys: int, per_key: int, seed: int) -> list[dict[str, Any]]:
    """Messages interleaved across keys; random handler times; some fail their first try."""
    rng = random.Random(seed)
    return [{"key": f"user-{k}", "seq": s, "sleep": rng.uniform(0.002, 0.02),
             "fail_first": s % 7 == 3 and k % 3 == 0}
            for s in range(per_key) for k in range(keys)]


async def partitions_of(url: str, topic: str, n: int) -> dict[str, set[int]]:
    """Which partitions each ordering key's records went to (reads the topic from the start)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap(url),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: dict[str, set[int]] = defaultdict(set)
    count = 0
    try:
        deadline = time.monotonic() + 20
        while count < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    seen[r.key.decode()].add(r.partition)
                    count += 1
    finally:
        await consumer.stop()
    assert count >= n, f"read {count} of {n} records"
    return seen


async def test_keys_keep_order_while_different_keys_run_at_once(
        kafka_url: str, make: Callable[..., KafkaBackend]) -> None:
    keys, per_key = 16, 20
    messages = plan(keys, per_key, seed=11)
    m = Module("o")
    starts: dict[str, list[int]] = defaultdict(list)
    done: dict[str, list[int]] = defaultdict(list)
    running: dict[str, int] = Counter()
    peak = {"all": 0, "key": 0}

    @m.task("o:step", ordering_key="key", retry_backoff=0.05)
    async def step(p: dict[str, Any], ctx: TaskContext) -> None:
        key = p["key"]
        starts[key].append(p["seq"])
        running[key] += 1
        peak["key"] = max(peak["key"], running[key])
        peak["all"] = max(peak["all"], sum(running.values()))
        try:
            await asyncio.sleep(p["sleep"])
            if p["fail_first"] and ctx.attempt == 0:
                raise RuntimeError("the first attempt fails")
            done[key].append(p["seq"])
        finally:
            running[key] -= 1

    backend = make(partitions=PARTITIONS)
    hive = Hive(backend)
    hive.include(m)
    envs = [hive.build("o:step", p) for p in messages]
    await hive.enqueue_many([e for e in envs if e is not None])
    await run_until_idle(hive, concurrency=16, timeout=120)
    await hive.close()

    for k in range(keys):
        key = f"user-{k}"
        assert done[key] == list(range(per_key)), key  # enqueue order, nothing lost
        failing = [p["seq"] for p in messages if p["key"] == key and p["fail_first"]]
        # a failed first try runs again before anything after it of the same key
        assert starts[key] == sorted([*range(per_key), *failing]), key
    assert peak["key"] == 1
    # more at once than there are partitions: keys of one partition ran side by side
    assert peak["all"] > PARTITIONS, peak
    spread = await partitions_of(kafka_url, backend.names.band_topic("default", 0),
                                 len(messages))
    assert all(len(parts) == 1 for parts in spread.values()), spread  # one key, one partition
    assert len(set().union(*spread.values())) > 1, spread  # keys spread over the partitions


# -- real worker processes, kill -9 --------------------------------------------------------------


class Ledger:
    """Worker processes of :mod:`tests.backends.kafka.ordered_app` and their ledgers."""

    def __init__(self, tmp_path: Path, backend_url: str) -> None:
        self.dir = tmp_path / "ledger"
        self.dir.mkdir()
        self.env = {**os.environ, "ORDER_LEDGER": str(self.dir), "PYTHONPATH": str(ROOT),
                    "WORKHIVE_BACKEND": backend_url,  # with a store, as in production
                    "WORKHIVE_COORDINATION": f"sqlite:///{tmp_path / 'coordination.db'}"}
        self.env.pop("WORKHIVE_CONFIG", None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a worker; its output goes to ``out-<n>.txt`` (a pipe nobody reads could fill
        up and stall it)."""
        cmd = [sys.executable, "-m", "workhive.cli", "worker", "--app",
               "tests.backends.kafka.ordered_app:make_hive", *args]
        with open(self.dir.parent / f"out-{len(self.procs)}.txt", "wb") as out:
            proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.dir.parent / f"out-{self.procs.index(proc)}.txt").read_text(errors="replace")

    def lines(self, pid: int) -> list[tuple[str, str, int, int]]:
        path = self.dir / f"{pid}.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            kind, key, seq, attempt = line.split()
            out.append((kind, key, int(seq), int(attempt)))
        return out

    def done(self) -> set[tuple[str, int]]:
        return {(key, seq) for proc in self.procs for kind, key, seq, _ in self.lines(proc.pid)
                if kind == "done"}

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; done: {len(self.done())}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def ledger(tmp_path: Path, kafka_url: str) -> Iterator[Ledger]:
    tag = uuid.uuid4().hex[:10]
    ledger = Ledger(tmp_path, f"{kafka_url}?topic=o{tag}&group=g{tag}"
                              f"&session_timeout={SESSION:g}&partitions={PARTITIONS}")
    yield ledger
    ledger.stop_all()


@pytest.mark.slow
def test_kill_9_and_restart_keeps_first_runs_in_order(ledger: Ledger) -> None:
    """A worker is killed mid-way (some keys waiting for a retry, others held back behind a
    running message); a new worker takes over from the committed offsets. Every message ends,
    each process ran one message of a key at a time, and across both processes the *first*
    run of each message came in enqueue order per key (re-runs after the kill come from the
    commit point, so they repeat a key's order, they never jump it)."""
    keys, per_key = 12, 40
    messages = plan(keys, per_key, seed=5)

    async def fill() -> None:
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in ledger.env.items() if k.startswith("WORKHIVE_")})
        try:
            hive = Hive.from_config()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        hive.include(ordered)
        envs = [hive.build("ordered:step", p) for p in messages]
        await hive.enqueue_many([e for e in envs if e is not None])
        await hive.close()

    asyncio.run(fill())
    victim = ledger.worker("--concurrency", "16")
    ledger.wait_for(lambda: len(ledger.done()) >= len(messages) // 3)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    successor = ledger.worker("--concurrency", "16")
    everything = {(p["key"], p["seq"]) for p in messages}
    ledger.wait_for(lambda: ledger.done() == everything)
    successor.send_signal(signal.SIGTERM)
    assert successor.wait(timeout=60) == 0, ledger.output(successor)[-2000:]

    first_runs: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    victim_started = 0
    for proc in (victim, successor):  # the successor started after the victim died
        running: dict[str, int | None] = {}
        for kind, key, seq, _ in ledger.lines(proc.pid):
            if kind == "start":
                assert running.get(key) is None, (proc.pid, key, running[key], seq)
                running[key] = seq
                victim_started += proc is victim
                if (key, seq) not in seen:
                    seen.add((key, seq))
                    first_runs[key].append(seq)
            else:
                running[key] = None
    assert seen == everything
    for key, seqs in first_runs.items():
        assert seqs == list(range(per_key)), (key, seqs)
    assert 0 < victim_started < len(messages)  # the kill really came mid-way
    last = {key: kind for kind, key, _, _ in ledger.lines(victim.pid)}
    by_victim = {(key, seq) for _, key, seq, _ in ledger.lines(victim.pid)}
    rerun = sum(1 for kind, key, seq, attempt in ledger.lines(successor.pid)
                if kind == "start" and attempt == 0 and (key, seq) in by_victim)
    print(f"victim started {victim_started}; at the kill {list(last.values()).count('start')} "
          f"keys were running and {list(last.values()).count('fail')} waiting for a retry; "
          f"{rerun} messages ran again")
