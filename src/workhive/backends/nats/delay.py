"""Delayed messages on servers without message schedules (before 2.12, or ``schedules=off``):
kept in their own stream and forwarded to the work subject when due. With schedules
(:mod:`.schedule`) a worker runs a forwarder only while this stream still holds tasks (left
from before a server upgrade, or published by a process with ``schedules=off``).

Why not ``nak(delay=...)`` on the work consumer: a nak'd message stays *pending* and counts
against ``max_ack_pending``, so enough delayed retries freeze the consumer for every message
behind them (reproduced on 2.9 and 2.15). Here a delayed message is published to
``P.d.q.<queue>.<band>`` in the ``P_DELAY`` stream with a ``WH-Due`` header (unix seconds). Every
worker runs a forwarder on the one shared ``forward`` consumer of that stream:

* due (by this host's clock): publish the bytes to ``P.q.<queue>.<band>`` with the same
  ``Nats-Msg-Id`` it was delayed with (``<id>:<attempt>:<crc>``), then ack. A forward repeated
  after a crash between the two steps is dropped by the task stream's duplicate window;
* not due: ``nak(delay=remaining)``; the server hands it back at its due time, to whichever
  forwarder is pulling, which checks again (never early).

The forward consumer has no ``max_ack_pending`` limit, so one far-future message cannot hold
back a nearer one. Precision is the server's nak timer plus one publish: tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time

import nats.errors
from nats.aio.msg import Msg

from workhive.backends.nats.connection import NatsConnection, logger
from workhive.backends.nats.pull import Puller, status_of

DUE = "WH-Due"
_BATCH = 256
_EXPIRES = 5.0  # seconds a lingering forward pull request lives


class Forwarder:
    """Forward due messages of the ``P_DELAY`` stream; one per opened backend that fetches."""

    def __init__(self, conn: NatsConnection) -> None:
        self.conn = conn
        self.names = conn.names
        self.puller = Puller(conn.nc, "$JS.API", self.names.delay, "forward", 5.0)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="workhive-nats-forwarder")

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.puller.stop()

    async def _run(self) -> None:
        """Keep one lingering pull request open and handle each message as it arrives."""
        p = self.puller
        await p.start()
        while True:
            try:
                await self._one_request(p)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: wait for the client to reconnect
                logger.warning("nats delay forwarder: %s", self.conn.settings.redact(str(exc)))
                await asyncio.sleep(1.0)

    async def _one_request(self, p: Puller) -> None:
        nc = self.conn.nc
        if not nc.is_connected:
            await asyncio.sleep(0.5)
            return
        request = {"batch": _BATCH, "expires": int(_EXPIRES * 1e9)}
        p.arrived.clear()
        await nc.publish(p.subject, json.dumps(request).encode(), reply=p.inbox)
        deadline = time.monotonic() + _EXPIRES + 1.0
        received = 0
        while received < _BATCH and time.monotonic() < deadline:
            if not p.queue:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await p.arrived.wait()
                except TimeoutError:
                    return
                p.arrived.clear()
                continue
            _, msg = p.queue.popleft()
            if status_of(msg) is not None:
                return  # expired / ended: issue the next request
            received += 1
            await self._handle(msg)

    async def _handle(self, msg: Msg) -> None:
        due = float((msg.headers or {}).get(DUE, "0"))
        remaining = due - time.time()
        if remaining > 0:
            nak = json.dumps({"delay": int(remaining * 1e9) + 1})
            await self.conn.nc.publish(msg.reply, f"-NAK {nak}".encode())
            return
        headers = {"Nats-Msg-Id": (msg.headers or {}).get("Nats-Msg-Id", "")}
        if not headers["Nats-Msg-Id"]:
            del headers["Nats-Msg-Id"]
        try:
            await self.conn.js.publish(self.names.target_of(msg.subject), msg.data,
                                       headers=headers)
            await self.conn.nc.request(msg.reply, b"",
                                       timeout=self.conn.settings.request_timeout)
        except (nats.errors.Error, TimeoutError) as exc:
            # not acked: it comes back after ack_wait and is forwarded again (deduplicated)
            logger.warning("nats delay forwarder could not forward: %s", exc)
