"""Pull requests and receipts: how a worker takes messages from a durable consumer.

Why workhive sends its own pull requests instead of nats-py's ``fetch``: a worker asks several
consumers in turn (priority bands, then event groups) and must not leave a lingering pull
request behind on any of them, or the server hands the next message to a request nobody reads
until it expires. A ``no_wait`` pull is answered at once (messages, then a ``404``/``408``
status), so nothing lingers; waiting is done elsewhere (``NatsBackend.fetch``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


def status_of(msg: Msg) -> str | None:
    """The status code of a JetStream control message (``404``, ``408``...), else None."""
    if msg.data or not msg.headers:
        return None
    return msg.headers.get("Status")


class Puller:
    """``no_wait`` pull requests on one consumer through one private inbox.

    Messages that arrive after their request was answered (a reconnect replays buffered
    requests) stay in the inbox queue and go out with the next pull; their lease is counted from
    when they arrived (``arrived``), never from a later read.
    """

    def __init__(self, nc: Client, api_prefix: str, stream: str, consumer: str,
                 ack_wait: float) -> None:
        self.nc = nc
        self.consumer = consumer
        self.ack_wait = ack_wait
        self.subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = nc.new_inbox()
        self.queue: collections.deque[tuple[float, Msg]] = collections.deque()
        self.arrived = asyncio.Event()
        self.lock = asyncio.Lock()
        self.sub: Subscription | None = None

    async def start(self) -> None:
        async def on_msg(msg: Msg) -> None:
            self.queue.append((time.time(), msg))
            self.arrived.set()

        self.sub = await self.nc.subscribe(self.inbox, cb=on_msg)

    async def stop(self) -> None:
        if self.sub is not None:
            sub, self.sub = self.sub, None
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def pull(self, batch: int, timeout: float) -> list[tuple[float, Msg]]:
        """Up to ``batch`` (arrival time, message) pairs available now."""
        out: list[tuple[float, Msg]] = []
        async with self.lock:
            self._take(out, batch)
            if len(out) >= batch:
                return out
            request = {"batch": batch - len(out), "no_wait": True}
            self.arrived.clear()
            await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)
            deadline = time.monotonic() + timeout
            while len(out) < batch:
                if self._take(out, batch):
                    break  # a status: the server has nothing more for this request
                if len(out) >= batch:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if out:
                        break
                    raise nats.errors.TimeoutError
                try:
                    await asyncio.wait_for(self.arrived.wait(), remaining)
                except TimeoutError:
                    continue
                self.arrived.clear()
        return out

    def _take(self, out: list[tuple[float, Msg]], batch: int) -> bool:
        """Move queued messages to ``out``; True when a status message ended the request."""
        while self.queue and len(out) < batch:
            arrived, msg = self.queue.popleft()
            if status_of(msg) is not None:
                return True
            out.append((arrived, msg))
        return False


class Lease:
    """A delivery's receipt: the message, and what this client has done with it so far (a
    settle retried after a failure skips the steps already done)."""

    __slots__ = ("ack_wait", "acked", "deadline", "msg", "published")

    def __init__(self, msg: Msg, deadline: float, ack_wait: float) -> None:
        self.msg, self.deadline, self.ack_wait = msg, deadline, ack_wait
        self.published = self.acked = False
