"""GraphQL types, queries and mutations of CRM imports (R21): thin callers of
api.transfers.importer."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.file_uploads import Upload

from api.audit.types import JobState
from api.contacts.types import ContactImportRow
from api.core import ids
from api.core.context import Info
from api.core.errors import BadInput
from api.core.graphql_types import Node, rows_of
from api.core.pagination import page_size
from api.core.permissions import IsAuthenticated
from api.transfers import importer, models

ImportSource = strawberry.enum(
    models.ImportSource, description="Which door an import came through."
)


@strawberry.type
class ImportError:
    row: int
    field: str | None
    message: str


@strawberry.type(name="ImportJob")
class ImportJobType(Node):
    is_type_of = rows_of(models.ImportJob)

    state: JobState
    total: int = strawberry.field(description="Rows received.")
    processed: int = strawberry.field(
        description="Rows dealt with so far (landed, unchanged or refused): the progress."
    )
    created: int = strawberry.field(description="Contacts this import created.")
    updated: int = strawberry.field(
        description="Existing contacts whose data this import changed (unchanged rows count in neither)."
    )
    unassigned: int = strawberry.field(
        description="Contacts of this import (created or updated) left without an owner."
    )
    error_count: int = strawberry.field(description="Rows refused (each has an entry in errors).")
    unknown_columns: list[str] = strawberry.field(
        description="Columns of a CSV file that were ignored: no field matches their header, or an earlier column already gave that field."
    )
    source: ImportSource
    file_name: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field(
        description="One entry per rejected row; `row` counts the rows sent from 1 (a CSV's header is not a row). In row order, `first` at a time (errorCount has them all); `afterRow` pages on."
    )
    async def errors(
        self, first: int | None = 100, after_row: int | None = None
    ) -> list[ImportError]:
        return await importer.row_errors(
            self.id, first=page_size(first, default=100), after_row=after_row
        )


@strawberry.type
class ImportQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="An import of the caller's office, with its progress (admins).",
    )
    async def import_job(self, info: Info, id: strawberry.ID) -> ImportJobType | None:
        return await importer.get_job(info.context.require_user(), ids.decode("ImportJob", id))


@strawberry.type
class ImportMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Imports contacts (admins): upserts by externalId in a background job.",
    )
    async def import_contacts(self, info: Info, rows: list[ContactImportRow]) -> ImportJobType:
        actor = info.context.require_user()
        importer.require_may_import(actor)
        return await importer.request_import(
            actor, importer.graphql_rows(rows), source=models.ImportSource.GRAPHQL
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Imports a CRM's CSV export (admins), sent as a GraphQL multipart request: the same job as importContacts.",
    )
    async def import_contacts_csv(self, info: Info, file: Upload) -> ImportJobType:
        actor = info.context.require_user()
        importer.require_may_import(actor)
        data = await _read_upload(file)
        return await importer.request_csv_import(
            actor, data, file_name=getattr(file, "filename", None)
        )


async def _read_upload(file: object) -> bytes:
    """The upload's bytes, refusing more than the importer takes without reading them all."""
    read = getattr(file, "read", None)
    if read is None:
        raise BadInput("Send the file as a multipart upload", field="file")
    data = await read(importer.MAX_CSV_BYTES + 1)
    return data if isinstance(data, bytes) else data.encode()
