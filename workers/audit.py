"""The status audit's actor: a thin caller of api.audit.service."""

import dramatiq

from api.audit import service


@dramatiq.actor(queue_name="audit", max_retries=3, min_backoff=10_000, time_limit=60 * 60 * 1000)
async def run_status_audit(run_id: int) -> None:
    """Carry out one recorded AuditRun; a run already finished is left alone."""
    await service.execute_run(run_id)
