"""What the links in a campaign message record (R17): opens (the pixel), clicks and
unsubscribes. The routes in api.campaigns.routes only call these.

The signed token in the link is the only credential (api.campaigns.links): a forged, altered
or unknown one, or one for another purpose, records nothing. Each event lands on its delivery
once, through a conditional UPDATE, however often and however concurrently the link is
followed; that first time is also an activity of the contact and drives R10 through
api.contacts.service.record_activity.

Locks are taken contact first, then delivery, as the batch sender takes them when it records
what it sent, so the two never wait on each other in a circle. A repeated open or click
takes no lock at all: the first read shows it was recorded already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from api.campaigns import links
from api.campaigns.models import Delivery
from api.contacts.models import ActivityKind, Contact
from api.contacts.service import record_activity
from api.core import database, metrics


@dataclass(frozen=True)
class UnsubscribeView:
    """What the unsubscribe page shows."""

    office_name: str
    # "j***@example.com": enough for its owner to recognise, little for anyone else.
    masked_email: str | None
    already_unsubscribed: bool


def mask_email(address: str | None) -> str | None:
    """The first letter of the local part, then *** and the domain."""
    if not address or "@" not in address:
        return None
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


async def _delivery(purpose: str, token: str | None, *columns: str) -> dict[str, Any] | None:
    """The delivery a genuine token of `purpose` names (with `columns`), else None."""
    found = links.read_token(purpose, token)
    if found is None:
        return None
    delivery_id, link = found
    rows = await Delivery.filter(id=delivery_id).values("id", "contact_id", *columns)
    if not rows:
        return None
    return {**rows[0], "link": link}


async def _locked_contact(contact_id: int) -> Contact:
    # Locked: a concurrent activity must not read the status this one is changing (R8).
    return await Contact.select_for_update(no_key=True).get(id=contact_id)


async def record_open(token: str) -> bool:
    """The open pixel: False for a token that is not genuine. The first open sets
    opened_at and records an EMAIL_OPENED activity; later ones change nothing."""
    delivery = await _delivery(links.OPEN, token, "opened_at", "campaign__name")
    if delivery is None:
        return False
    if delivery["opened_at"] is not None:
        return True
    now = datetime.now(UTC)
    async with in_transaction():
        contact = await _locked_contact(delivery["contact_id"])
        first = await Delivery.filter(id=delivery["id"], opened_at__isnull=True).update(
            opened_at=now
        )
        if first:
            await record_activity(
                contact, ActivityKind.EMAIL_OPENED, at=now, note=delivery["campaign__name"]
            )
            metrics.CAMPAIGN_OPENS.inc()
    return True


async def record_click(token: str) -> str | None:
    """A tracked link: the URL to send the reader to, or None for a token that is not
    genuine or a link number the message does not have (only that message's own links are
    followed, so the route is no open redirect). The first click sets clicked_at (and
    opened_at, if no pixel was loaded: a click proves an open) and records EMAIL_CLICKED."""
    from api.campaigns.templates import tracked_links

    delivery = await _delivery(links.CLICK, token, "clicked_at", "campaign__body_html")
    if delivery is None:
        return None
    targets = tracked_links(delivery["campaign__body_html"])
    if delivery["link"] >= len(targets):
        return None
    target = targets[delivery["link"]]
    if delivery["clicked_at"] is not None:
        return target
    now = datetime.now(UTC)
    async with in_transaction():
        contact = await _locked_contact(delivery["contact_id"])
        first = await database.execute(
            "UPDATE delivery SET clicked_at = $1, opened_at = COALESCE(opened_at, $1)"
            " WHERE id = $2 AND clicked_at IS NULL",
            now,
            delivery["id"],
        )
        if first:
            await record_activity(contact, ActivityKind.EMAIL_CLICKED, at=now, note=target)
            metrics.CAMPAIGN_CLICKS.inc()
    return target


_VIEW_COLUMNS = ("email", "office__name", "contact__email", "contact__unsubscribed")


def _view(delivery: dict[str, Any], *, already_unsubscribed: bool) -> UnsubscribeView:
    return UnsubscribeView(
        office_name=delivery["office__name"],
        masked_email=mask_email(delivery["email"] or delivery["contact__email"]),
        already_unsubscribed=already_unsubscribed,
    )


async def unsubscribe_view(token: str | None) -> UnsubscribeView | None:
    """What the unsubscribe page shows on GET; it changes nothing (mail scanners follow
    links). None for a token that is not genuine."""
    delivery = await _delivery(links.UNSUBSCRIBE, token, *_VIEW_COLUMNS)
    if delivery is None:
        return None
    return _view(delivery, already_unsubscribed=delivery["contact__unsubscribed"])


async def unsubscribe(token: str | None) -> UnsubscribeView | None:
    """Unsubscribe the delivery's contact (the page's button and RFC 8058 one-click alike).
    The first time sets the contact's flag and the delivery's unsubscribed_at and records an
    UNSUBSCRIBED activity (not engagement: no status change, but R10's lastActivityAt and
    atRiskSince like every activity). Again, or when the contact already was unsubscribed,
    nothing changes. `already_unsubscribed` tells which. None for a token that is not genuine.
    Archived and inactive contacts unsubscribe too (R9 allows activities)."""
    delivery = await _delivery(links.UNSUBSCRIBE, token, "campaign__name", *_VIEW_COLUMNS)
    if delivery is None:
        return None
    now = datetime.now(UTC)
    async with in_transaction():
        contact = await _locked_contact(delivery["contact_id"])
        # Conditional as well: SQLite has no row locks, and two processes may share its file.
        flipped = await Contact.filter(id=contact.id, unsubscribed=False).update(unsubscribed=True)
        if flipped:
            contact.unsubscribed = True
            await Delivery.filter(id=delivery["id"], unsubscribed_at__isnull=True).update(
                unsubscribed_at=now
            )
            await record_activity(
                contact, ActivityKind.UNSUBSCRIBED, at=now, note=delivery["campaign__name"]
            )
            metrics.CAMPAIGN_UNSUBSCRIBES.inc()
    return _view(delivery, already_unsubscribed=not flipped)
