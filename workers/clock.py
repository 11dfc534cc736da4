"""The clock: an APScheduler that only enqueues actors. Every minute it records and enqueues
the nightly audits that are due (api.audit.schedule); `crm clock` runs it alone, `crm serve`
inside the API when REDIS_URL is unset."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("workers.clock")


async def tick() -> None:
    from api.audit.schedule import enqueue_due

    try:
        for run in await enqueue_due():
            log.info("nightly audit %s of office %s enqueued", run.night, run.office_id)
    except Exception:  # the next tick tries again
        log.exception("clock tick failed")


def build_scheduler() -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    # The first tick runs at start: a clock that was down catches up at once.
    scheduler.add_job(
        tick, "interval", minutes=1, id="nightly-audits", next_run_time=datetime.now(UTC)
    )
    return scheduler


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
