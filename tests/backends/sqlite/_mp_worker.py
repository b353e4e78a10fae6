"""A minimal worker process for test_multiprocess: fetch, record, retry some, ack the rest.

Usage: ``python _mp_worker.py DB_PATH OUT_FILE GO_FILE``. Creates OUT_FILE.ready once imported
and waits for GO_FILE, so all workers start claiming together; then drains until the queue
stays empty. Every delivery is written to OUT_FILE (JSON): message id, attempt, pid,
fetch-returned and settle-called times, action.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from workhive._envelope import AttemptRecord, decode, encode
from workhive.backend import Settlement
from workhive.backends.sqlite import SQLiteBackend


async def drain(path: str) -> list[list[Any]]:
    records: list[list[Any]] = []
    async with SQLiteBackend.from_url(f"sqlite:///{path}?busy_timeout=30") as backend:
        empty = 0
        while empty < 3:
            got = await backend.fetch(["mp"], 25, lease=120.0, wait=0.2)
            if not got:
                empty += 1
                continue
            empty = 0
            fetched = time.time()
            settlements = []
            for d in got:
                env = decode(d.body)
                if env.payload % 10 == 0 and env.attempt == 0:
                    nxt = env.next_attempt(AttemptRecord(0, fetched, "first try fails"))
                    settlements.append(Settlement(d, "retry", body=encode(nxt), eta=0.0))
                else:
                    settlements.append(Settlement(d, "ack"))
                records.append([env.id, env.attempt, os.getpid(), fetched, 0.0,
                                settlements[-1].action])
            await asyncio.sleep(0.001)  # pretend to work; lets the processes interleave
            # [fetch returned, settle called] lies inside the real hold (claim commit to settle
            # commit), so if real holds never overlap, neither do these.
            settling = time.time()
            for rec in records[-len(got):]:
                rec[4] = settling
            await backend.settle(settlements)
    return records


def main(path: str, out: str, go: str) -> None:
    Path(f"{out}.ready").touch()
    while not os.path.exists(go):
        time.sleep(0.005)
    records = asyncio.run(drain(path))
    Path(out).write_text(json.dumps(records))


if __name__ == "__main__":
    main(*sys.argv[1:4])
