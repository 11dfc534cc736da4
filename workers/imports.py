"""The CRM import's actor: a thin caller of api.transfers.importer."""

import dramatiq

from api.transfers import importer


# A failure marks the job FAILED; Dramatiq's retries go on from the last committed batch.
@dramatiq.actor(
    queue_name="imports",
    max_retries=3,
    min_backoff=15_000,
    max_backoff=300_000,
    time_limit=3_600_000,
)
async def run_import(job_id: int) -> None:
    """Carry out one recorded ImportJob; a job already finished is left alone."""
    await importer.execute_import(job_id)
