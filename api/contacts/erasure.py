"""GDPR erasure of a contact: its personal data removed for good, wherever it was stored.

What goes: name (replaced by ERASED_FIRST_NAME / ERASED_LAST_NAME), email, phone, the CRM's
external id, the company link, the search text made of them; the free text written about the
contact (activity notes, status-change reasons); the address and mail-server answer kept on
each of its campaign deliveries, and the office's bounce suppression of that address unless
another contact still has it. What stays: the row and its id, owner and CRM owner id (ours,
not the person's), status, the status history rows (R8: never deleted), activities with their
kinds and times, deliveries with their outcomes, so every count and report still adds up.

The contact ends archived (it leaves every list, audience and send, R11), unsubscribed, and
marked `erased_at`; it cannot be restored, changed or erased again (CONFLICT). Everything
happens in one transaction under the contact's row lock, in one statement per table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction
from api.contacts.filters import search_text
from api.contacts.models import Activity, Contact, StatusChange
from api.core import database, ids, policy
from api.core.errors import Forbidden
from api.users.models import User

ERASED_FIRST_NAME = "Erased"
ERASED_LAST_NAME = "contact"


async def erase_contact(actor: User, contact_id: int) -> Contact:
    """`eraseContact` (admins): irreversibly anonymise the contact, recorded in the audit log
    as CONTACT_ERASED. Another office's contact is NOT_FOUND (R1); an erased one, CONFLICT."""
    if not policy.may_erase(actor):
        raise Forbidden("Only admins erase contacts")
    now = datetime.now(UTC)
    async with in_transaction():
        # Locked: an update or import of the contact at the same time waits, then sees it erased.
        contact = await Contact.select_for_update().get_or_none(
            id=contact_id, office_id=actor.office_id
        )
        contact = policy.require_contact_visible(actor, contact)
        policy.require_not_erased(contact)
        address = contact.email
        contact.first_name, contact.last_name = ERASED_FIRST_NAME, ERASED_LAST_NAME
        contact.email = contact.phone = contact.external_id = contact.company_id = None
        contact.search_text = search_text(contact.first_name, contact.last_name, None, None)
        if not contact.archived:
            contact.archived, contact.archived_at = True, now
        contact.unsubscribed = True
        contact.erased_at = now
        await contact.save(
            update_fields=[
                "first_name",
                "last_name",
                "email",
                "phone",
                "external_id",
                "company_id",
                "search_text",
                "archived",
                "archived_at",
                "unsubscribed",
                "erased_at",
                "updated_at",
            ]
        )
        notes = await Activity.filter(contact_id=contact.id, note__not_isnull=True).update(
            note=None
        )
        reasons = await StatusChange.filter(contact_id=contact.id, reason__not_isnull=True).update(
            reason=None
        )
        # Through the office's campaigns, so the (campaign, contact) index finds the rows. A
        # delivery still waiting is cancelled: it has no address to go to any more.
        deliveries = await database.execute(
            "UPDATE delivery SET email = NULL, error = NULL,"
            " state = CASE WHEN state = 'PENDING' THEN 'CANCELLED' ELSE state END"
            " WHERE contact_id = $1 AND campaign_id IN (SELECT id FROM campaign WHERE office_id = $2)",
            contact.id,
            actor.office_id,
        )
        if address:
            # Addresses are stored lower-cased, as suppressions are; the contact's own is
            # already gone, so only another contact keeps the suppression in place.
            await database.execute(
                "DELETE FROM suppression WHERE office_id = $1 AND address = $2 AND NOT EXISTS"
                " (SELECT 1 FROM contact WHERE office_id = $1 AND email = $2)",
                actor.office_id,
                address,
            )
        await auditlog.record(
            actor,
            AuditAction.CONTACT_ERASED,
            target=ids.encode("Contact", contact.id),
            details={"notesCleared": notes, "reasonsCleared": reasons, "deliveries": deliveries},
        )
    return contact
