"""GraphQL types of the status audit and of import/export jobs (they arrive with their issues)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import strawberry

from api.contacts.types import ContactFilter, ContactImportRow
from api.core.errors import NotAvailable
from api.core.graphql_types import Node


@strawberry.enum
class JobState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


@strawberry.type
class AuditRun(Node):
    id: strawberry.ID
    state: JobState
    started_at: datetime | None
    finished_at: datetime | None
    at_risk: int
    stale: int
    no_status: int
    auto_inactivated: int
    discrepancies: int


@strawberry.type
class ImportError:
    row: int
    field: str | None
    message: str


@strawberry.type
class ImportJob(Node):
    id: strawberry.ID
    state: JobState
    total: int = strawberry.field(description="Rows received.")
    created: int = strawberry.field(description="Contacts this import created.")
    updated: int = strawberry.field(
        description="Existing contacts whose data this import changed (unchanged rows count in neither)."
    )
    unassigned: int = strawberry.field(
        description="Contacts of this import (created or updated) left without an owner."
    )
    errors: list[ImportError] = strawberry.field(
        description="One entry per rejected row; `row` counts the rows sent from 1 (a CSV's header is not a row)."
    )


@strawberry.type
class ExportJob(Node):
    id: strawberry.ID
    state: JobState
    row_count: int | None
    download_url: str | None = strawberry.field(
        description="A short-lived link to the CSV file once DONE."
    )


@strawberry.type
class JobQueries:
    @strawberry.field
    def audit_runs(self, first: int | None = 20) -> list[AuditRun]:
        raise NotAvailable("The status audit")

    @strawberry.field
    def import_job(self, id: strawberry.ID) -> ImportJob | None:
        raise NotAvailable("Import")

    @strawberry.field
    def export_job(self, id: strawberry.ID) -> ExportJob | None:
        raise NotAvailable("Export")


@strawberry.type
class JobMutations:
    @strawberry.mutation
    def import_contacts(self, rows: list[ContactImportRow]) -> ImportJob:
        raise NotAvailable("Import")

    @strawberry.mutation
    def export_contacts(self, filter: ContactFilter | None = None) -> ExportJob:
        raise NotAvailable("Export")

    @strawberry.mutation(description="Runs the status audit for the caller's office now (admins).")
    def run_status_audit(self) -> AuditRun:
        raise NotAvailable("The status audit")
