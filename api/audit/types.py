"""GraphQL types of the status audit."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from api.audit import models
from api.contacts.types import ContactType
from api.core.graphql_types import Node, PageInfo, rows_of
from api.core.jobs import JobState as JobStateEnum
from api.core.pagination import decode_id_cursor, encode_cursor, page_size

JobState = strawberry.enum(JobStateEnum)
AuditTrigger = strawberry.enum(models.AuditTrigger)
DiscrepancyKind = strawberry.enum(models.DiscrepancyKind)


@strawberry.type(name="Discrepancy")
class DiscrepancyType:
    kind: DiscrepancyKind

    contact: ContactType


@strawberry.type
class DiscrepancyEdge:
    cursor: str
    node: DiscrepancyType


@strawberry.type
class DiscrepancyConnection:
    edges: list[DiscrepancyEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(name="AuditRun")
class AuditRunType(Node):
    is_type_of = rows_of(models.AuditRun)

    state: JobState
    trigger: AuditTrigger
    night: date | None = strawberry.field(
        description="The office-local night of a nightly run; null for runs asked for."
    )
    dry_run: bool
    started_at: datetime | None
    finished_at: datetime | None
    at_risk: int
    at_risk_flagged: int = strawberry.field(description="Contacts this run newly flagged at risk.")
    at_risk_cleared: int = strawberry.field(description="Contacts this run found lively again.")
    stale: int
    no_status: int
    auto_inactivated: int
    discrepancies: int
    active_count: int
    inactive_count: int

    @strawberry.field(description="How long the run took, once finished.")
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    @strawberry.field(description="The contacts this run found, oldest finding first.")
    async def discrepancy_list(
        self,
        kind: DiscrepancyKind | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> DiscrepancyConnection:
        size = page_size(first)
        query = models.Discrepancy.filter(run_id=self.id)
        if kind is not None:
            query = query.filter(kind=kind)
        cursor = decode_id_cursor(after)
        page = query.filter(id__gt=cursor) if cursor is not None else query
        rows = await page.order_by("id").limit(size + 1)
        edges = [DiscrepancyEdge(cursor=encode_cursor(d.id), node=d) for d in rows[:size]]
        return DiscrepancyConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=await query.count(),
        )
