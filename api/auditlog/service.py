"""The audit log: `record`, the one writer every privileged action calls, and the admins' read.

Callers call `record` inside their own transaction where they have one, so the action and its
entry commit (or roll back) together. An entry names its target by global id and says what
changed in `details`: field names, and new flag or setting values. A password, or anything of
a contact's personal data, never goes in: the log outlives a GDPR erasure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum
from typing import Any

from tortoise.queryset import QuerySet

from api.auditlog.models import AuditAction, AuditLogEntry
from api.core import policy
from api.core.errors import Forbidden
from api.core.pagination import LazyPage
from api.users.models import User

# Keys `details` may never carry, at any depth (lower-cased, without "_"): secrets, and the
# fields of a contact that identify a person.
_NEVER_IN_DETAILS = frozenset(
    {"password", "passwordhash", "token", "email", "phone", "firstname", "lastname", "note"}
)


async def record(
    actor: User,
    action: AuditAction,
    *,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    contact_filter: dict[str, Any] | None = None,
    export_job_id: int | None = None,
) -> AuditLogEntry:
    """Append one entry: `actor` did `action` to `target` (a global id) in their office.
    `contact_filter` and `export_job_id` are an export's (R12): its filter as stored, and the
    job whose row count fills the entry in once done."""
    if details is not None:
        _require_clean(details)
    return await AuditLogEntry.create(
        office_id=actor.office_id,
        actor_id=actor.id,
        action=action,
        target=target,
        details=details,
        contact_filter=contact_filter or {},
        export_job_id=export_job_id,
    )


async def record_changes(
    actor: User,
    action: AuditAction,
    *,
    target: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    values_of: Collection[str] = (),
) -> AuditLogEntry | None:
    """Append an entry of `action` when something changed from `before` to `after` (see
    `changes`); nothing when nothing did."""
    details = changes(before, after, values_of=values_of)
    if details is None:
        return None
    return await record(actor, action, target=target, details=details)


def changes(
    before: Mapping[str, Any], after: Mapping[str, Any], *, values_of: Collection[str] = ()
) -> dict[str, Any] | None:
    """`details` of a change from `before` to `after` (snake_case keys): the `fields` that
    changed, camelCase as clients spell them, and the new `values` of those in `values_of`
    (the others are named only). None when nothing changed."""
    changed = [name for name, value in after.items() if before.get(name) != value]
    if not changed:
        return None
    return {
        "fields": [_camel(name) for name in changed],
        "values": {_camel(name): _plain(after[name]) for name in changed if name in values_of},
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _require_clean(value: Any) -> None:
    """A programming error, not a client's: refuse details that would keep a secret or a
    contact's personal data for good."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if str(key).replace("_", "").lower() in _NEVER_IN_DETAILS:
                raise ValueError(f"Audit log details must not hold {key!r}")
            _require_clean(inner)
    elif isinstance(value, list):
        for inner in value:
            _require_clean(inner)


class AuditLogPage(LazyPage[AuditLogEntry]):
    """A page of the office's audit log, newest first."""

    def __init__(self, query: QuerySet[AuditLogEntry], *, first: int, after: int | None) -> None:
        super().__init__(first=first, after=after)
        self._query = query

    async def fetch(self) -> list[AuditLogEntry]:
        page = self._query.filter(id__lt=self.after) if self.after is not None else self._query
        return await page.order_by("-id").limit(self.first + 1)

    async def count(self) -> int:
        return await self._query.count()


def audit_log_page(
    actor: User, *, first: int, after: int | None, action: AuditAction | None = None
) -> AuditLogPage:
    """`auditLog` (admins): the office's entries, newest first, of one action if given."""
    if not policy.is_admin(actor):
        raise Forbidden("Only admins read the audit log")
    query = AuditLogEntry.filter(office_id=actor.office_id)
    if action is not None:
        query = query.filter(action=action)
    return AuditLogPage(query, first=first, after=after)
