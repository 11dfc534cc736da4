"""Sending one batch of a campaign (R16, R17) over one mail connection.

Exactly once, through retries, redeliveries, killed workers and a restarted broker:
- a worker first claims the batch (QUEUED, or RUNNING with a lapsed lease → RUNNING with a
  lease it renews while it sends); a second message for the same batch finds it taken or
  DONE and does nothing;
- before a message goes to the mail server its delivery is marked SENDING, and once the
  server has answered it is marked with the outcome, in one statement per message (the
  outcome of one and the SENDING mark of the next). So at any moment at most one delivery
  per connection is SENDING. A worker that takes over a batch whose worker died marks such
  a delivery UNKNOWN and never sends it again: it may or may not have arrived, and the
  stats report it;
- EMAIL_SENT activities (in bulk), suppressed addresses and the batch's end are written in
  one transaction after the loop; deliveries carry a `logged` mark, so a batch carried out
  again writes none twice.
Temporary failures (4xx, a dropped connection) leave a delivery PENDING: the batch goes back
to QUEUED and the actor is retried with backoff, until MAX_ATTEMPTS makes it FAILED.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
from tortoise.transactions import in_transaction

from api.campaigns import links, messages, templates, transport
from api.campaigns.models import (
    BatchState,
    Campaign,
    CampaignBatch,
    CampaignState,
    DeliveryState,
)
from api.contacts.models import ActivityKind
from api.core import events, metrics
from api.core.database import dialect, execute, fetch, tortoise_config
from api.core.settings import get_settings
from api.offices.models import Office
from api.offices.service import office_address
from api.users.models import User

log = logging.getLogger("api.campaigns.sender")

MAX_ATTEMPTS = 5

_OUTCOME_STATE = {
    transport.Result.SENT: DeliveryState.SENT,
    transport.Result.BOUNCED: DeliveryState.BOUNCED,
    transport.Result.PERMANENT: DeliveryState.FAILED,
}

# The outcome of delivery $1 ($2, $3 when sent, $4 the server's words) and the SENDING mark
# of the next one ($5), in one statement: the one write per message that R16 needs.
_ADVANCE = """
UPDATE delivery SET
    state = CASE WHEN id = $1 THEN $2 ELSE 'SENDING' END,
    sent_at = CASE WHEN id = $1 AND $2 = 'SENT' THEN $3 ELSE sent_at END,
    error = CASE WHEN id = $1 THEN $4 ELSE error END,
    attempts = CASE WHEN id = $5 THEN attempts + 1 ELSE attempts END
WHERE campaign_id = $6 AND (id = $1 OR (id = $5 AND state = 'PENDING'))
RETURNING id
"""

_ROWS = """
SELECT d.id, d.email, d.sender_id, d.attempts, c.first_name, c.last_name, c.owner_id,
       co.name AS company
FROM delivery d
JOIN contact c ON c.id = d.contact_id
LEFT JOIN company co ON co.id = c.company_id
WHERE d.campaign_id = $1 AND d.id BETWEEN $2 AND $3 AND d.state = 'PENDING'
    AND d.email IS NOT NULL
ORDER BY d.id
"""

_IN_BATCH = "campaign_id = $1 AND id BETWEEN $2 AND $3"
# "No previous outcome to record" for _Ledger.advance.
_NOTHING: tuple[int, str, str | None] = (0, DeliveryState.SENT.value, None)


@dataclass(frozen=True)
class _From:
    name: str
    address: str


async def send_batch(batch_id: int) -> None:
    """Carry out one batch; a batch that is DONE or held by a live worker is left alone."""
    settings = get_settings()
    lease = timedelta(seconds=settings.campaign_lease_seconds)
    now = datetime.now(UTC)
    claimed = await execute(
        "UPDATE campaign_batch SET state = 'RUNNING', attempts = attempts + 1,"
        " lease_until = $2 WHERE id = $1 AND (state = 'QUEUED'"
        " OR (state = 'RUNNING' AND lease_until < $3))",
        batch_id,
        now + lease,
        now,
    )
    if not claimed:
        return
    batch = await CampaignBatch.get(id=batch_id)
    span = (batch.campaign_id, batch.first_delivery_id, batch.last_delivery_id)
    # Its previous worker died with these in the mail server's hands: never send them again.
    lost = await execute(
        f"UPDATE delivery SET state = 'UNKNOWN' WHERE {_IN_BATCH} AND state = 'SENDING'", *span
    )
    metrics.campaign_message(DeliveryState.UNKNOWN.value, lost)
    campaign = await Campaign.get(id=batch.campaign_id)
    if campaign.state == CampaignState.SENDING:
        retry = await _send(campaign, batch, lease)
    else:  # cancelled meanwhile: nothing more goes out
        retry = False
    await _close(campaign, batch, retry=retry)
    await events.publish("Campaign", campaign.id)
    if retry:
        delay = min(15_000 * 2 ** (batch.attempts - 1), 600_000)
        raise dramatiq.Retry(f"batch {batch_id}: temporary failures", delay=delay)
    await finish_if_done(campaign.id)


async def _send(campaign: Campaign, batch: CampaignBatch, lease: timedelta) -> bool:
    """The send loop; True when something is left for a retry."""
    rows = await fetch(_ROWS, campaign.id, batch.first_delivery_id, batch.last_delivery_id)
    if not rows:
        return False
    office = await Office.get(id=campaign.office_id)
    wanted = {r["sender_id"] for r in rows} | {r["owner_id"] for r in rows}
    users = {u.id: u for u in await User.filter(id__in=[i for i in wanted if i is not None])}
    office_from = _From(office.name, office_address(office))
    body = templates.Body(campaign.subject, campaign.body_html)
    renew_every = lease.total_seconds() / 3
    renew_at = time.monotonic() + renew_every
    previous: tuple[int, str, str | None] = _NOTHING
    # The delivery marked SENDING, and whether its bytes may have reached the mail server.
    current, handed_over = 0, False
    left_for_retry = False
    ledger = _Ledger(campaign.id)
    try:
        async with ledger, transport.open_session() as session:
            for row in rows:
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + renew_every
                    if not await _renew(campaign.id, batch.id, lease):
                        break  # cancelled: the rest stays CANCELLED
                marked = await ledger.advance(previous, row["id"])
                previous = _NOTHING
                if not marked:
                    continue
                current, handed_over = row["id"], False
                sender = users.get(row["sender_id"]) if row["sender_id"] else None
                agent = sender or users.get(row["owner_id"])
                origin = _From(sender.name, sender.email) if sender else office_from
                try:
                    data = _message(campaign, body, row, origin, agent, office)
                except ValueError:  # an address that cannot be put in a header
                    previous, current = (row["id"], DeliveryState.FAILED.value, "bad address"), 0
                    metrics.campaign_message(DeliveryState.FAILED.value)
                    continue
                handed_over = True
                outcome = await session.send(data, sender=origin.address, recipient=row["email"])
                state = _OUTCOME_STATE.get(outcome.result)
                if outcome.maybe_delivered:
                    # The connection broke after the message was handed over: it may have
                    # arrived, so it is never sent again (R16: at most once).
                    state = DeliveryState.UNKNOWN
                elif state is None:  # temporary: try again later, a few times
                    state = DeliveryState.FAILED
                    if row["attempts"] + 1 < MAX_ATTEMPTS:
                        state, left_for_retry = DeliveryState.PENDING, True
                previous, current = (row["id"], state.value, _detail(outcome.detail)), 0
                metrics.campaign_message(state.value)
    except transport.TransportUnavailable:
        # Raised before anything of the current message was handed over (connect/reconnect).
        log.warning("campaign %s: mail server unavailable; batch %s waits", campaign.id, batch.id)
        left_for_retry, handed_over = True, False
    finally:
        if previous[0]:
            await execute(
                _ADVANCE, previous[0], previous[1], datetime.now(UTC), previous[2], 0, campaign.id
            )
        if current and not handed_over:
            # Never reached the mail server: back in line, and the attempt does not count.
            await execute(
                "UPDATE delivery SET state = 'PENDING', attempts = attempts - 1"
                " WHERE id = $1 AND state = 'SENDING'",
                current,
            )
    return left_for_retry


class _Ledger:
    """Where the one write per message goes. On PostgreSQL, a connection of the batch's own
    (never one of the pool's, which the rest of the batch needs) with synchronous_commit off:
    each mark is committed (a killed worker loses none) without waiting for the disk, which
    only a crash of the database server itself could undo."""

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id = campaign_id
        self.conn: Any = None

    async def __aenter__(self) -> _Ledger:
        if dialect() == "postgres":
            import asyncpg

            credentials = tortoise_config()["connections"]["default"]["credentials"]
            self.conn = await asyncpg.connect(
                host=credentials["host"],
                port=credentials["port"],
                user=credentials["user"],
                password=credentials.get("password"),
                database=credentials["database"],
                server_settings={"synchronous_commit": "off"},
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def advance(self, previous: tuple[int, str, str | None], next_id: int) -> bool:
        """Record the previous message's outcome and mark the next SENDING; False when the
        next is no longer PENDING (cancelled)."""
        prev_id, prev_state, detail = previous
        if not prev_id and not next_id:
            return False
        args = (prev_id, prev_state, datetime.now(UTC), detail, next_id, self.campaign_id)
        if self.conn is not None:
            rows = await self.conn.fetch(_ADVANCE, *args)
        else:
            rows = await fetch(_ADVANCE, *args)
        return any(row["id"] == next_id for row in rows)


def _detail(text: str | None) -> str | None:
    return text[:500] if text else None


async def _renew(campaign_id: int, batch_id: int, lease: timedelta) -> bool:
    """Extend the batch's lease; False when the campaign is no longer sending."""
    await CampaignBatch.filter(id=batch_id).update(lease_until=datetime.now(UTC) + lease)
    state = await Campaign.filter(id=campaign_id).values_list("state", flat=True)
    return bool(state) and state[0] == CampaignState.SENDING


def _message(
    campaign: Campaign,
    body: templates.Body,
    row: dict,
    origin: _From,
    agent: User | None,
    office: Office,
) -> bytes:
    first, last = row["first_name"] or "", row["last_name"] or ""
    fields = {
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "email": row["email"],
        "company": row["company"] or "",
        "agent_name": agent.name if agent else office.name,
        "agent_email": agent.email if agent else origin.address,
        "office_name": office.name,
    }
    delivery_id = row["id"]
    unsubscribe = links.url(links.UNSUBSCRIBE, delivery_id)
    rendered = body.render(
        fields,
        open_url=links.url(links.OPEN, delivery_id),
        unsubscribe_url=unsubscribe,
        click_url=lambda n: links.url(links.CLICK, delivery_id, n),
    )
    return messages.compose(
        rendered,
        from_name=origin.name,
        from_address=origin.address,
        reply_to=origin.address,
        to_name=fields["full_name"],
        to_address=row["email"],
        message_id=messages.message_id(delivery_id, campaign.id),
        unsubscribe_url=unsubscribe,
    )


async def _close(campaign: Campaign, batch: CampaignBatch, *, retry: bool) -> None:
    """After the loop, in one transaction: EMAIL_SENT activities for what was sent (once),
    bounced addresses suppressed, and the batch DONE or back to QUEUED for its retry."""
    from api.contacts.service import record_activities_bulk

    span = (campaign.id, batch.first_delivery_id, batch.last_delivery_id)
    now = datetime.now(UTC)
    async with in_transaction():
        sent = await fetch(
            f"SELECT id, contact_id, sender_id FROM delivery WHERE {_IN_BATCH}"
            " AND state = 'SENT' AND logged = FALSE",
            *span,
        )
        if sent:
            await record_activities_bulk(
                campaign.office_id,
                ActivityKind.EMAIL_SENT,
                [(r["contact_id"], r["sender_id"]) for r in sent],
                at=now,
                note=campaign.name,
            )
            await execute(
                f"UPDATE delivery SET logged = TRUE WHERE {_IN_BATCH}"
                " AND state = 'SENT' AND logged = FALSE",
                *span,
            )
        conflict = "ON CONFLICT (office_id, address) DO NOTHING"
        await execute(
            "INSERT INTO suppression (office_id, address, reason, created_at)"
            f" SELECT office_id, lower(email), MAX(error), $4 FROM delivery WHERE {_IN_BATCH}"
            f" AND state = 'BOUNCED' AND email IS NOT NULL GROUP BY office_id, lower(email) {conflict}",
            *span,
            now,
        )
        if retry:
            await CampaignBatch.filter(id=batch.id).update(
                state=BatchState.QUEUED, lease_until=None, enqueued_at=now
            )
        else:
            await CampaignBatch.filter(id=batch.id).update(
                state=BatchState.DONE, lease_until=None, finished_at=now
            )


async def finish_if_done(campaign_id: int) -> None:
    """SENDING → SENT (or FAILED when nothing could be delivered) once every batch is DONE.
    Each batch asks after its own end is committed, so the last one to end sees them all."""
    async with in_transaction():
        if dialect() == "postgres":
            await fetch("SELECT id FROM campaign WHERE id = $1 FOR UPDATE", campaign_id)
        if (
            await CampaignBatch.filter(campaign_id=campaign_id)
            .exclude(state=BatchState.DONE)
            .exists()
        ):
            return
        counts = {
            row["state"]: row["n"]
            for row in await fetch(
                "SELECT state, COUNT(*) AS n FROM delivery WHERE campaign_id = $1"
                " AND state <> 'SKIPPED' GROUP BY state",
                campaign_id,
            )
        }
        delivered = counts.get("SENT", 0) + counts.get("UNKNOWN", 0)
        failed_all = sum(counts.values()) > 0 and delivered == 0 and not counts.get("CANCELLED")
        state = CampaignState.FAILED if failed_all else CampaignState.SENT
        await Campaign.filter(id=campaign_id, state=CampaignState.SENDING).update(
            state=state, finished_at=datetime.now(UTC)
        )
    await events.publish("Campaign", campaign_id)
