"""The NATS JetStream log (``nats://host:4222/STREAM``) against the real server.

The shared contract suite runs on it through the ``log`` fixture (conftest.py); these are the
scenarios that need the broker itself: concurrent appenders, reopening, a killed worker, the CLI,
duplicate suppression, and the errors a user can cause.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from tests._services import free_port, require_service
from tests.commandlog import _broker_cases as cases
from tests.commandlog.conftest import drop, nats_log_url
from workhive.commandlog import MessageLog, open_log
from workhive.commandlog.nats import NatsMessageLog
from workhive.errors import BackendUnavailable, ConfigError

pytestmark = [pytest.mark.nats, pytest.mark.integration]


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A fresh log URL; its stream and bucket are deleted afterwards."""
    made = nats_log_url()
    yield made
    await drop(NatsMessageLog(made))


@pytest.fixture
async def opened(url: str) -> AsyncIterator[NatsMessageLog]:
    log = NatsMessageLog(url)
    await log.open()
    yield log
    await log.close()


async def test_gap_safe_tail_under_concurrent_appenders(url: str, opened: MessageLog) -> None:
    await cases.gap_safe_tail_under_concurrent_appenders(opened, lambda: NatsMessageLog(url))


async def test_wait_for_wakes_on_another_clients_append(url: str, opened: MessageLog) -> None:
    await cases.wait_for_wakes_on_another_clients_append(opened, lambda: NatsMessageLog(url))


async def test_checkpoints_survive_reopen(url: str) -> None:
    await cases.checkpoints_survive_reopen(lambda: NatsMessageLog(url))


async def test_transaction_buffers_appends_and_refuses_sql(opened: MessageLog) -> None:
    await cases.transaction_buffers_appends_and_refuses_sql(opened)


async def test_the_stream_sequence_is_the_message_id(opened: NatsMessageLog) -> None:
    ids = await opened.append_many([("a/x", b"1", None), ("a/y", b"2", {"k": "v"})])
    info = await opened.js.stream_info(opened.stream)
    assert info.state.last_seq == ids[-1] == await opened.head()
    stored = await opened.js.get_msg(opened.stream, ids[0])
    assert stored.subject == opened.subject and stored.seq == ids[0]
    assert info.config.subjects == [f"workhive.log.{opened.stream}"]


async def test_a_transaction_run_again_is_not_published_twice(opened: NatsMessageLog) -> None:
    """A handler that crashed after its publish and before its checkpoint runs again: the same
    checkpoint gives the same Nats-Msg-Id, and the stream drops the copies."""
    async with opened.transaction() as tx:
        await opened.append_many([("f/one", b"{}", None), ("f/two", b"{}", None)])
        await tx.save_checkpoint("w", 7)
    first = tx.ids  # type: ignore[attr-defined]
    async with opened.transaction() as tx:  # the re-run, for the same message
        await opened.append_many([("f/one", b"{}", None), ("f/two", b"{}", None)])
        await tx.save_checkpoint("w", 7)
    assert tx.ids == first  # type: ignore[attr-defined]
    assert await opened.head() == first[-1]
    async with opened.transaction() as tx:  # the next message is new work
        await opened.append("f/one", b"{}")
        await tx.save_checkpoint("w", 8)
    assert tx.ids == [first[-1] + 1]  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_kill_9_and_restart_resumes_from_checkpoint(url: str, tmp_path: Path) -> None:
    duplicated = await cases.kill_9_and_restart_resumes_from_checkpoint(url, tmp_path)
    assert duplicated == set(), "a re-run inside the duplicate window publishes no copy"


def test_cli_log_tail_and_workers(url: str) -> None:
    cases.cli_tail_and_workers(url)


def test_bad_urls_are_clear_config_errors() -> None:
    cases_ = {
        "nats://127.0.0.1:4222": "needs the log's name",
        "nats://127.0.0.1:4222/": "needs the log's name",
        "nats://127.0.0.1:4222/a/b": "takes one",
        "nats://127.0.0.1:4222/bad.name": "must match",
        "nats://127.0.0.1:4222/LOG?prefix=x": "no ?prefix=",
        "nats://127.0.0.1:4222/LOG?stream=x": "unknown nats log option 'stream'",
        "nats://127.0.0.1:4222/LOG?replicas=9": "'replicas' must be 1..5",
        "nats://127.0.0.1:4222/LOG?request_timeout=soon": "must be a number",
    }
    for bad, reason in cases_.items():
        with pytest.raises(ConfigError, match=reason.replace("?", r"\?").replace(".", r"\.")):
            open_log(bad)
    with pytest.raises(ConfigError, match="takes no prefix"):
        open_log("nats://127.0.0.1:4222/LOG", prefix="p")


def test_urls_and_credentials() -> None:
    log = open_log("tls://alice:s3cret@example.com:4443/ORDERS?request_timeout=2")
    assert isinstance(log, NatsMessageLog)
    assert "s3cret" not in log.url and "s3cret" not in repr(log)
    assert log.url == "tls://alice:***@example.com:4443/ORDERS"
    assert log.stream == "ORDERS" and log.settings.request_timeout == 2.0
    assert log.settings.password == "s3cret"


async def test_unreachable_server_is_backend_unavailable_without_the_password() -> None:
    log = NatsMessageLog(f"nats://u:s3cret@127.0.0.1:{free_port()}/LOG?connect_timeout=0.5")
    with pytest.raises(BackendUnavailable) as info:
        await log.open()
    assert "s3cret" not in str(info.value) and "127.0.0.1" in str(info.value)
    await log.close()


async def test_a_stream_that_is_not_a_log_is_refused(url: str) -> None:
    name = f"CLX{uuid.uuid4().hex[:10]}"
    nc = await nats.connect(require_service("nats"))
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"other.{name}"]))
    try:
        log = NatsMessageLog(f"{require_service('nats')}/{name}")
        with pytest.raises(ConfigError, match="exists and is not a workhive log"):
            await log.open()
        await log.close()
        assert (await js.stream_info(name)).config.subjects == [f"other.{name}"], "left alone"
    finally:
        await js.delete_stream(name)
        await nc.close()


async def test_foreign_messages_on_the_subject_never_wedge_a_reader(opened: NatsMessageLog) -> None:
    await opened.js.publish(opened.subject, b"\xc1 not ours")  # 0xc1 is never valid msgpack
    good = await opened.append("a/x", b"{}")
    msgs = await opened.read_after(0)
    assert [m.id for m in msgs] == [1, good]
    assert msgs[0].name == "" and "undecodable" in msgs[0].metadata["error"]


def test_a_missing_nats_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nats", None)
    for module in [m for m in sys.modules if m.startswith(("workhive.commandlog.nats",
                                                           "workhive.commandlog._nats_io",
                                                           "workhive.backends.nats"))]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ConfigError, match=r"pip install 'workhive\[nats\]'"):
        open_log("nats://127.0.0.1:4222/LOG")
