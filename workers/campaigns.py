"""Campaign actors: thin callers of api.campaigns.dispatch and api.campaigns.sender."""

import dramatiq

from api.campaigns import dispatch, sender


# Redelivery is safe: only the run that finds the campaign SCHEDULED and due resolves it.
@dramatiq.actor(queue_name="campaigns", max_retries=5, min_backoff=5_000, time_limit=600_000)
async def dispatch_campaign(campaign_id: int) -> None:
    """Start a campaign that is due: resolve its recipients and enqueue its batches."""
    await dispatch.dispatch(campaign_id)


# Temporary mail failures raise dramatiq.Retry with the batch's own backoff; when retries run
# out, the batch row is still QUEUED and the clock hands it over again.
@dramatiq.actor(queue_name="campaigns", max_retries=20, min_backoff=15_000, time_limit=900_000)
async def send_batch(batch_id: int) -> None:
    """Send one batch of a campaign over one mail connection."""
    await sender.send_batch(batch_id)
