"""GraphQL type and query of the office's audit log (admins): thin callers of auditlog.service."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.auditlog import models, service
from api.core import ids
from api.core.context import Info
from api.core.graphql_types import IdKeyedConnection, Node, rows_of
from api.core.pagination import decode_id_cursor, encode_cursor, page_size
from api.core.permissions import IsAdmin
from api.users.types import UserType

AuditAction = strawberry.enum(models.AuditAction)

# Stored filter keys that hold primary keys, and the global id type each stands for.
_ID_KEYS = {"owner_id": "User", "company_id": "Company"}


@strawberry.type(name="AuditLogEntry")
class AuditLogEntryType(Node):
    is_type_of = rows_of(models.AuditLogEntry)

    action: AuditAction
    at: datetime
    target: strawberry.ID | None = strawberry.field(
        description="The global id of what was acted on: a User, Contact, Campaign, ExportJob or the Office (settings)."
    )
    details: JSON | None = strawberry.field(
        description="What changed: field names, and new flag or setting values (never a password or a contact's personal data)."
    )
    row_count: int | None = strawberry.field(
        description="Rows the export wrote; null until it is DONE (and for one that failed)."
    )

    actor: UserType | None = strawberry.field(
        description="Who did it; null once that user is removed."
    )

    @strawberry.field(
        description='The export\'s ContactFilter as JSON, in the input\'s own shape (camelCase, global ids): `{"status":["ACTIVE"],"ownerId":"…"}`; `{}` for none.'
    )
    def filter(self) -> str:
        return json.dumps(_filter_as_input(self.contact_filter), separators=(",", ":"))


def _filter_as_input(stored: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key in _ID_KEYS and isinstance(value, int):
            value = ids.encode(_ID_KEYS[key], value)
        head, *rest = key.split("_")
        out[head + "".join(part.title() for part in rest)] = value
    return out


@strawberry.type
class AuditLogEdge:
    cursor: str
    node: AuditLogEntryType


@strawberry.type
class AuditLogConnection(IdKeyedConnection):
    _page: strawberry.Private[service.AuditLogPage]

    @strawberry.field
    async def edges(self) -> list[AuditLogEdge]:
        rows, _ = await self._page.rows()
        return [AuditLogEdge(cursor=encode_cursor(row.id), node=row) for row in rows]  # type: ignore[arg-type]


@strawberry.type
class AuditLogQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="The office's audit log, newest first (admins): exports, users and rights changed, password resets, contacts deleted, restored and erased, settings changed, office-wide campaigns sent; of one `action` if given.",
    )
    async def audit_log(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        action: AuditAction | None = None,
    ) -> AuditLogConnection:
        page = service.audit_log_page(
            info.context.require_user(),
            first=page_size(first),
            after=decode_id_cursor(after),
            action=action,
        )
        return AuditLogConnection(_page=page)
