"""The clock: an APScheduler that only enqueues actors. Every minute it records and enqueues
the nightly audits that are due (api.audit.schedule), starts scheduled campaigns, and sends
again background jobs and campaign batches whose message was lost; `crm clock` runs it
alone, `crm serve` inside the API when REDIS_URL is unset."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("workers.clock")


# Set after the first tick of this process (the catch-up after a start).
_ticked = asyncio.Event()


async def tick() -> None:
    """Enqueue the nightly audits that are due, and send again jobs whose message was lost."""
    from api.audit.schedule import enqueue_due
    from api.campaigns import service as campaigns
    from api.transfers import exporter, importer

    for step in (enqueue_due, importer.resend_lost, exporter.resend_lost, campaigns.resend_lost):
        try:
            done = await step()
        except Exception:  # one failing step must not stop the others; the next tick retries
            log.exception("clock step %s failed", step.__name__)
            continue
        if step is enqueue_due:
            for run in done:
                log.info("nightly audit of office %s for %s enqueued", run.office_id, run.night)
    if not _ticked.is_set():
        _ticked.set()
        log.info("first tick done: due audits caught up")


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
