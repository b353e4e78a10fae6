"""Pull requests, receipts and confirmed acks: how a worker takes messages from a durable
consumer and gives them back.

Why workhive sends its own pull requests instead of nats-py's ``fetch``: a worker asks several
consumers in turn (priority bands, then event groups) and must not leave a lingering pull
request behind on any of them, or the server hands the next message to a request nobody reads
until it expires. A ``no_wait`` pull is answered at once (messages, then a ``404``/``408``
status), so nothing lingers; waiting is done elsewhere (``NatsBackend.fetch``).

Why :class:`Acker` instead of nats-py's ``ack_sync`` (one ``request`` per message): a request
costs nats-py a future, a timer and a fresh inbox token, about half the CPU of acking a
message. The guarantee is the same: the acks of one settle batch go out with one reply subject
``<inbox>.<batch>`` (the server answers each ack there once it has processed it), and the call
returns only when every one was answered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import time
from collections.abc import Sequence

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
                    async with asyncio.timeout(remaining):
                        await self.arrived.wait()
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


class Acker:
    """Confirmed acks for many messages at a time, through one wildcard subscription."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.inbox = nc.new_inbox()
        self.sub: Subscription | None = None
        self._batches = itertools.count()
        self._waiting: dict[str, tuple[list[int], asyncio.Future[None]]] = {}

    async def ack(self, replies: Sequence[str], timeout: float) -> None:
        """Ack every delivery whose reply subject is in ``replies``; raise nats-py's
        ``TimeoutError`` unless the server confirmed all of them within ``timeout``."""
        if not replies:
            return
        if self.sub is None:
            self.sub = await self.nc.subscribe(f"{self.inbox}.*", cb=self._on_answer)
        batch = str(next(self._batches))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[batch] = ([len(replies)], done)
        answer_to = f"{self.inbox}.{batch}"
        try:
            for reply in replies:
                await self.nc.publish(reply, b"", reply=answer_to)
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise nats.errors.TimeoutError from None
        finally:
            self._waiting.pop(batch, None)

    async def _on_answer(self, msg: Msg) -> None:
        entry = self._waiting.get(msg.subject[len(self.inbox) + 1:])
        if entry is None or entry[1].done():
            return  # a batch that gave up already
        left, done = entry
        if status_of(msg) == "503":  # no consumer behind the reply subject any more
            done.set_exception(nats.errors.NoRespondersError())
            return
        left[0] -= 1
        if left[0] <= 0:
            done.set_result(None)

    async def stop(self) -> None:
        if self.sub is not None:
            sub, self.sub = self.sub, None
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
