"""Ownership derivation (R5–R7): the one home of the rule, for single contacts and in bulk.

The rule: a contact belongs to the active user whose `crmAgentId` equals its `crmOwnerId`.
An owner set by hand (`assignContacts`, source MANUAL, an owner or nobody) holds until a CRM
write (create or import) names an owner that maps to an active user. Deactivating a user
unassigns their contacts at once; an active user who gets a matching `crmAgentId` receives
every contact not held by hand.
"""

from __future__ import annotations

from tortoise.expressions import Q

from api.contacts.models import Contact, OwnerSource
from api.users.models import User


async def crm_user_id(office_id: int, crm_owner_id: str | None) -> int | None:
    """R5: the active user of the office the CRM owner id maps to."""
    if not crm_owner_id:
        return None
    row = (
        await User.filter(office_id=office_id, crm_agent_id=crm_owner_id, active=True)
        .first()
        .values("id")
    )
    return row["id"] if row else None


def resolve(
    crm_user: int | None,
    owner_id: int | None,
    owner_source: OwnerSource | None,
    *,
    crm_write: bool,
) -> tuple[int | None, OwnerSource | None]:
    """The (owner, source) a contact should have, given who its CRM owner maps to."""
    held_by_hand = owner_source == OwnerSource.MANUAL
    if crm_user is not None and (crm_write or not held_by_hand):
        return crm_user, OwnerSource.CRM
    if held_by_hand:
        return owner_id, OwnerSource.MANUAL
    return None, None


async def rederive(contact: Contact, *, crm_write: bool) -> None:
    """Apply the rule to one contact in memory; the caller saves it."""
    crm_user = await crm_user_id(contact.office_id, contact.crm_owner_id)
    contact.owner_id, contact.owner_source = resolve(
        crm_user, contact.owner_id, contact.owner_source, crm_write=crm_write
    )


async def on_user_changed(user: User, *, old_crm_agent_id: str | None, was_active: bool) -> None:
    """R6 for user triggers, set-based: deactivation, reactivation, a new or changed crmAgentId."""
    if was_active and not user.active:
        await Contact.filter(owner_id=user.id).update(owner_id=None, owner_source=None)
        return
    if not user.active:
        return
    if old_crm_agent_id and old_crm_agent_id != user.crm_agent_id:
        # The CRM id moved away from this user: contacts they held through it go unassigned.
        await Contact.filter(
            office_id=user.office_id,
            owner_id=user.id,
            owner_source=OwnerSource.CRM,
            crm_owner_id=old_crm_agent_id,
        ).update(owner_id=None, owner_source=None)
    if user.crm_agent_id and (user.crm_agent_id != old_crm_agent_id or not was_active):
        await (
            Contact.filter(office_id=user.office_id, crm_owner_id=user.crm_agent_id)
            .filter(Q(owner_source=OwnerSource.CRM) | Q(owner_source__isnull=True))
            .update(owner_id=user.id, owner_source=OwnerSource.CRM)
        )
