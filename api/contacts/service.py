"""Contact operations. Every function takes the acting user and applies the rules itself;
GraphQL resolvers, routes and workers only call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction
from api.contacts import ownership
from api.contacts.filters import ContactFilterSpec, filter_q, search_text
from api.contacts.models import (
    ENGAGEMENT_KINDS,
    Activity,
    ActivityKind,
    Company,
    Contact,
    ContactStatus,
    OwnerSource,
    StatusSource,
)
from api.contacts.status import change_status, engagement_target
from api.core import database, ids, policy, validation
from api.core.errors import BadInput, Conflict, Forbidden, NotFound
from api.core.pagination import LazyPage
from api.users.models import User


class ContactPage(LazyPage[Contact]):
    """A page of contacts, newest first."""

    def __init__(self, query: QuerySet[Contact], *, first: int, after: int | None) -> None:
        super().__init__(first=first, after=after)
        self._query = query

    async def fetch(self) -> list[Contact]:
        page = self._query.filter(id__lt=self.after) if self.after is not None else self._query
        # Whole rows: Tortoise builds a partial one (`.only`) more slowly than a whole one,
        # which costs more than the few columns it leaves out save.
        return await page.order_by("-id").limit(self.first + 1)

    async def count(self) -> int:
        return await self._query.count()


@dataclass
class ContactFields:
    """Validated contact fields; None means "not given" for patches."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company_name: str | None = None


async def get_visible(actor: User, contact_id: int) -> Contact:
    """The contact if `actor` may see it, else NOT_FOUND (R1, R2)."""
    contact = await Contact.get_or_none(id=contact_id, office_id=actor.office_id)
    return policy.require_contact_visible(actor, contact)


def list_contacts(
    actor: User, spec: ContactFilterSpec, *, first: int, after: int | None
) -> ContactPage:
    """A page of the contacts `actor` sees, newest first."""
    query = Contact.filter(**policy.contact_scope(actor)).filter(filter_q(spec))
    return ContactPage(query, first=first, after=after)


async def _company_id(office_id: int, name: str | None) -> int | None:
    if not name:
        return None
    key = name.lower()
    company = await Company.get_or_none(office_id=office_id, name_key=key)
    if company is None:
        try:
            async with in_transaction():
                company = await Company.create(office_id=office_id, name=name, name_key=key)
        except IntegrityError:
            # Another request created it in between.
            company = await Company.get(office_id=office_id, name_key=key)
    return company.id


def _clean_fields(raw: ContactFields, *, creating: bool) -> ContactFields:
    return ContactFields(
        first_name=validation.text(raw.first_name, "firstName", max_length=200, required=creating),
        last_name=validation.text(raw.last_name, "lastName", max_length=200, required=creating),
        email=validation.email(raw.email),
        phone=validation.phone(raw.phone),
        company_name=validation.text(raw.company_name, "companyName", max_length=200),
    )


async def _refresh_search_text(contact: Contact, company_name: str | None = None) -> None:
    if company_name is None and contact.company_id is not None:
        company_name = (await Company.get(id=contact.company_id)).name
    contact.search_text = search_text(
        contact.first_name, contact.last_name, contact.email, company_name
    )


async def create_contact(
    actor: User,
    raw: ContactFields,
    *,
    external_id: str | None = None,
    crm_owner_id: str | None = None,
    status: ContactStatus | None = None,
) -> Contact:
    """Create a contact. Its owner comes from the CRM owner id (R5); an agent's own
    contact without one is theirs by hand, so they can still see it."""
    data = _clean_fields(raw, creating=True)
    external_id = validation.text(external_id, "externalId", max_length=100)
    crm_owner_id = validation.text(crm_owner_id, "crmOwnerId", max_length=100)
    if external_id and await Contact.exists(office_id=actor.office_id, external_id=external_id):
        raise Conflict("A contact with this externalId already exists", field="externalId")
    now = datetime.now(UTC)
    async with in_transaction():
        company_id = await _company_id(actor.office_id, data.company_name)
        contact = Contact(
            office_id=actor.office_id,
            external_id=external_id,
            first_name=data.first_name,
            last_name=data.last_name,
            email=data.email,
            phone=data.phone,
            company_id=company_id,
            crm_owner_id=crm_owner_id,
        )
        crm_user = await ownership.crm_user_id(actor.office_id, crm_owner_id)
        if crm_user is None and not policy.sees_whole_office(actor):
            contact.owner_id, contact.owner_source = actor.id, OwnerSource.MANUAL
        else:
            await ownership.rederive(contact, crm_write=True)
        await _refresh_search_text(contact, data.company_name)
        try:
            await contact.save()
        except IntegrityError:
            raise Conflict(
                "A contact with this externalId already exists", field="externalId"
            ) from None
        if status is not None:
            await change_status(
                contact, status, source=StatusSource.USER, at=now, actor_id=actor.id
            )
            await contact.save(update_fields=["status", "status_source", "status_updated_at"])
    return contact


async def update_contact(actor: User, contact_id: int, raw: ContactFields) -> Contact:
    data = _clean_fields(raw, creating=False)
    if raw.first_name is not None and data.first_name is None:
        raise BadInput("`firstName` must not be blank", field="firstName")
    if raw.last_name is not None and data.last_name is None:
        raise BadInput("`lastName` must not be blank", field="lastName")
    async with in_transaction():
        contact = await get_visible(actor, contact_id)
        policy.require_contact_editable(actor, contact)
        policy.require_not_erased(contact)
        policy.require_not_inactive(contact)
        company_name = None
        if data.first_name is not None:
            contact.first_name = data.first_name
        if data.last_name is not None:
            contact.last_name = data.last_name
        # Sending an empty string clears an optional field; leaving it out keeps it.
        if raw.email is not None:
            contact.email = data.email
        if raw.phone is not None:
            contact.phone = data.phone
        if raw.company_name is not None:
            company_name = data.company_name
            contact.company_id = await _company_id(actor.office_id, company_name)
        await _refresh_search_text(contact, company_name)
        await ownership.rederive(contact, crm_write=False)
        await contact.save()
    return contact


async def set_status(
    actor: User, contact_id: int, status: ContactStatus, reason: str | None
) -> Contact:
    reason = validation.text(reason, "reason", max_length=500)
    async with in_transaction():
        contact = await get_visible(actor, contact_id)
        if contact.status == ContactStatus.INACTIVE:
            # R9: only reactivation, and only by the owner or an admin.
            if status != ContactStatus.ACTIVE or not policy.may_reactivate(actor, contact):
                policy.require_not_inactive(contact)
        else:
            policy.require_contact_editable(actor, contact)
        policy.require_status_changeable(contact)
        changed = await change_status(
            contact,
            status,
            source=StatusSource.USER,
            at=datetime.now(UTC),
            actor_id=actor.id,
            reason=reason,
        )
        if changed:
            await contact.save(
                update_fields=["status", "status_source", "status_updated_at", "updated_at"]
            )
    return contact


async def assign_contacts(actor: User, contact_ids: list[int], owner_id: int | None) -> int:
    """R7 (admins): set owners by hand, or unassign; all or nothing. Returns how many changed."""
    if not policy.is_admin(actor):
        raise Forbidden("Only admins assign contacts")
    wanted = set(contact_ids)
    if not wanted:
        return 0
    if len(wanted) > 10_000:
        raise BadInput("At most 10000 contacts at once", field="contactIds")
    if owner_id is not None and not await User.exists(
        id=owner_id, office_id=actor.office_id, active=True
    ):
        raise NotFound("User")
    async with in_transaction():
        found = await Contact.filter(id__in=wanted, office_id=actor.office_id).values_list(
            "id", "status"
        )
        if len(found) != len(wanted):
            raise NotFound("Contact")
        if any(status == ContactStatus.INACTIVE for _, status in found):
            raise Conflict("Some of these contacts are inactive and read-only", field="contactIds")
        scope = Contact.filter(id__in=wanted, office_id=actor.office_id)
        if owner_id is None:
            changing = scope.filter(owner_id__not_isnull=True)
        else:
            # NULL <> x is NULL in SQL: unassigned contacts must be counted explicitly.
            changing = scope.filter(Q(owner_id__isnull=True) | ~Q(owner_id=owner_id))
        changed = await changing.count()
        # Held by hand from now on, including "nobody" (R7).
        await scope.update(owner_id=owner_id, owner_source=OwnerSource.MANUAL)
    return changed


async def archive_contact(actor: User, contact_id: int) -> Contact:
    """R11: archive (needs canDelete); history stays, lists and sends leave it out."""
    return await _set_archived(actor, contact_id, archived=True)


async def restore_contact(actor: User, contact_id: int) -> Contact:
    return await _set_archived(actor, contact_id, archived=False)


async def _set_archived(actor: User, contact_id: int, *, archived: bool) -> Contact:
    if not policy.may_delete(actor):
        raise Forbidden("Needs the canDelete right")
    async with in_transaction():
        contact = await get_visible(actor, contact_id)
        policy.require_contact_editable(actor, contact)
        policy.require_not_erased(contact)
        policy.require_not_inactive(contact)
        if contact.archived != archived:
            contact.archived = archived
            contact.archived_at = datetime.now(UTC) if archived else None
            await contact.save(update_fields=["archived", "archived_at", "updated_at"])
            await auditlog.record(
                actor,
                AuditAction.CONTACT_DELETED if archived else AuditAction.CONTACT_RESTORED,
                target=ids.encode("Contact", contact.id),
            )
    return contact


async def log_activity(
    actor: User,
    contact_id: int,
    kind: ActivityKind,
    *,
    at: datetime | None = None,
    note: str | None = None,
    source_user_id: int | None = None,
) -> Activity:
    """Record an activity (allowed on inactive contacts too) and apply R10."""
    at = validation.past_or_now(at, "at")
    note = validation.text(note, "note", max_length=5000)
    if kind == ActivityKind.UNSUBSCRIBED:
        # Only the contact unsubscribes, through the link in a message; a logged one would
        # claim an unsubscribe that never set the flag sends obey.
        raise BadInput("Unsubscribes come only from the link in a campaign message", field="kind")
    async with in_transaction():
        # Locked: two activities at once must not both read the old status (R8 history).
        contact = await Contact.select_for_update(no_key=True).get_or_none(
            id=contact_id, office_id=actor.office_id
        )
        policy.require_contact_visible(actor, contact)
        return await record_activity(
            contact,
            kind,
            at=at,
            note=note,
            user_id=source_user_id if source_user_id is not None else actor.id,
        )


async def record_activity(
    contact: Contact,
    kind: ActivityKind,
    *,
    at: datetime,
    note: str | None = None,
    user_id: int | None = None,
) -> Activity:
    """R10, the one home of "an activity happened": the Activity row, lastActivityAt moved
    forward (never back), atRiskSince cleared, and engagement's status change. The caller
    holds the transaction and, where others may change the contact meanwhile, its row lock."""
    activity = await Activity.create(
        office_id=contact.office_id,
        contact_id=contact.id,
        kind=kind,
        at=at,
        note=note,
        user_id=user_id,
    )
    await touch_activity(contact, at)
    target = engagement_target(contact, kind)
    if target is not None and await change_status(
        contact, target, source=StatusSource.ENGAGEMENT, at=at, reason=kind.value
    ):
        await contact.save(update_fields=["status", "status_source", "status_updated_at"])
    return activity


async def touch_activity(contact: Contact, at: datetime) -> None:
    """R10: every activity moves lastActivityAt forward (never back) and clears atRiskSince."""
    await Contact.filter(id=contact.id).update(at_risk_since=None)
    await Contact.filter(
        Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=at), id=contact.id
    ).update(last_activity_at=at)
    if contact.last_activity_at is None or contact.last_activity_at < at:
        contact.last_activity_at = at
    contact.at_risk_since = None


async def record_activities_bulk(
    office_id: int,
    kind: ActivityKind,
    items: list[tuple[int, int | None]],
    *,
    at: datetime,
    note: str | None = None,
) -> None:
    """One activity of `kind` per (contact id, user id) in `items`, in two statements: one
    insert of the activities, one update of the contacts (R10's lastActivityAt and atRiskSince).
    Only for kinds that are not engagement (no status changes here). Contacts of other offices
    are left out. The caller holds the transaction."""
    if kind in ENGAGEMENT_KINDS:
        raise ValueError(f"{kind} is engagement: record it with record_activity")
    if not items:
        return
    if at.tzinfo is None:
        raise ValueError("`at` needs a time zone")
    # Stored in UTC: SQLite compares times as text, so every stored time shares one offset.
    at = at.astimezone(UTC)
    now = datetime.now(UTC)
    contact_ids = [contact_id for contact_id, _ in items]
    if database.dialect() == "postgres":
        await database.execute(
            "INSERT INTO activity (office_id, contact_id, kind, at, note, user_id, created_at)"
            " SELECT $1, s.contact_id, $2, $3, $4, s.user_id, $5"
            " FROM unnest($6::bigint[], $7::bigint[]) AS s(contact_id, user_id)"
            " JOIN contact c ON c.id = s.contact_id AND c.office_id = $1",
            office_id,
            kind.value,
            at,
            note,
            now,
            contact_ids,
            [user_id for _, user_id in items],
        )
        # Rows locked in id order: two batches touching the same contacts never deadlock.
        await database.execute(
            "UPDATE contact SET at_risk_since = NULL, last_activity_at = CASE"
            " WHEN last_activity_at IS NULL OR last_activity_at < $2 THEN $2"
            " ELSE last_activity_at END WHERE id IN (SELECT id FROM contact"
            " WHERE office_id = $1 AND id = ANY($3::bigint[]) ORDER BY id FOR NO KEY UPDATE)",
            office_id,
            at,
            contact_ids,
        )
        return
    await database.execute(
        "INSERT INTO activity (office_id, contact_id, kind, at, note, user_id, created_at)"
        " SELECT $1, c.id, $2, $3, $4, json_extract(s.value, '$[1]'), $5"
        " FROM json_each($6) AS s JOIN contact c"
        " ON c.id = json_extract(s.value, '$[0]') AND c.office_id = $1",
        office_id,
        kind.value,
        at,
        note,
        now,
        orjson.dumps(items).decode(),
    )
    await database.execute(
        "UPDATE contact SET at_risk_since = NULL, last_activity_at = CASE"
        " WHEN last_activity_at IS NULL OR last_activity_at < $2 THEN $2"
        " ELSE last_activity_at END"
        " WHERE office_id = $1 AND id IN (SELECT value FROM json_each($3))",
        office_id,
        at,
        orjson.dumps(contact_ids).decode(),
    )


async def activities_page(
    contact: Contact, *, first: int, after: tuple[datetime, int] | None
) -> tuple[list[Activity], bool]:
    """A contact's activities, newest first, keyset-paginated on (at, id)."""
    query = Activity.filter(contact_id=contact.id)
    if after is not None:
        at, last_id = after
        query = query.filter(Q(at__lt=at) | Q(at=at, id__lt=last_id))
    rows = await query.order_by("-at", "-id").limit(first + 1)
    return rows[:first], len(rows) > first
