"""GraphQL types, queries and mutations of CSV exports and the audit log (R12): thin
callers of api.transfers.exporter."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import strawberry

from api.audit.types import JobState
from api.contacts.filters import parse_filter
from api.contacts.types import ContactFilter
from api.core import ids
from api.core.context import Info
from api.core.graphql_types import Node, PageInfo, rows_of
from api.core.pagination import decode_id_cursor, encode_cursor, page_size
from api.core.permissions import IsAdmin, IsAuthenticated, MayExport
from api.transfers import exporter, models
from api.users.types import UserType

AuditAction = strawberry.enum(models.AuditAction)

# Stored filter keys that hold primary keys, and the global id type each stands for.
_ID_KEYS = {"owner_id": "User", "company_id": "Company"}


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


@strawberry.type(name="AuditLogEntry")
class AuditLogEntryType(Node):
    is_type_of = rows_of(models.AuditLogEntry)

    action: AuditAction
    at: datetime
    row_count: int | None = strawberry.field(
        description="Rows the export wrote; null until it is DONE (and for one that failed)."
    )

    @strawberry.field(description="Who did it; null once that user is removed.")
    async def actor(self, info: Info) -> UserType | None:
        return await info.context.loaders.user.load(self.actor_id) if self.actor_id else None

    @strawberry.field(
        description='The export\'s ContactFilter as JSON, in the input\'s own shape (camelCase, global ids): `{"status":["ACTIVE"],"ownerId":"…"}`; `{}` for none.'
    )
    def filter(self) -> str:
        return json.dumps(_filter_as_input(self.contact_filter), separators=(",", ":"))


@strawberry.type
class AuditLogEdge:
    cursor: str
    node: AuditLogEntryType


@strawberry.type
class AuditLogConnection:
    edges: list[AuditLogEdge]
    page_info: PageInfo
    _actor: strawberry.Private[Any]

    @strawberry.field
    async def total_count(self) -> int:
        return await exporter.audit_log_count(self._actor)


def _filter_as_input(stored: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key in _ID_KEYS and isinstance(value, int):
            value = ids.encode(_ID_KEYS[key], value)
        head, *rest = key.split("_")
        out[head + "".join(part.title() for part in rest)] = value
    return out


@strawberry.type
class ExportQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="An export the caller asked for (admins: any of the office's); needs canExport.",
    )
    async def export_job(self, info: Info, id: strawberry.ID) -> ExportJobType | None:
        actor = info.context.require_user()
        return await exporter.get_job(actor, ids.decode("ExportJob", id))  # type: ignore[return-value]

    @strawberry.field(
        permission_classes=[IsAdmin],
        description="The office's audit log (every export: who, when, filter, row count), newest first (admins).",
    )
    async def audit_log(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> AuditLogConnection:
        actor = info.context.require_user()
        rows, more = await exporter.audit_log_page(
            actor, first=page_size(first), after=decode_id_cursor(after)
        )
        edges = [AuditLogEdge(cursor=encode_cursor(row.id), node=row) for row in rows]  # type: ignore[arg-type]
        return AuditLogConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
            _actor=actor,
        )


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
