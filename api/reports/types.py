"""GraphQL types of the reports (R19); they arrive with the audit and reports work."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.contacts.types import CompanyType, ContactConnection, ContactStatus
from api.core.errors import NotAvailable
from api.core.graphql_types import PageInfo


@strawberry.type
class StatusCount:
    status: ContactStatus | None
    count: int


@strawberry.type
class CompanyStatusUpdate:
    company: CompanyType
    last_status_update_at: datetime | None
    contact_count: int


@strawberry.type
class CompanyStatusUpdateEdge:
    cursor: str
    node: CompanyStatusUpdate


@strawberry.type
class CompanyStatusUpdateConnection:
    edges: list[CompanyStatusUpdateEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(
    description="Every report is scoped to what the caller may see: an agent's own contacts, the whole office for admins and office-wide users."
)
class Reports:
    @strawberry.field(
        description="Over the contacts the caller sees, archived ones excluded; `status: null` counts those without status."
    )
    def status_breakdown(self) -> list[StatusCount]:
        raise NotAvailable("Reports")

    @strawberry.field
    def last_status_update_by_company(
        self, first: int | None = 50, after: str | None = None
    ) -> CompanyStatusUpdateConnection:
        raise NotAvailable("Reports")

    @strawberry.field
    def contacts_without_status(
        self, first: int | None = 50, after: str | None = None
    ) -> ContactConnection:
        raise NotAvailable("Reports")

    @strawberry.field
    def stale_contacts(
        self, days: int | None = None, first: int | None = 50, after: str | None = None
    ) -> ContactConnection:
        raise NotAvailable("Reports")

    @strawberry.field
    def at_risk_contacts(
        self, days: int | None = None, first: int | None = 50, after: str | None = None
    ) -> ContactConnection:
        raise NotAvailable("Reports")

    @strawberry.field(description="Admins and office-wide users only.")
    def unassigned_count(self) -> int | None:
        raise NotAvailable("Reports")


@strawberry.type
class ReportQueries:
    @strawberry.field
    def reports(self) -> Reports:
        return Reports()
