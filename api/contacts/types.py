"""GraphQL types of the contacts domain. Roots are the ORM rows themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.contacts import models, service
from api.core.context import Info
from api.core.errors import BadInput
from api.core.graphql_types import IdKeyedConnection, Node, PageInfo, rows_of, selects
from api.core.loaders import prefetch
from api.core.pagination import decode_cursor, encode_cursor, is_db_id, page_size
from api.core.permissions import MaySeeContactPII
from api.users.models import User
from api.users.types import UserType

if TYPE_CHECKING:
    from api.reports.types import StatusPeriod

ContactStatus = strawberry.enum(models.ContactStatus)
StatusSource = strawberry.enum(models.StatusSource)
ActivityKind = strawberry.enum(models.ActivityKind)


@strawberry.type(name="Company")
class CompanyType(Node):
    is_type_of = rows_of(models.Company)

    name: str


@strawberry.type(name="StatusChange")
class StatusChangeType:
    source: StatusSource
    reason: str | None
    at: datetime

    @strawberry.field(name="from")
    def from_(self) -> ContactStatus | None:
        return self.from_status

    @strawberry.field
    def to(self) -> ContactStatus | None:
        return self.to_status

    actor: UserType | None


@strawberry.type(name="Activity")
class ActivityType(Node):
    is_type_of = rows_of(models.Activity)

    kind: ActivityKind
    at: datetime
    note: str | None

    user: UserType | None


@strawberry.type
class ActivityEdge:
    cursor: str
    node: ActivityType


@strawberry.type
class ActivityConnection:
    edges: list[ActivityEdge]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self._count()


def _activity_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    key = decode_cursor(cursor, 2)
    if key is None:
        return None
    try:
        at = datetime.fromisoformat(key[0])
    except (TypeError, ValueError):
        raise BadInput("Malformed cursor", field="after") from None
    if not is_db_id(key[1]) or at.tzinfo is None:
        raise BadInput("Malformed cursor", field="after")
    return at, key[1]


@strawberry.type(name="Contact")
class ContactType(Node):
    is_type_of = rows_of(models.Contact)

    external_id: str | None
    first_name: str
    last_name: str
    email: str | None = strawberry.field(
        description="Masked (null with a FORBIDDEN error) where the field-level rules say so.",
        permission_classes=[MaySeeContactPII],
    )
    phone: str | None = strawberry.field(
        description="Masked (null with a FORBIDDEN error) where the field-level rules say so.",
        permission_classes=[MaySeeContactPII],
    )
    crm_owner_id: str | None
    status: ContactStatus | None
    status_updated_at: datetime | None
    last_activity_at: datetime | None
    at_risk_since: datetime | None
    unsubscribed: bool
    archived: bool
    erased_at: datetime | None = strawberry.field(
        description="When its personal data was erased for good (eraseContact); it stays archived."
    )

    # Foreign keys: the default resolver loads them (api.core.graphql_types).
    company: CompanyType | None
    owner: UserType | None

    @strawberry.field
    def unassigned(self) -> bool:
        return self.owner_id is None

    @strawberry.field(description="Oldest first; append-only.")
    async def status_history(self, info: Info) -> list[StatusChangeType]:
        return await info.context.loaders.status_history.load(self.id)

    @strawberry.field(
        description="The contact's statuses as consecutive periods, oldest first: from its creation (no status) through each change; the last one is current (`to` null)."
    )
    async def status_timeline(
        self, info: Info
    ) -> list[Annotated[StatusPeriod, strawberry.lazy("api.reports.types")]]:
        from api.reports.service import status_timeline
        from api.reports.types import StatusPeriod

        changes = await info.context.loaders.status_history.load(self.id)
        return [StatusPeriod.of(p) for p in status_timeline(self.created_at, changes)]

    @strawberry.field(description="Newest first.")
    async def activities(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> ActivityConnection:
        size = page_size(first, default=20)
        cursor = _activity_cursor(after)
        if cursor is None:
            # One more than asked tells whether there is a next page.
            rows = await info.context.loaders.first_activities.load((self.id, size + 1))
            rows, has_next = rows[:size], len(rows) > size
        else:
            rows, has_next = await service.activities_page(self, first=size, after=cursor)
        edges = [ActivityEdge(cursor=encode_cursor(a.at.isoformat(), a.id), node=a) for a in rows]
        contact_id = self.id
        return ActivityConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None
            ),
            _count=lambda: info.context.loaders.activity_count.load(contact_id),
        )


@strawberry.type
class ContactEdge:
    cursor: str
    node: ContactType


@strawberry.type
class ContactConnection(IdKeyedConnection):
    _page: strawberry.Private[service.ContactPage]

    @strawberry.field
    async def edges(self, info: Info) -> list[ContactEdge]:
        rows, _ = await self._page.rows()
        # Owners and companies of the whole page in one query each, side by side, before
        # the rows resolve, so each row finds its own already loaded.
        loaders = info.context.loaders
        loads = []
        if selects(info, "node", "owner"):
            loads.append(prefetch(loaders.user, User, {c.owner_id for c in rows} - {None}))
        if selects(info, "node", "company"):
            company_ids = {c.company_id for c in rows} - {None}
            loads.append(prefetch(loaders.company, models.Company, company_ids))
        await asyncio.gather(*loads)
        return [ContactEdge(cursor=encode_cursor(c.id), node=c) for c in rows]


@strawberry.input
class ContactFilter:
    status: list[ContactStatus] | None = None
    no_status: bool | None = None
    owner_id: strawberry.ID | None = None
    unassigned: bool | None = None
    company_id: strawberry.ID | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive match on name, email or company name."
    )
    at_risk: bool | None = None
    last_activity_before: datetime | None = None
    status_updated_before: datetime | None = None
    unsubscribed: bool | None = None
    include_archived: bool | None = None


@strawberry.input
class ContactInput:
    first_name: str
    last_name: str
    email: str | None = None
    phone: str | None = None
    company_name: str | None = None
    external_id: str | None = None
    crm_owner_id: str | None = None
    status: ContactStatus | None = None


@strawberry.input
class ContactPatch:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company_name: str | None = None


@strawberry.input
class ContactImportRow:
    external_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company_name: str | None = None
    crm_owner_id: str | None = None
    status: ContactStatus | None = None


@strawberry.input
class ActivityInput:
    contact_id: strawberry.ID
    kind: ActivityKind
    at: datetime | None = strawberry.field(
        default=None,
        description="Defaults to now; may lie in the past (a call logged afterwards), never in the future.",
    )
    note: str | None = None
