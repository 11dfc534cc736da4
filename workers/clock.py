"""The clock: an APScheduler that only enqueues actors. Its jobs (the nightly audits)
arrive with the audit work; `crm clock` runs it alone, `crm serve` inside the API
when REDIS_URL is unset."""

from __future__ import annotations

import asyncio
import logging
import signal

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("workers.clock")


def build_scheduler() -> AsyncIOScheduler:
    return AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )


async def run_forever() -> None:
    """The `clock` process: start the scheduler and wait for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheduler = build_scheduler()
    scheduler.start()
    log.info("clock started with %d job(s)", len(scheduler.get_jobs()))
    await stop.wait()
    scheduler.shutdown(wait=False)
    log.info("clock stopped")
