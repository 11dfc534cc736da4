"""GraphQL types of the reports (R19), the status trend and the contact's status timeline."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from api.contacts.types import CompanyType, ContactConnection, ContactStatus
from api.core.context import Info
from api.core.graphql_types import PageInfo
from api.core.pagination import decode_id_cursor, encode_cursor, page_size
from api.core.permissions import IsAuthenticated, SeesWholeOffice
from api.offices import service as offices
from api.reports import service


@strawberry.type
class StatusCount:
    status: ContactStatus | None
    count: int


@strawberry.type
class StatusPeriod:
    """One stretch of a contact's status: the field `status` held from `from` to `to`."""

    status: ContactStatus | None
    from_: datetime = strawberry.field(name="from")
    to: datetime | None = strawberry.field(description="Null for the current status.")
    duration_seconds: int = strawberry.field(
        description="Seconds from `from` to `to`, or to now for the current status."
    )

    @classmethod
    def of(cls, period: service.Period) -> StatusPeriod:
        return cls(
            status=period.status,
            from_=period.start,
            to=period.end,
            duration_seconds=period.duration_seconds,
        )


@strawberry.type
class StatusTrendPoint:
    day: date = strawberry.field(name="date", description="The office-local day.")
    active: int
    inactive: int
    no_status: int
    at_risk: int


async def _company(root: CompanyStatusUpdate, info: Info) -> CompanyType:
    return await info.context.loaders.company.load(root._company_id)


@strawberry.type
class CompanyStatusUpdate:
    _company_id: strawberry.Private[int]
    company: CompanyType = strawberry.field(resolver=_company)
    last_status_update_at: datetime | None
    contact_count: int


@strawberry.type
class CompanyStatusUpdateEdge:
    cursor: str
    node: CompanyStatusUpdate


@strawberry.type
class CompanyStatusUpdateConnection:
    _page: strawberry.Private[service.CompanyStatusPage]

    @strawberry.field
    async def edges(self) -> list[CompanyStatusUpdateEdge]:
        rows, _ = await self._page.rows()
        return [
            CompanyStatusUpdateEdge(
                cursor=encode_cursor(row.company_id),
                node=CompanyStatusUpdate(
                    _company_id=row.company_id,
                    last_status_update_at=row.last_status_update_at,
                    contact_count=row.contact_count,
                ),
            )
            for row in rows
        ]

    @strawberry.field
    async def page_info(self) -> PageInfo:
        rows, has_next = await self._page.rows()
        return PageInfo(
            has_next_page=has_next,
            end_cursor=encode_cursor(rows[-1].company_id) if rows else None,
        )

    @strawberry.field(description="Companies with at least one contact the caller sees.")
    async def total_count(self) -> int:
        return await self._page.count()


@strawberry.type(
    description="Every report is scoped to what the caller may see: an agent's own contacts, the whole office for admins and office-wide users."
)
class Reports:
    @strawberry.field(
        description="Over the contacts the caller sees, archived ones excluded; `status: null` counts those without status."
    )
    async def status_breakdown(self, info: Info) -> list[StatusCount]:
        rows = await service.status_breakdown(info.context.require_user())
        return [StatusCount(status=status, count=count) for status, count in rows]

    @strawberry.field(
        description="Per company with contacts the caller sees: the latest status update and how many contacts; by company."
    )
    def last_status_update_by_company(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> CompanyStatusUpdateConnection:
        page = service.last_status_update_by_company(
            info.context.require_user(), first=page_size(first), after=decode_id_cursor(after)
        )
        return CompanyStatusUpdateConnection(_page=page)

    @strawberry.field(description="Contacts whose status was never set; newest first.")
    def contacts_without_status(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> ContactConnection:
        page = service.contacts_without_status(
            info.context.require_user(), first=page_size(first), after=decode_id_cursor(after)
        )
        return ContactConnection(_page=page)

    @strawberry.field(
        description="Contacts whose status was not updated for `days` (1..3650, default the office's staleDays), or never; newest first."
    )
    async def stale_contacts(
        self, info: Info, days: int | None = None, first: int | None = 50, after: str | None = None
    ) -> ContactConnection:
        actor = info.context.require_user()
        page = await service.stale_contacts(
            actor, days, first=page_size(first), after=decode_id_cursor(after)
        )
        return ContactConnection(_page=page)

    @strawberry.field(
        description="Contacts without activity of any kind for `days` (1..3650, default the office's riskDays), counted from their last activity or, with none, from their creation; newest first."
    )
    async def at_risk_contacts(
        self, info: Info, days: int | None = None, first: int | None = 50, after: str | None = None
    ) -> ContactConnection:
        actor = info.context.require_user()
        page = await service.at_risk_contacts(
            actor, days, first=page_size(first), after=decode_id_cursor(after)
        )
        return ContactConnection(_page=page)

    @strawberry.field(
        description="Admins and office-wide users only.", permission_classes=[SeesWholeOffice]
    )
    async def unassigned_count(self, info: Info) -> int | None:
        return await offices.unassigned_count(info.context.require_user())

    @strawberry.field(
        description="The office's status counts after the last finished audit run of each office-local day, over the last `days` days (1..3650), oldest first. Admins and office-wide users only; null with a FORBIDDEN error for others.",
        permission_classes=[SeesWholeOffice],
    )
    async def status_trend(
        self, info: Info, days: int | None = 90
    ) -> list[StatusTrendPoint] | None:
        points = await service.status_trend(
            info.context.require_user(), service.DEFAULT_TREND_DAYS if days is None else days
        )
        return [
            StatusTrendPoint(
                day=p.day,
                active=p.active,
                inactive=p.inactive,
                no_status=p.no_status,
                at_risk=p.at_risk,
            )
            for p in points
        ]


@strawberry.type
class ReportQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def reports(self) -> Reports:
        return Reports()
