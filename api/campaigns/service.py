"""Campaigns (R14–R17): creating, changing, scheduling, cancelling and reading them.

Sending is carried out by the workers: api.campaigns.dispatch resolves the recipients when
sending starts and cuts them into batches, api.campaigns.sender sends a batch. The database
is the outbox: a campaign due to start and a batch not yet done are rows, and `resend_lost`
(the clock) hands again to the broker whatever it lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from api.audiences import service as audiences
from api.audiences.models import Audience, SendAccount
from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction
from api.campaigns import templates
from api.campaigns.models import (
    BatchState,
    Campaign,
    CampaignBatch,
    CampaignState,
    DeliveryState,
    SenderMode,
)
from api.core import events, ids, policy, validation
from api.core.database import execute, fetch
from api.core.errors import BadInput, Conflict, Forbidden, NotFound
from api.core.pagination import LazyPage
from api.users.models import User

log = logging.getLogger("api.campaigns")

MAX_NAME = 200
MAX_EXCLUDED = 20
# How far ahead a send may be scheduled, and how far in the past `at` may lie (clock skew).
MAX_SCHEDULE_AHEAD = timedelta(days=366)
PAST_TOLERANCE = timedelta(minutes=5)
# The clock hands a due campaign or a queued batch to the broker again when its message has
# not been taken this long after it was sent (lost with a Redis restart, say).
RESEND_AFTER = timedelta(minutes=2)
# Sends due within this are handed to the broker at once, with a delay; later ones by the clock.
NEAR = timedelta(minutes=10)

# States a campaign can be cancelled in; SENDING stops what is not sent yet.
CANCELLABLE = (CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.SENDING)


@dataclass
class CampaignDraft:
    """What createCampaign and updateCampaign carry; None leaves a value as it is."""

    name: str | None = None
    subject: str | None = None
    body_html: str | None = None
    audience_id: int | None = None
    excluded_audience_ids: list[int] | None = None
    sender_mode: SenderMode | None = None


# --- reading -------------------------------------------------------------------------------


def _visible(actor: User, campaign: Campaign | None) -> Campaign:
    if campaign is None or not policy.may_see_account_item(
        actor, campaign.office_id, campaign.account, campaign.sender_id
    ):
        raise NotFound("Campaign")
    return campaign


async def get_visible(actor: User, campaign_id: int) -> Campaign:
    return _visible(actor, await Campaign.filter(id=campaign_id).first())


class CampaignPage(LazyPage[Campaign]):
    """Newest first, keyset on id."""

    def __init__(self, actor: User, *, first: int, after: int | None) -> None:
        super().__init__(first=first, after=after)
        self._query = Campaign.filter(policy.account_items_scope(actor, holder="sender_id"))

    async def fetch(self) -> list[Campaign]:
        page = self._query.filter(id__lt=self.after) if self.after is not None else self._query
        return await page.order_by("-id").limit(self.first + 1)

    async def count(self) -> int:
        return await self._query.count()


def list_campaigns(actor: User, *, first: int, after: int | None) -> CampaignPage:
    return CampaignPage(actor, first=first, after=after)


# --- changing ------------------------------------------------------------------------------


def _require_may_act(actor: User, account: SendAccount, holder_id: int | None) -> None:
    if not policy.may_change_account_item(actor, account, holder_id):
        if account == SendAccount.OFFICE:
            raise Forbidden("Office-wide campaigns need admin or office-wide access")
        raise Forbidden("Only the account holder changes or sends its campaigns")


async def _audience(actor: User, audience_id: int, field: str) -> Audience:
    try:
        audience = await audiences.get_visible(actor, audience_id)
    except NotFound:
        raise BadInput("No such audience", field=field) from None
    return audience


async def _check_draft(actor: User, account: SendAccount, draft: CampaignDraft) -> None:
    """Validate every value given (R20), before anything is written."""
    if draft.name is not None:
        draft.name = validation.text(draft.name, "name", max_length=MAX_NAME, required=True)
    if draft.subject is not None or draft.body_html is not None:
        templates.check(draft.subject or "", draft.body_html or "")
    if draft.sender_mode == SenderMode.OWNER_OR_OFFICE and account != SendAccount.OFFICE:
        raise BadInput("OWNER_OR_OFFICE is for office-wide campaigns", field="senderMode")
    if draft.audience_id is not None:
        await _audience(actor, draft.audience_id, "audienceId")
    if draft.excluded_audience_ids is not None:
        if len(set(draft.excluded_audience_ids)) > MAX_EXCLUDED:
            raise BadInput(
                f"At most {MAX_EXCLUDED} audiences can be excluded", field="excludeAudienceIds"
            )
        for audience_id in draft.excluded_audience_ids:
            await _audience(actor, audience_id, "excludeAudienceIds")


async def create_campaign(actor: User, account: SendAccount, draft: CampaignDraft) -> Campaign:
    """A DRAFT campaign in `account`: the caller's own (USER) or the office-wide one (R14)."""
    _require_may_act(actor, account, actor.id if account == SendAccount.USER else None)
    for field, value in (
        ("name", draft.name),
        ("subject", draft.subject),
        ("bodyHtml", draft.body_html),
        ("audienceId", draft.audience_id),
    ):
        if value is None:
            raise BadInput(f"`{field}` is required", field=field)
    await _check_draft(actor, account, draft)
    return await Campaign.create(
        office_id=actor.office_id,
        account=account,
        sender_id=actor.id if account == SendAccount.USER else None,
        created_by_id=actor.id,
        audience_id=draft.audience_id,
        excluded_audience_ids=sorted(set(draft.excluded_audience_ids or [])),
        sender_mode=draft.sender_mode or SenderMode.ACCOUNT,
        name=draft.name,
        subject=draft.subject,
        body_html=draft.body_html,
    )


async def update_campaign(actor: User, campaign_id: int, draft: CampaignDraft) -> Campaign:
    """Change a DRAFT campaign; once scheduled it is what will be sent (cancel to change it)."""
    campaign = await get_visible(actor, campaign_id)
    _require_may_act(actor, campaign.account, campaign.sender_id)
    if draft.subject is not None or draft.body_html is not None:
        draft.subject = draft.subject if draft.subject is not None else campaign.subject
        draft.body_html = draft.body_html if draft.body_html is not None else campaign.body_html
    await _check_draft(actor, campaign.account, draft)
    changes = {
        "name": draft.name,
        "subject": draft.subject,
        "body_html": draft.body_html,
        "audience_id": draft.audience_id,
        "sender_mode": draft.sender_mode,
        "excluded_audience_ids": sorted(set(draft.excluded_audience_ids))
        if draft.excluded_audience_ids is not None
        else None,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if changes:
        changed = await Campaign.filter(id=campaign.id, state=CampaignState.DRAFT).update(
            **changes, updated_at=datetime.now(UTC)
        )
        if not changed:
            raise Conflict("Only a DRAFT campaign can be changed; cancel it first")
    return await Campaign.get(id=campaign.id)


async def send_campaign(actor: User, campaign_id: int, at: datetime | None = None) -> Campaign:
    """Queue the send now, or schedule it for `at` (R15: recipients are resolved when it
    starts). The campaign is SCHEDULED until a worker starts it; nothing is lost if the
    broker is down: the clock hands it over when it is back."""
    campaign = await get_visible(actor, campaign_id)
    _require_may_act(actor, campaign.account, campaign.sender_id)
    now = datetime.now(UTC)
    when = now
    if at is not None:
        if at.tzinfo is None:
            raise BadInput("`at` needs a time zone offset", field="at")
        when = max(at.astimezone(UTC), now)
        if at < now - PAST_TOLERANCE:
            raise BadInput("`at` is in the past", field="at")
        if at > now + MAX_SCHEDULE_AHEAD:
            raise BadInput("`at` is more than a year ahead", field="at")
    async with in_transaction():
        # The audience's row lock keeps a concurrent deleteAudience from slipping in between.
        audience = await Audience.filter(id=campaign.audience_id).select_for_update().get()
        if audience.deleted_at is not None:
            raise Conflict("The campaign's audience was deleted; choose another one")
        changed = await Campaign.filter(id=campaign.id, state=CampaignState.DRAFT).update(
            state=CampaignState.SCHEDULED, scheduled_at=when, updated_at=now
        )
        if not changed:
            raise Conflict("Only a DRAFT campaign can be sent")
        if campaign.account == SendAccount.OFFICE:
            await auditlog.record(
                actor,
                AuditAction.CAMPAIGN_SENT,
                target=ids.encode("Campaign", campaign.id),
                details={"audience": ids.encode("Audience", audience.id), "at": when.isoformat()},
            )
    campaign = await Campaign.get(id=campaign.id)
    await enqueue_dispatch(campaign, now=now)
    return campaign


async def cancel_campaign(actor: User, campaign_id: int) -> Campaign:
    """Cancel a draft or scheduled campaign; a sending one stops, keeping what was sent."""
    campaign = await get_visible(actor, campaign_id)
    _require_may_act(actor, campaign.account, campaign.sender_id)
    now = datetime.now(UTC)
    async with in_transaction():
        changed = await Campaign.filter(id=campaign.id, state__in=CANCELLABLE).update(
            state=CampaignState.CANCELLED, finished_at=now, updated_at=now
        )
        if not changed:
            raise Conflict(f"A {campaign.state.value} campaign cannot be cancelled")
        await execute(
            "UPDATE delivery SET state = 'CANCELLED' WHERE campaign_id = $1 AND state = 'PENDING'",
            campaign.id,
        )
    await events.publish("Campaign", campaign.id)
    return await Campaign.get(id=campaign.id)


# --- stats ---------------------------------------------------------------------------------


@dataclass
class Stats:
    recipients: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    unknown: int = 0
    cancelled: int = 0
    skipped_inactive: int = 0
    skipped_unsubscribed: int = 0
    skipped_no_email: int = 0
    skipped_archived: int = 0
    skipped_bounced: int = 0
    skipped_duplicate: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0


_STATE_FIELD = {
    DeliveryState.PENDING: "pending",
    DeliveryState.SENDING: "pending",
    DeliveryState.SENT: "sent",
    DeliveryState.FAILED: "failed",
    DeliveryState.BOUNCED: "bounced",
    DeliveryState.UNKNOWN: "unknown",
    DeliveryState.CANCELLED: "cancelled",
}


async def stats_of(campaign_ids: Iterable[int]) -> dict[int, Stats]:
    """Live stats of several campaigns in one aggregate query (a DataLoader's batch)."""
    wanted = sorted(set(campaign_ids))
    out = {cid: Stats() for cid in wanted}
    if not wanted:
        return out
    marks = ", ".join(f"${i}" for i in range(1, len(wanted) + 1))
    rows = await fetch(
        "SELECT campaign_id, state, skip_reason, COUNT(*) AS n, COUNT(opened_at) AS opened,"
        " COUNT(clicked_at) AS clicked, COUNT(unsubscribed_at) AS unsubscribed"
        f" FROM delivery WHERE campaign_id IN ({marks}) GROUP BY campaign_id, state, skip_reason",
        *wanted,
    )
    for row in rows:
        stats = out[row["campaign_id"]]
        n = row["n"]
        if row["state"] == DeliveryState.SKIPPED:
            name = f"skipped_{row['skip_reason'].lower()}"
            setattr(stats, name, getattr(stats, name) + n)
            continue
        stats.recipients += n
        field = _STATE_FIELD[DeliveryState(row["state"])]
        setattr(stats, field, getattr(stats, field) + n)
        stats.opened += row["opened"]
        stats.clicked += row["clicked"]
        stats.unsubscribed += row["unsubscribed"]
    return out


# --- the outbox ----------------------------------------------------------------------------


async def enqueue_dispatch(campaign: Campaign, *, now: datetime | None = None) -> None:
    """Hand the campaign's dispatch to the broker, delayed to its time, when that is near; a
    later one is handed over by the clock once due (a broker keeps delayed messages only
    while it runs). A lost or refused message is not a lost send: `resend_lost` hands it over
    again."""
    from workers.campaigns import dispatch_campaign

    now = now or datetime.now(UTC)
    delay = campaign.scheduled_at - now
    if delay > NEAR:
        return
    delay_ms = max(0, int(delay.total_seconds() * 1000))
    try:
        dispatch_campaign.send_with_options(args=(campaign.id,), delay=delay_ms or None)
    except Exception:  # the broker is down: the row stays SCHEDULED for the clock
        log.warning(
            "campaign %s scheduled but not enqueued; the clock will hand it over", campaign.id
        )
        return
    await Campaign.filter(id=campaign.id).update(dispatch_enqueued_at=now)


async def enqueue_batches(batch_ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Hand batches to the broker; returns how many went. The rows stay QUEUED until a
    worker takes them, so what the broker loses is handed over again."""
    from workers.campaigns import send_batch

    now = now or datetime.now(UTC)
    sent: list[int] = []
    for batch_id in batch_ids:
        try:
            send_batch.send(batch_id)
        except Exception:
            log.warning("campaign batches not enqueued; the clock will hand them over")
            break
        sent.append(batch_id)
    if sent:
        await CampaignBatch.filter(id__in=sent).update(enqueued_at=now)
    return len(sent)


async def resend_lost(now: datetime | None = None) -> int:
    """For the clock: hand over again the due campaigns and the batches whose message was
    lost, and the batches whose worker died (their lease lapsed). Returns how many."""
    now = now or datetime.now(UTC)
    stale = now - RESEND_AFTER
    due = await Campaign.filter(
        Q(state=CampaignState.SCHEDULED, scheduled_at__lte=now)
        & (Q(dispatch_enqueued_at__isnull=True) | Q(dispatch_enqueued_at__lt=stale))
    ).only("id", "scheduled_at")
    for campaign in due:
        await enqueue_dispatch(campaign, now=now)
    lost = await CampaignBatch.filter(
        Q(state=BatchState.QUEUED) & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        | Q(state=BatchState.RUNNING, lease_until__lt=now)
    ).values_list("id", flat=True)
    await enqueue_batches(lost, now=now)
    return len(due) + len(lost)
