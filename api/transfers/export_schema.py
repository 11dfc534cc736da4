"""GraphQL types, queries and mutations of CSV exports and the audit log (R12)."""

from __future__ import annotations

import strawberry

from api.audit.types import JobState
from api.contacts.types import ContactFilter
from api.core.errors import NotAvailable
from api.core.graphql_types import Node


@strawberry.type
class ExportJob(Node):
    id: strawberry.ID
    state: JobState
    row_count: int | None
    download_url: str | None = strawberry.field(
        description="A short-lived link to the CSV file once DONE."
    )


@strawberry.type
class ExportQueries:
    @strawberry.field
    def export_job(self, id: strawberry.ID) -> ExportJob | None:
        raise NotAvailable("Export")


@strawberry.type
class ExportMutations:
    @strawberry.mutation
    def export_contacts(self, filter: ContactFilter | None = None) -> ExportJob:
        raise NotAvailable("Export")
