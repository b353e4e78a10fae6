"""Enqueue options and payloads are refused at the API, naming the option, before any write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from workhive import Hive, Module, SerializationError, ValidationError
from workhive._envelope import decode, encode, make_envelope
from workhive.testing import run_until_idle

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"priority": "high"}, "priority"),
    ({"priority": True}, "priority"),
    ({"priority": 1.5}, "priority"),
    ({"priority": 2**31}, "priority"),
    ({"priority": -(2**31) - 1}, "priority"),
    ({"delay": "1"}, "delay"),
    ({"delay": True}, "delay"),
    ({"delay": float("nan")}, "delay"),
    ({"delay": float("inf")}, "delay"),
    ({"delay": -1}, "delay"),
    ({"eta": "tomorrow"}, "eta"),
    ({"eta": float("nan")}, "eta"),
    ({"eta": False}, "eta"),
    ({"eta": datetime(2030, 1, 1)}, "eta"),  # naive: ambiguous
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 1.5}, "max_retries"),
    ({"max_retries": "3"}, "max_retries"),
    ({"timeout": -0.5}, "timeout"),
    ({"timeout": "10"}, "timeout"),
    ({"timeout": float("inf")}, "timeout"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": 7}, "idempotency_key"),
    ({"unique_key": b"k"}, "unique_key"),
    ({"unique_key": "\ud800"}, "unique_key"),
    ({"queue": ""}, "queue"),
    ({"queue": 3}, "queue"),
    ({"headers": {"a": 1}}, "headers"),
    ({"headers": {1: "a"}}, "headers"),
    ({"headers": ["a"]}, "headers"),
    ({"delay": 1, "eta": 5.0}, "not both"),
]


def _hive() -> Hive:
    m = Module("v")

    @m.task("v:t")
    async def t(p: dict[str, Any]) -> None:
        return None

    hive = Hive("memory://")
    hive.include(m)
    return hive


async def _stored(hive: Hive) -> int:
    return sum(q.ready + q.delayed for q in await hive.backend.stats())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS)
async def test_bad_option_is_refused_naming_it_and_nothing_is_written(
    options: dict[str, Any], named: str
) -> None:
    hive = _hive()
    with pytest.raises(ValidationError, match=named):
        await hive.enqueue("v:t", {"n": 1}, **options)
    assert await _stored(hive) == 0
    await hive.enqueue("v:t", {"n": 2})  # the queue still takes good work
    assert await _stored(hive) == 1


async def test_good_options_are_accepted() -> None:
    hive = _hive()
    when = datetime.now(UTC) + timedelta(hours=1)
    env = hive.build("v:t", {}, eta=when, priority=-(2**31), max_retries=0, timeout=0,
                     headers={"h": "v"}, idempotency_key="k", queue="q")
    assert env is not None
    assert env.eta == pytest.approx(when.timestamp())
    assert hive.build("v:t", {}, priority=2**31 - 1, delay=0.5) is not None


async def test_empty_task_name_is_refused() -> None:
    hive = _hive()
    with pytest.raises(ValidationError, match="task name"):
        await hive.enqueue("", {}, queue="default")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [({"s": "\ud800"}, "not valid text"), ({"o": object()}, "object"),
     ({"n": 2**64}, "out of range"), ([-(2**63) - 1], "out of range")],
)
@pytest.mark.parametrize("declared", [True, False])
async def test_unencodable_payload_is_one_workhive_error(
    payload: Any, detail: str, declared: bool
) -> None:
    hive = _hive()
    kwargs = {} if declared else {"queue": "elsewhere"}
    name = "v:t" if declared else "other:t"
    with pytest.raises(SerializationError, match=f"cannot serialise payload.*{detail}"):
        await hive.enqueue(name, payload, **kwargs)
    with pytest.raises(SerializationError):
        await hive.publish("ev", payload)
    assert await _stored(hive) == 0


def test_extension_type_in_a_body_is_malformed() -> None:
    env = make_envelope("v:t", {"x": 1})
    ext = msgspec.msgpack.encode({"x": msgspec.msgpack.Ext(5, b"z")})
    body = encode(env).replace(msgspec.msgpack.encode({"x": 1}), ext)
    with pytest.raises(SerializationError, match="extension type 5"):
        decode(body)


async def test_extension_type_through_a_dict_hint_is_dead_lettered_without_retry() -> None:
    m, got = Module("x"), []

    @m.task("x:t", max_retries=5)
    async def t(p: dict[str, Any]) -> None:
        got.append(p)

    hive = Hive("memory://")
    hive.include(m)
    good = make_envelope("x:t", {"ok": 1}, queue="default")
    bad = make_envelope("x:t", {"x": 0}, queue="default")
    body = encode(bad).replace(msgspec.msgpack.encode({"x": 0}),
                               msgspec.msgpack.encode({"x": msgspec.msgpack.Ext(1, b"ab")}))
    await hive.enqueue_many([good, bad])
    backend: Any = hive.backend
    for item in backend._ready["default"]:  # store the crafted bytes, as a forger would
        if item.id == bad.id:
            item.body = body
    await run_until_idle(hive)
    assert got == [{"ok": 1}]
    (letter,) = await backend.dead_letters()
    assert letter.id == bad.id and "extension type 1" in letter.reason
    assert (await backend.stats())[0].failed == 1  # dead at once, never retried
