"""The permission policy (R1–R4): every access decision in the product is made here.

Permission classes on GraphQL fields and the domain services both ask these functions;
none of them touches the database, so they are cheap enough to call per field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api.core.errors import Conflict, Forbidden, NotFound
from api.users.models import Role

if TYPE_CHECKING:
    from tortoise.expressions import Q

    from api.contacts.models import Contact
    from api.users.models import User


def is_admin(user: User) -> bool:
    return user.role == Role.ADMIN


def sees_whole_office(user: User) -> bool:
    """Admins and office-wide users see every contact of the office (R2)."""
    return is_admin(user) or user.office_wide_access


def may_export(user: User) -> bool:
    return is_admin(user) or user.can_export


def may_import(user: User) -> bool:
    """CRM imports (R21) write any contact of the office and re-derive owners: admins only."""
    return is_admin(user)


def may_delete(user: User) -> bool:
    return is_admin(user) or user.can_delete


def may_erase(user: User) -> bool:
    """GDPR erasure cannot be undone: admins only (canDelete alone archives, which can be)."""
    return is_admin(user)


def contact_scope(user: User) -> dict[str, Any]:
    """ORM filter arguments limiting contacts to those `user` may see (R1, R2)."""
    scope: dict[str, Any] = {"office_id": user.office_id}
    if not sees_whole_office(user):
        scope["owner_id"] = user.id
    return scope


def may_see_contact(user: User, contact: Contact) -> bool:
    if contact.office_id != user.office_id:
        return False
    return sees_whole_office(user) or contact.owner_id == user.id


def require_contact_visible(user: User, contact: Contact | None) -> Contact:
    """The contact, or NOT_FOUND exactly as for a missing one (R1)."""
    if contact is None or not may_see_contact(user, contact):
        raise NotFound("Contact")
    return contact


def may_see_contact_pii(user: User, contact: Contact) -> bool:
    """Email and phone (R3): masked for a non-admin when another user owns the contact."""
    if is_admin(user):
        return True
    return contact.owner_id is None or contact.owner_id == user.id


def may_edit_contact(user: User, contact: Contact) -> bool:
    """Fields, status and archive: admins, the owner, or office-wide users on unassigned contacts."""
    if is_admin(user) or contact.owner_id == user.id:
        return True
    return user.office_wide_access and contact.owner_id is None


def require_contact_editable(user: User, contact: Contact) -> None:
    if not may_edit_contact(user, contact):
        raise Forbidden("Only the contact's owner or an admin can change this contact")


INACTIVE_READ_ONLY = "The contact is inactive and read-only; reactivate it first"
ARCHIVED_STATUS_WAITS = "The contact is archived; restore it first"


def is_read_only(status: str | None) -> bool:
    """R9: an inactive contact is read-only (its status may still be set back to ACTIVE)."""
    from api.contacts.models import ContactStatus

    return status == ContactStatus.INACTIVE


def require_not_inactive(contact: Contact) -> None:
    if is_read_only(contact.status):
        raise Conflict(INACTIVE_READ_ONLY)


ERASED_FOR_GOOD = "The contact's personal data was erased; it cannot be restored or changed"


def require_not_erased(contact: Contact) -> None:
    """An erased contact stays archived and takes no new personal data."""
    if contact.erased_at is not None:
        raise Conflict(ERASED_FOR_GOOD)


def require_status_changeable(contact: Contact) -> None:
    """An archived contact's status waits for its restoring."""
    if contact.archived:
        raise Conflict(ARCHIVED_STATUS_WAITS)


def may_reactivate(user: User, contact: Contact) -> bool:
    """R9: only the owner or an admin sets an inactive contact back to ACTIVE."""
    return is_admin(user) or contact.owner_id == user.id


def may_see_user_email(viewer: User, user: User) -> bool:
    return viewer.id == user.id or is_admin(viewer)


def may_manage_users(user: User) -> bool:
    return is_admin(user)


# Fields of UserPatch a user may change on their own record (R4: never their rights).
SELF_EDITABLE_USER_FIELDS = frozenset({"name"})


def require_user_patch_allowed(actor: User, target: User, changed: set[str]) -> None:
    if actor.id == target.id and "password" in changed:
        # Only with the current password, so a stolen token cannot take the account over.
        raise Forbidden("Change your own password with changePassword")
    if is_admin(actor):
        if actor.id == target.id and changed & {"role", "active"}:
            # An admin demoting or deactivating themself could lock the office out.
            raise Forbidden("Admins cannot change their own role or deactivate themselves")
        return
    if actor.id == target.id and changed <= SELF_EDITABLE_USER_FIELDS:
        return
    raise Forbidden("Only admins change users and their rights")


# --- audiences and campaigns (R3, R13, R14) ------------------------------------------------


def may_use_office_account(user: User) -> bool:
    """The office-wide account's audiences and campaigns: admins and office-wide users (R3, R14)."""
    return sees_whole_office(user)


def may_see_account_item(user: User, office_id: int, account: str, holder_id: int | None) -> bool:
    """An audience or campaign of `account`: the office-wide one for those with office-wide
    access, a user's own for that user and admins. Anything else answers NOT_FOUND (R1)."""
    if office_id != user.office_id:
        return False
    if account == "OFFICE":
        return may_use_office_account(user)
    return holder_id == user.id or is_admin(user)


def account_items_scope(user: User, *, holder: str) -> Q:
    """may_see_account_item as a filter over audiences or campaigns (`holder` names the
    column holding a USER item's account holder)."""
    from tortoise.expressions import Q

    scope = Q(office_id=user.office_id)
    if is_admin(user):
        return scope
    own = Q(account="USER", **{holder: user.id})
    if may_use_office_account(user):
        own |= Q(account="OFFICE")
    return scope & own


def may_change_account_item(user: User, account: str, holder_id: int | None) -> bool:
    """Create, change, send or cancel in an account: its holder, or office-wide access for the
    office-wide account. Admins read agents' own audiences and campaigns but do not act in them."""
    if account == "OFFICE":
        return may_use_office_account(user)
    return holder_id == user.id
