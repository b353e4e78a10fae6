"""One worker process for the benchmark: drain a pre-filled queue, or serve latency probes.

Prints one JSON line: ``{"drain_per_s": ..., "rss_mb": ..., "cpu_s": ...}``; ``cpu_s`` is the
CPU time (user + system) the process spent from the start of the run to its end, which shared,
busy hosts disturb far less than the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from benchmarks import _app
from benchmarks._app import make_hive


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ``getrusage().ru_maxrss``: Linux carries that across
    ``exec`` from the forking parent, so a worker spawned by a big benchmark process would be
    charged for the parent's memory. ``VmHWM`` belongs to this process image alone."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> None:
    hive = make_hive(args.url, args.prefix)
    await hive.open()
    worker = hive.worker(concurrency=args.concurrency, cron=False)
    started, cpu_started = time.perf_counter(), time.process_time()
    if args.mode == "drain":
        # time to the last completion, not including the idle check that ends the run
        running = asyncio.create_task(worker.run(until_idle=True))
        while worker.processed < args.n and not running.done():  # noqa: ASYNC110 - a timer
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        await running
    else:
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(args.seconds)
        worker.stop()
        await task
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    await hive.close()
    for work in _app._work:  # the counter stays for the benchmark to read
        await work.aclose(delete=False)
    rss_mb = peak_rss_mb()
    print(json.dumps({"drain_per_s": worker.processed / elapsed, "processed": worker.processed,
                      "rss_mb": rss_mb, "cpu_s": cpu}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["drain", "serve"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--n", type=int, default=0, help="drain: messages expected")
    asyncio.run(main(parser.parse_args()))
