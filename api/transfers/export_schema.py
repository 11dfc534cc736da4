"""GraphQL types, queries and mutations of CSV exports (R12): thin callers of
api.transfers.exporter. Exports are recorded in the audit log (api.auditlog)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.audit.types import JobState
from api.contacts.filters import parse_filter
from api.contacts.types import ContactFilter
from api.core import ids
from api.core.context import Info
from api.core.graphql_types import Node, rows_of
from api.core.permissions import IsAuthenticated, MayExport
from api.transfers import exporter, models


@strawberry.type(name="ExportJob")
class ExportJobType(Node):
    is_type_of = rows_of(models.ExportJob)

    state: JobState
    row_count: int | None = strawberry.field(
        description="Rows written so far while RUNNING; every row of the file once DONE."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field(
        description="A short-lived link to the CSV file once DONE: signed, for this job of this office only, valid EXPORT_LINK_TTL_MINUTES (15 by default) from when it is read; read the field again for a fresh one."
    )
    def download_url(self) -> str | None:
        return exporter.download_url(self)  # type: ignore[arg-type]


@strawberry.type
class ExportQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="An export the caller asked for (admins: any of the office's); needs canExport.",
    )
    async def export_job(self, info: Info, id: strawberry.ID) -> ExportJobType | None:
        actor = info.context.require_user()
        return await exporter.get_job(actor, ids.decode("ExportJob", id))  # type: ignore[return-value]


@strawberry.type
class ExportMutations:
    @strawberry.mutation(
        permission_classes=[MayExport],
        description="Exports the contacts the caller sees (matching `filter`) to a CSV file, in the background (needs canExport).",
    )
    async def export_contacts(
        self, info: Info, filter: ContactFilter | None = None
    ) -> ExportJobType:
        actor = info.context.require_user()
        return await exporter.request_export(actor, parse_filter(filter))  # type: ignore[return-value]
