"""GraphQL queries and mutations of the status audit: thin callers of audit.service."""

from __future__ import annotations

import strawberry

from api.audit import service
from api.audit.types import AuditRunType
from api.core.context import Info
from api.core.pagination import page_size
from api.core.permissions import IsAdmin, SeesWholeOffice


@strawberry.type
class AuditQueries:
    @strawberry.field(
        permission_classes=[SeesWholeOffice],
        description="The office's audit runs, newest first (admins and office-wide users).",
    )
    async def audit_runs(self, info: Info, first: int | None = 20) -> list[AuditRunType]:
        return await service.list_runs(info.context.require_user(), first=page_size(first))


@strawberry.type
class AuditMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Runs the status audit for the caller's office now (admins).",
    )
    async def run_status_audit(self, info: Info, dry_run: bool | None = False) -> AuditRunType:
        return await service.request_audit(info.context.require_user(), dry_run=bool(dry_run))
