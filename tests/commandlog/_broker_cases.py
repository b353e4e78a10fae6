"""Test bodies shared by the broker logs (NATS JetStream, Kafka): each takes a log URL and a
factory, so ``test_nats_log.py`` and ``test_kafka_log.py`` run the same scenario on their broker.

Everything here runs against the real broker; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import collections
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.commandlog.commands import CreatePost, DeletePost
from workhive.cli.commandlog import log_group, workers_command
from workhive.commandlog import Executor, Message, MessageLog, open_log
from workhive.errors import CapabilityError

ROOT = Path(__file__).resolve().parents[2]
MakeLog = Callable[[], MessageLog]


async def gap_safe_tail_under_concurrent_appenders(log: MessageLog, make: MakeLog) -> None:
    """Three more clients (as three processes would) append one by one and in batches, four
    tasks each; a reader that only remembers its last id sees every id exactly once, in order,
    while they write."""
    writers = [make() for _ in range(3)]
    for w in writers:
        await w.open()
    per_task, tasks_per_writer = 40, 4
    rng = random.Random(11)

    async def write(w: MessageLog) -> None:
        for _ in range(per_task):
            if rng.random() < 0.25:
                ids = await w.append_many([("w/batch", b"{}", None)] * 5)
                assert ids == sorted(ids) and len(set(ids)) == 5
            else:
                await w.append("w/one", b"{}")

    seen: list[int] = []
    done = asyncio.Event()

    async def tail() -> None:
        last = 0
        while True:
            batch = await log.read_after(last, 50)
            for m in batch:
                assert m.id == last + 1, f"reader jumped from {last} to {m.id}: a gap"
                last = m.id
                seen.append(m.id)
            if not batch:
                if done.is_set() and last == await log.head():
                    return
                await log.wait_for(last, 0.5)

    reader = asyncio.create_task(tail())
    try:
        await asyncio.gather(*(write(w) for w in writers for _ in range(tasks_per_writer)))
        done.set()
        await asyncio.wait_for(reader, 60)
    finally:
        reader.cancel()
        for w in writers:
            await w.close()
    head = await log.head()
    assert head >= len(writers) * tasks_per_writer * per_task
    assert seen == list(range(1, head + 1))


async def wait_for_wakes_on_another_clients_append(log: MessageLog, make: MakeLog) -> None:
    """A process waiting on the log is woken by an append made through another connection."""
    other = make()
    await other.open()
    try:
        head = await log.head()
        waiter = asyncio.create_task(log.wait_for(head, timeout=30))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        appended = await other.append("a/x", b"{}")
        assert await waiter is True
        assert [m.id for m in await log.read_after(head)] == [appended]
    finally:
        await other.close()


async def checkpoints_survive_reopen(make: MakeLog) -> None:
    """Checkpoints are durable in the broker, whatever the worker's name looks like."""
    names = {"Summary Worker": 3, "ünï/κ.*>": 5, "plain-name_1": 9}
    first = make()
    await first.open()
    try:
        for name, last_id in names.items():
            await first.save_checkpoint(name, last_id - 1)
            await first.save_checkpoint(name, last_id)  # the later save wins
    finally:
        await first.close()
    again = make()
    await again.open()
    try:
        for name, last_id in names.items():
            assert await again.get_checkpoint(name) == last_id
        assert await again.get_checkpoint("never saved") == 0
        saved = await again.checkpoints()
        assert {k: v[0] for k, v in saved.items()} == names
        assert all(v[1] > 0 for v in saved.values())
        await again.save_checkpoint("plain-name_1", 10)
    finally:
        await again.close()
    third = make()  # a save by another client is seen by the next reader
    await third.open()
    try:
        assert await third.get_checkpoint("plain-name_1") == 10
    finally:
        await third.close()


async def transaction_buffers_appends_and_refuses_sql(log: MessageLog) -> None:
    """No database: appends wait for the block to exit, the checkpoint follows them, an
    exception drops both, SQL is refused with the way out named, appliers see real ids."""
    applied: list[tuple[int, str]] = []
    ex = Executor(log)
    ex.on(CreatePost, lambda c, m: applied.append((m.id, c.post_id)))
    await ex.execute(CreatePost("0", "before"))

    async with log.transaction() as tx:
        assert tx.connection is None
        assert await ex.execute(CreatePost("1", "one")) == 0, "no id before the publish"
        assert await log.append_many([("a/x", b"{}", None)]) == [0]
        await tx.save_checkpoint("w", 1)
        assert await log.read_after(1) == [], "nothing is published inside the block"
        assert await log.get_checkpoint("w") == 0
        assert applied == [(1, "0")], "appliers wait for the publish"
    ids = tx.ids  # type: ignore[attr-defined]
    assert ids == [2, 3]
    assert [(m.id, m.name) for m in await log.read_after(1)] == [(2, "post/create"), (3, "a/x")]
    assert await log.get_checkpoint("w") == 1
    assert applied == [(1, "0"), (2, "1")], "the applier ran with the id the broker assigned"

    with pytest.raises(RuntimeError, match="handler failed"):
        async with log.transaction() as tx:
            await ex.execute(CreatePost("2", "two"))
            await log.save_checkpoint("w", 3)
            raise RuntimeError("handler failed")
    assert await log.head() == 3, "the buffered append was dropped with the block"
    assert await log.get_checkpoint("w") == 1
    assert applied[-1] == (2, "1")

    async with log.transaction() as tx:
        for call in (tx.execute("INSERT INTO effects VALUES (1)"), tx.fetch("SELECT 1")):
            with pytest.raises(CapabilityError) as info:
                await call
            text = str(info.value)
            assert "sqlite:///" in text and "postgresql://" in text and "idempotent" in text


async def kill_9_and_restart_resumes_from_checkpoint(url: str, tmp_path: Path) -> set[int]:
    """kill -9 a real worker process mid-stream, restart it: it resumes from its checkpoint,
    no committed message runs again, at most the in-flight one does. Returns the ids of the
    posts whose follow-up the first run published (for broker-specific assertions)."""
    runs = tmp_path / "runs.txt"
    total = 300
    async with open_log(url) as log:  # type: ignore[attr-defined]
        await Executor(log).execute_many([CreatePost(str(i), f"t{i}") for i in range(total)])

    async def checkpoint() -> int:
        async with open_log(url) as log:  # type: ignore[attr-defined]
            return await log.get_checkpoint("effects")

    def spawn() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.commandlog._killable_broker_worker", url, str(runs)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    def ran() -> int:
        return len(runs.read_text().split()) if runs.exists() else 0

    proc = spawn()
    while ran() < 40:
        assert proc.poll() is None, "worker process died"
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    done_before_restart = await checkpoint()
    assert 0 < done_before_restart < total, "the kill must land mid-stream to mean much"

    proc = spawn()
    try:
        while await checkpoint() < total:
            assert proc.poll() is None, "worker process died"
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0, "SIGTERM stops the worker gracefully"

    counts = collections.Counter(int(x) for x in runs.read_text().split())
    assert set(counts) == set(range(1, total + 1)), "every message was handled"
    rerun = sorted(i for i, n in counts.items() if n > 1)
    assert len(rerun) <= 1, f"only the in-flight message may run twice, got {rerun}"
    assert all(i > done_before_restart for i in rerun), "no checkpointed message ran again"

    async with open_log(url) as log:  # type: ignore[attr-defined]
        messages: list[Message] = []
        while batch := await log.read_after(messages[-1].id if messages else 0, 1000):
            messages += batch
    follow_ups = collections.Counter(
        int(m.metadata["caused_by"]) for m in messages if m.name == DeletePost.command_name
    )
    assert set(follow_ups) == set(range(1, total + 1)), "every post got its follow-up"
    return {i for i, n in follow_ups.items() if n > 1}


def cli_tail_and_workers(url: str) -> None:
    """``workhive log tail`` and ``workhive workers`` read the broker log through the protocol."""

    async def fill() -> None:
        async with open_log(url) as log:  # type: ignore[attr-defined]
            await Executor(log).execute_many([CreatePost(str(i), f"title {i}") for i in range(5)])
            await log.save_checkpoint("indexer", 3)

    asyncio.run(fill())  # the CLI runs its own event loop, so this is sync
    runner = CliRunner()
    out = runner.invoke(log_group, ["tail", "--log", url, "-n", "2"])
    assert out.exit_code == 0, out.output
    assert "head 5" in out.output and "post/create" in out.output
    assert "title 4" in out.output and "title 3" in out.output and "title 2" not in out.output
    out = runner.invoke(log_group, ["tail", "--log", url, "-n", "50"])
    assert out.exit_code == 0, out.output
    assert all(f"title {i}" in out.output for i in range(5))
    out = runner.invoke(workers_command, ["--log", url])
    assert out.exit_code == 0, out.output
    assert "indexer" in out.output and "│ 3" in out.output and "│ 2 " in out.output
