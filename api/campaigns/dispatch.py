"""Starting a send (R14, R15): resolve the recipients when sending starts, in SQL.

One transaction claims the campaign (SCHEDULED → SENDING, so a second delivery of the message
finds nothing to do), writes one delivery row for every contact the audience holds (a
recipient, or a skip with its reason) with one INSERT … SELECT, and cuts the recipients into
batches of CAMPAIGN_BATCH_SIZE with another. The batches are then handed to the broker; what
it loses, the clock hands over again (api.campaigns.service.resend_lost).

Skips, in order of precedence: ARCHIVED, INACTIVE, UNSUBSCRIBED, NO_EMAIL (none or invalid),
BOUNCED (a 5xx earlier, see Suppression), then DUPLICATE (an address already taken by a
contact with a smaller id: one copy per address).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tortoise import connections
from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from api.audiences import service as audiences
from api.audiences.models import Audience, SendAccount
from api.campaigns.models import (
    BatchState,
    Campaign,
    CampaignBatch,
    CampaignState,
    SenderMode,
)
from api.core import events
from api.core.database import execute
from api.core.settings import get_settings
from api.core.validation import invalid_email_sql

log = logging.getLogger("api.campaigns.dispatch")

_SKIP = f"""CASE
    WHEN m.archived THEN 'ARCHIVED'
    WHEN m.status = 'INACTIVE' THEN 'INACTIVE'
    WHEN m.unsubscribed THEN 'UNSUBSCRIBED'
    WHEN m.email IS NULL OR m.email = '' OR {invalid_email_sql("m.email")} THEN 'NO_EMAIL'
    WHEN lower(m.email) IN (SELECT address FROM suppression WHERE office_id = {{office}})
        THEN 'BOUNCED'
END"""

_RESOLVE = f"""
INSERT INTO delivery
    (office_id, campaign_id, contact_id, email, sender_id, state, skip_reason, attempts, logged)
SELECT {{office}}, {{campaign}}, r.id, r.email, {{sender}},
    CASE WHEN r.skip IS NULL AND r.n = 1 THEN 'PENDING' ELSE 'SKIPPED' END,
    CASE WHEN r.skip IS NOT NULL THEN r.skip WHEN r.n > 1 THEN 'DUPLICATE' END,
    0, FALSE
FROM (
    SELECT s.id, s.email, s.owner_id, s.skip, ROW_NUMBER() OVER (
        PARTITION BY CASE WHEN s.skip IS NULL THEN lower(s.email) END ORDER BY s.id
    ) AS n
    FROM (SELECT m.id, m.email, m.owner_id, {_SKIP} AS skip FROM ({{members}}) AS m) AS s
) AS r
"""

_BATCHES = """
INSERT INTO campaign_batch
    (campaign_id, seq, first_delivery_id, last_delivery_id, size, state, attempts)
SELECT {campaign}, b.seq, MIN(b.id), MAX(b.id), COUNT(*), 'QUEUED', 0
FROM (
    SELECT id, (ROW_NUMBER() OVER (ORDER BY id) - 1) / {size} AS seq
    FROM delivery WHERE campaign_id = {campaign} AND state = 'PENDING'
) AS b
GROUP BY b.seq
"""


async def dispatch(campaign_id: int, *, now: datetime | None = None) -> None:
    """Start the campaign if it is due; hand its unsent batches to the broker. Safe to run
    any number of times: only the first run that finds it SCHEDULED and due resolves it."""
    from api.campaigns import sender, service

    now = now or datetime.now(UTC)
    async with in_transaction():
        started = await execute(
            "UPDATE campaign SET state = 'SENDING', started_at = $2, updated_at = $2"
            " WHERE id = $1 AND state = 'SCHEDULED' AND scheduled_at <= $2",
            campaign_id,
            now,
        )
        if started:
            campaign = await Campaign.get(id=campaign_id)
            await _resolve(campaign)
            await _cut_batches(campaign)
    if started:
        await events.publish("Campaign", campaign_id)
    campaign = await Campaign.get_or_none(id=campaign_id).only("id", "state")
    if campaign is None or campaign.state != CampaignState.SENDING:
        return
    unsent = await CampaignBatch.filter(
        campaign_id=campaign_id, state=BatchState.QUEUED, enqueued_at__isnull=True
    ).values_list("id", flat=True)
    await service.enqueue_batches(unsent, now=now)
    if started:
        log.info("campaign %s started: %d batch(es)", campaign_id, len(unsent))
    # A campaign without recipients is done at once.
    await sender.finish_if_done(campaign_id)


async def _resolve(campaign: Campaign) -> None:
    audience = await Audience.get(id=campaign.audience_id)
    members = audiences.members(audience, include_archived=True)
    if campaign.account == SendAccount.USER:
        # R14: a user's campaign reaches only the contacts its sender owns.
        members = members.filter(owner_id=campaign.sender_id)
    if campaign.excluded_audience_ids:
        for excluded in await Audience.filter(
            id__in=campaign.excluded_audience_ids, office_id=campaign.office_id
        ):
            members = members.exclude(id__in=Subquery(audiences.members(excluded).values("id")))
    query = members.values("id", "email", "owner_id", "status", "archived", "unsubscribed")
    query.sql()  # builds the query, so its parameterised form can be read
    members_sql, params = query.query.get_parameterized_sql()
    if campaign.account == SendAccount.USER:
        sender = str(int(campaign.sender_id))
    elif campaign.sender_mode == SenderMode.OWNER_OR_OFFICE:
        sender = "r.owner_id"  # R6: an owner is always an active user
    else:
        sender = "NULL"
    sql = _RESOLVE.format(
        office=int(campaign.office_id),
        campaign=int(campaign.id),
        sender=sender,
        members=members_sql,
    )
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        # The window that finds duplicate addresses sorts every member: in memory, not on disk.
        await connection.execute_script("SET LOCAL work_mem = '64MB'")
    await connection.execute_query(sql, params)


async def _cut_batches(campaign: Campaign) -> None:
    size = int(get_settings().campaign_batch_size)
    await execute(_BATCHES.format(campaign=int(campaign.id), size=size))
