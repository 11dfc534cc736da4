"""GraphQL queries and mutations of the contacts domain: thin callers of contacts.service."""

from __future__ import annotations

import strawberry

from api.contacts import erasure, service
from api.contacts.filters import parse_filter
from api.contacts.types import (
    ActivityInput,
    ActivityType,
    ContactConnection,
    ContactFilter,
    ContactInput,
    ContactPatch,
    ContactStatus,
    ContactType,
)
from api.core import ids
from api.core.context import Info
from api.core.errors import NotFound
from api.core.pagination import decode_id_cursor, page_size
from api.core.permissions import IsAdmin, IsAuthenticated, MayDelete


@strawberry.type
class ContactQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def contact(self, info: Info, id: strawberry.ID) -> ContactType | None:
        actor = info.context.require_user()
        return await service.get_visible(actor, ids.decode("Contact", id))

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def contacts(
        self,
        info: Info,
        filter: ContactFilter | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> ContactConnection:
        page = service.list_contacts(
            info.context.require_user(),
            parse_filter(filter),
            first=page_size(first),
            after=decode_id_cursor(after),
        )
        return ContactConnection(_page=page)


def _fields(input: ContactInput | ContactPatch) -> service.ContactFields:
    return service.ContactFields(
        first_name=input.first_name,
        last_name=input.last_name,
        email=input.email,
        phone=input.phone,
        company_name=input.company_name,
    )


@strawberry.type
class ContactMutations:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_contact(self, info: Info, input: ContactInput) -> ContactType:
        return await service.create_contact(
            info.context.require_user(),
            _fields(input),
            external_id=input.external_id,
            crm_owner_id=input.crm_owner_id,
            status=input.status,
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_contact(
        self, info: Info, id: strawberry.ID, input: ContactPatch
    ) -> ContactType:
        return await service.update_contact(
            info.context.require_user(), ids.decode("Contact", id), _fields(input)
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def set_contact_status(
        self, info: Info, id: strawberry.ID, status: ContactStatus, reason: str | None = None
    ) -> ContactType:
        return await service.set_status(
            info.context.require_user(), ids.decode("Contact", id), status, reason
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Assigns the contacts to ownerId, or unassigns them when ownerId is null; returns how many changed.",
    )
    async def assign_contacts(
        self, info: Info, contact_ids: list[strawberry.ID], owner_id: strawberry.ID | None = None
    ) -> int:
        try:
            owner = ids.decode("User", owner_id, field="ownerId") if owner_id else None
        except NotFound:
            raise NotFound("User") from None
        return await service.assign_contacts(
            info.context.require_user(),
            ids.decode_many("Contact", contact_ids, field="contactIds"),
            owner,
        )

    @strawberry.mutation(
        permission_classes=[MayDelete],
        description="Archives the contact (needs canDelete); its history stays.",
    )
    async def delete_contact(self, info: Info, id: strawberry.ID) -> ContactType:
        return await service.archive_contact(info.context.require_user(), ids.decode("Contact", id))

    @strawberry.mutation(permission_classes=[MayDelete])
    async def restore_contact(self, info: Info, id: strawberry.ID) -> ContactType:
        return await service.restore_contact(info.context.require_user(), ids.decode("Contact", id))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="GDPR erasure (admins): irreversibly removes the contact's personal data (name, email, phone, externalId, company, activity notes, status reasons, delivery addresses) and archives and unsubscribes it; status history, activities and counts stay. An erased contact cannot be restored, changed or erased again (CONFLICT).",
    )
    async def erase_contact(self, info: Info, id: strawberry.ID) -> ContactType:
        return await erasure.erase_contact(info.context.require_user(), ids.decode("Contact", id))

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def log_activity(self, info: Info, input: ActivityInput) -> ActivityType:
        return await service.log_activity(
            info.context.require_user(),
            ids.decode("Contact", input.contact_id, field="contactId"),
            input.kind,
            at=input.at,
            note=input.note,
        )
