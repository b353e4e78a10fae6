"""Run the summary worker: ``python -m examples.summarizer --log URL --api URL``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from examples.summarizer.worker import SummaryClient, build_worker

from workhive.commandlog import App, open_log


async def main(log_url: str, api_url: str) -> None:
    app = App(open_log(log_url))
    app.register_worker(build_worker(SummaryClient(api_url)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    await stop.wait()
    await app.stop(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", default="sqlite:///summarizer.db")
    parser.add_argument("--api", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(args.log, args.api))
