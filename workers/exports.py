"""The CSV export's actor: a thin caller of api.transfers.exporter."""

import dramatiq

from api.transfers import exporter


# A failure marks the job FAILED; Dramatiq's retries carry it out again (a DONE job is skipped).
@dramatiq.actor(
    queue_name="exports",
    max_retries=3,
    min_backoff=15_000,
    max_backoff=300_000,
    time_limit=3_600_000,
)
async def export_contacts(job_id: int) -> None:
    """Write one recorded ExportJob's CSV; a job already finished is left alone."""
    await exporter.execute_export(job_id)
