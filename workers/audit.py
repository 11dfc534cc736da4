"""The status audit's actor: a thin caller of api.audit.service."""

import dramatiq

from api.audit import service


# A failure marks the run FAILED; Dramatiq's retries carry it out again (a DONE run is skipped).
@dramatiq.actor(
    queue_name="audit", max_retries=3, min_backoff=15_000, max_backoff=300_000, time_limit=3_600_000
)
async def run_status_audit(run_id: int) -> None:
    """Carry out one recorded AuditRun; a run already finished is left alone."""
    await service.execute_run(run_id)
