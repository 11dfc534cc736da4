"""GraphQL types, queries and mutations of CRM imports (R21)."""

from __future__ import annotations

import strawberry

from api.audit.types import JobState
from api.contacts.types import ContactImportRow
from api.core.errors import NotAvailable
from api.core.graphql_types import Node


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
class ImportQueries:
    @strawberry.field
    def import_job(self, id: strawberry.ID) -> ImportJob | None:
        raise NotAvailable("Import")


@strawberry.type
class ImportMutations:
    @strawberry.mutation
    def import_contacts(self, rows: list[ContactImportRow]) -> ImportJob:
        raise NotAvailable("Import")
