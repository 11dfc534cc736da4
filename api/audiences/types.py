"""GraphQL types, queries and mutations of audiences (R13): thin callers of
api.audiences.service. Roots are the ORM rows themselves."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.audiences import models, service
from api.contacts.filters import ContactFilterSpec, parse_filter
from api.contacts.service import ContactPage
from api.contacts.types import ContactConnection, ContactFilter, ContactStatus
from api.core import ids
from api.core.context import Info
from api.core.graphql_types import Node, rows_of
from api.core.loaders import now_or_later, prefetch
from api.core.pagination import decode_id_cursor, page_size
from api.core.permissions import IsAuthenticated
from api.users.models import User
from api.users.types import UserType

SendAccount = strawberry.enum(
    models.SendAccount,
    description="Which account a campaign or audience belongs to: a user's own, or the office-wide one.",
)
AudienceKind = strawberry.enum(models.AudienceKind)


@strawberry.type(
    description="An audience's conditions, in the shape of the ContactFilter input that makes them."
)
class ContactFilterView:
    status: list[ContactStatus] | None
    no_status: bool | None
    owner_id: strawberry.ID | None
    unassigned: bool | None
    company_id: strawberry.ID | None
    search: str | None
    at_risk: bool | None
    last_activity_before: datetime | None
    status_updated_before: datetime | None
    unsubscribed: bool | None

    @classmethod
    def of(cls, spec: ContactFilterSpec) -> ContactFilterView:
        return cls(
            status=list(spec.status) if spec.status is not None else None,
            no_status=spec.no_status,
            owner_id=ids.encode("User", spec.owner_id) if spec.owner_id is not None else None,
            unassigned=spec.unassigned,
            company_id=ids.encode("Company", spec.company_id)
            if spec.company_id is not None
            else None,
            search=spec.search,
            at_risk=spec.at_risk,
            last_activity_before=spec.last_activity_before,
            status_updated_before=spec.status_updated_before,
            unsubscribed=spec.unsubscribed,
        )


@strawberry.type
class AudienceOwnerCount:
    count: int
    _owner_id: strawberry.Private[int | None]

    @strawberry.field(description="Null for the audience's unassigned contacts.")
    def owner(self, info: Info) -> UserType | None:
        if self._owner_id is None:
            return None
        return now_or_later(info.context.loaders.user, self._owner_id)


@strawberry.type
class Audience(Node):
    is_type_of = rows_of(models.Audience)

    name: str
    kind: AudienceKind
    account: SendAccount

    owner: UserType | None = strawberry.field(
        description="The user whose account holds it; null for office-wide audiences."
    )

    @strawberry.field(
        description="The number of contacts it holds now (evaluated when read; archived contacts never belong)."
    )
    async def size(self) -> int:
        return await service.size(self)  # type: ignore[arg-type]

    @strawberry.field(permission_classes=[IsAuthenticated], description="Newest first.")
    def contacts(self, first: int | None = 50, after: str | None = None) -> ContactConnection:
        page = ContactPage(
            service.members(self),  # type: ignore[arg-type]
            first=page_size(first),
            after=decode_id_cursor(after),
        )
        return ContactConnection(_page=page)

    @strawberry.field(description="Its contacts per owner, largest group first.")
    async def owner_breakdown(self, info: Info) -> list[AudienceOwnerCount]:
        counts = await service.owner_breakdown(self)  # type: ignore[arg-type]
        # Every owner in one query, before the rows' `owner` fields resolve.
        owners = {owner_id for owner_id, _ in counts if owner_id is not None}
        await prefetch(info.context.loaders.user, User, owners)
        return [AudienceOwnerCount(count=n, _owner_id=owner_id) for owner_id, n in counts]

    @strawberry.field(
        description="Its conditions; an audience of a user's account also holds only that user's contacts."
    )
    def filter(self) -> ContactFilterView:
        return ContactFilterView.of(service.spec_of(self))  # type: ignore[arg-type]


@strawberry.input
class AudienceInput:
    name: str
    account: SendAccount
    filter: ContactFilter


@strawberry.input(description="What to change in a custom audience; what is left out stays.")
class AudiencePatch:
    name: str | None = None
    filter: ContactFilter | None = None


@strawberry.type
class AudienceQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Audiences of the caller's own account; account: OFFICE lists the office-wide account's (admins and office-wide users; FORBIDDEN for others).",
    )
    async def audiences(self, info: Info, account: SendAccount | None = None) -> list[Audience]:
        return await service.list_audiences(info.context.require_user(), account)  # type: ignore[return-value]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def audience(self, info: Info, id: strawberry.ID) -> Audience | None:
        actor = info.context.require_user()
        return await service.get_visible(actor, ids.decode("Audience", id))  # type: ignore[return-value]


@strawberry.type
class AudienceMutations:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_audience(self, info: Info, input: AudienceInput) -> Audience:
        return await service.create_audience(  # type: ignore[return-value]
            info.context.require_user(), input.name, input.account, parse_filter(input.filter)
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Renames a custom audience or replaces its filter (system audiences: CONFLICT).",
    )
    async def update_audience(
        self, info: Info, id: strawberry.ID, input: AudiencePatch
    ) -> Audience:
        actor = info.context.require_user()
        audience_id = ids.decode("Audience", id)
        spec = parse_filter(input.filter) if input.filter is not None else None
        return await service.update_audience(actor, audience_id, name=input.name, spec=spec)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Deletes a custom audience (system audiences, and one a scheduled or sending campaign uses: CONFLICT).",
    )
    async def delete_audience(self, info: Info, id: strawberry.ID) -> Audience:
        return await service.delete_audience(  # type: ignore[return-value]
            info.context.require_user(), ids.decode("Audience", id)
        )
