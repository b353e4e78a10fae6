"""Shared pieces of the stored-structure fuzz tests (redis, sqlite, postgres).

Each backend's test writes a little of everything (ready, delayed, prioritised, unique,
idempotent, leased, dead), overwrites one stored field with one garbage value, and then calls
:func:`assert_queue_flows`: good messages enqueued afterwards must still be fetched and settled
(ack, retry, dead, release) and none of them may go missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from workhive._envelope import Envelope, decode, encode, make_envelope
from workhive.backend import Settlement
from workhive.errors import SerializationError

#: what "garbage" means for one stored value: empty, wrong type (text where a number goes, a
#: number where text goes), separator-only, huge, and bytes that are not UTF-8.
GARBAGE: dict[str, bytes] = {
    "empty": b"",
    "text": b"not-a-number",
    "number": b"-1.5e308",
    "separator": b"|",
    "huge": b"9" * 20_000,
    "non-utf8": b"\xff\xfe\x80bad\x00",
}


def seed_envelopes(queue: str, now: float) -> dict[str, Envelope]:
    """One message of each kind the backend stores differently."""
    return {
        "plain": make_envelope("fz", {"k": "plain"}, queue=queue),
        "prio": make_envelope("fz", {"k": "prio"}, queue=queue, priority=5,
                              unique_key="fz:u"),
        "delayed": make_envelope("fz", {"k": "delayed"}, queue=queue, eta=now + 10,
                                 idempotency_key="fz:i"),
        "leased": make_envelope("fz", {"k": "leased"}, queue=queue, priority=-3),
        "dead": make_envelope("fz", {"k": "dead"}, queue=queue),
    }


async def seed(backend: Any, queue: str, now: float) -> dict[str, Envelope]:
    """Store the seed messages; lease 'leased' and 'dead', dead-letter 'dead'."""
    envs = seed_envelopes(queue, now)
    await backend.enqueue([envs["leased"], envs["dead"]])
    got = await backend.fetch([queue], 10, lease=5, wait=0)
    assert len(got) == 2
    for d in got:
        if decode(d.body).id == envs["dead"].id:
            await backend.settle([Settlement(d, "dead", reason="seeded")])
    await backend.enqueue([envs["plain"], envs["prio"], envs["delayed"]])
    return envs


async def assert_queue_flows(
    backend: Any, queue: str, advance: Callable[[], Awaitable[None]] | None = None,
    n: int = 4,
) -> set[str]:
    """Enqueue ``n`` good messages and settle them through every action; return seen ids.

    Anything else fetched (seed messages, corrupt bodies) is settled as the worker would:
    undecodable bytes go dead, decodable ones are acked.
    """
    if advance is not None:
        await advance()
    good = [make_envelope("fz", {"good": i}, queue=queue) for i in range(n)]
    results = await backend.enqueue(good)
    assert [r.id for r in results] == [e.id for e in good]
    assert not any(r.duplicate for r in results)
    actions = {good[0].id: "retry", good[1].id: "dead", good[2].id: "release"}
    acked: set[str] = set()
    seen: set[str] = set()
    for _ in range(40):
        deliveries = await backend.fetch([queue], 50, lease=30, wait=0)
        if not deliveries and {e.id for e in good} - {good[1].id} <= acked:
            break
        out = []
        for d in deliveries:
            try:
                env = decode(d.body)
            except SerializationError as exc:
                out.append(Settlement(d, "dead", reason=str(exc)))
                continue
            seen.add(env.id)
            action = actions.pop(env.id, "ack")
            if env.id in acked:
                action = "ack"
            if action == "retry":
                nxt = encode(env.next_attempt(_record()))
                out.append(Settlement(d, "retry", body=nxt, eta=0.0, envelope=env))
            else:
                out.append(Settlement(d, action, reason="fuzz", envelope=env))  # type: ignore[arg-type]
            if action == "ack":
                acked.add(env.id)
        await backend.settle(out)
    missing = {e.id for e in good} - {good[1].id} - acked
    assert not missing, f"good messages lost: {missing}"
    dead_ids = {d.id for d in await backend.dead_letters(limit=1000)}
    assert good[1].id in dead_ids
    await backend.stats()
    await backend.fetch([queue], 1, lease=30, wait=0.01)  # the idle path (next-deadline read)
    return seen


def _record() -> Any:
    from workhive._envelope import AttemptRecord

    return AttemptRecord(1, 0.0, "fuzz")
