"""fetch(wait=...): wakes on local enqueues, other connections' commits and due etas; a
cancelled fetch gives its claim back. No timing thresholds: only what wakes, not how fast."""

from __future__ import annotations

import asyncio
import time

import pytest

from workhive._envelope import decode, make_envelope
from workhive.backend import Settlement
from workhive.backends.sqlite import SQLiteBackend, queue

pytestmark = pytest.mark.sqlite

LONG = 30.0  # a wait that only ends early because something woke the fetch


async def test_wait_times_out_empty(real_backend: SQLiteBackend) -> None:
    assert await real_backend.fetch(["q"], 5, lease=10, wait=0.05) == []


async def test_local_enqueue_wakes_a_waiting_fetch(real_backend: SQLiteBackend) -> None:
    fetching = asyncio.create_task(real_backend.fetch(["q"], 5, lease=10, wait=LONG))
    await asyncio.sleep(0.05)
    await real_backend.enqueue([make_envelope("t", "hi", queue="q")])
    got = await asyncio.wait_for(fetching, LONG / 2)
    assert [decode(d.body).payload for d in got] == ["hi"]


async def test_another_connection_wakes_a_waiting_fetch(
    real_backend: SQLiteBackend, db_url: str
) -> None:
    fetching = asyncio.create_task(real_backend.fetch(["q"], 5, lease=10, wait=LONG))
    await asyncio.sleep(0.05)
    async with SQLiteBackend.from_url(db_url) as producer:
        await producer.enqueue([make_envelope("t", "remote", queue="q")])
    got = await asyncio.wait_for(fetching, LONG / 2)
    assert [decode(d.body).payload for d in got] == ["remote"]


async def test_due_eta_wakes_a_waiting_fetch(real_backend: SQLiteBackend) -> None:
    await real_backend.enqueue([make_envelope("t", "soon", queue="q", eta=time.time() + 0.1)])
    got = await asyncio.wait_for(real_backend.fetch(["q"], 5, lease=10, wait=LONG), LONG / 2)
    assert [decode(d.body).payload for d in got] == ["soon"]


async def test_retry_in_this_process_wakes_another_fetch(real_backend: SQLiteBackend) -> None:
    await real_backend.enqueue([make_envelope("t", "again", queue="q")])
    [d] = await real_backend.fetch(["q"], 5, lease=10, wait=0)
    fetching = asyncio.create_task(real_backend.fetch(["q"], 5, lease=10, wait=LONG))
    await asyncio.sleep(0.05)
    await real_backend.settle([Settlement(d, "retry", eta=0.0)])
    assert len(await asyncio.wait_for(fetching, LONG / 2)) == 1


async def test_cancelling_a_waiting_fetch_is_clean(real_backend: SQLiteBackend) -> None:
    fetching = asyncio.create_task(real_backend.fetch(["q"], 5, lease=10, wait=LONG))
    await asyncio.sleep(0.02)
    fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetching
    await real_backend.enqueue([make_envelope("t", "x", queue="q")])
    assert len(await real_backend.fetch(["q"], 5, lease=10, wait=0)) == 1


async def test_a_claim_for_a_cancelled_fetch_is_released(real_backend: SQLiteBackend) -> None:
    """The store-thread half of the hand-off: rows claimed after cancellation go straight back."""
    await real_backend.enqueue([make_envelope("t", i, queue="q") for i in range(3)])
    thread = await real_backend._sqlite.ready()
    handoff = queue.Handoff()
    handoff.cancelled = True
    got, _, _ = await thread.call(queue.claim, time.time(), ["q"], 10, 10.0, handoff)
    assert got == []
    assert len(await real_backend.fetch(["q"], 10, lease=10, wait=0)) == 3
