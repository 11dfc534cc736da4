"""Status rules (R8–R10): how a contact's status changes and what each change leaves behind."""

from __future__ import annotations

from datetime import datetime

from api.contacts.models import (
    ENGAGEMENT_KINDS,
    ActivityKind,
    Contact,
    ContactStatus,
    StatusChange,
    StatusSource,
)


def engagement_target(contact: Contact, kind: ActivityKind) -> ContactStatus | None:
    """R10: the status an activity of `kind` moves the contact to, or None to leave it."""
    if kind not in ENGAGEMENT_KINDS:
        return None
    if contact.status is None:
        return ContactStatus.ACTIVE
    if contact.status == ContactStatus.INACTIVE and contact.status_source == StatusSource.AUDIT:
        return ContactStatus.ACTIVE
    # INACTIVE set by a person stays; the audit reports the contact as a discrepancy.
    return None


async def change_status(
    contact: Contact,
    to: ContactStatus | None,
    *,
    source: StatusSource,
    at: datetime,
    actor_id: int | None = None,
    reason: str | None = None,
) -> bool:
    """R8: set the status and append its StatusChange. The caller holds a transaction and
    saves the contact. Returns False when the status was already `to` (nothing recorded)."""
    if contact.status == to:
        return False
    await StatusChange.create(
        office_id=contact.office_id,
        contact_id=contact.id,
        from_status=contact.status,
        to_status=to,
        source=source,
        actor_id=actor_id,
        reason=reason,
        at=at,
    )
    contact.status = to
    contact.status_source = source
    contact.status_updated_at = at
    return True
