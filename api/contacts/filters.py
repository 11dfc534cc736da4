"""ContactFilter → SQL conditions. Audiences, exports and reports reuse this one translation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from api.contacts.models import ContactStatus
from api.core import ids, validation
from api.core.errors import BadInput

MAX_SEARCH_LENGTH = 100


@dataclass(frozen=True)
class ContactFilterSpec:
    status: tuple[ContactStatus, ...] | None = None
    no_status: bool | None = None
    owner_id: int | None = None
    unassigned: bool | None = None
    company_id: int | None = None
    search: str | None = None
    at_risk: bool | None = None
    last_activity_before: datetime | None = None
    status_updated_before: datetime | None = None
    unsubscribed: bool | None = None
    include_archived: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (datetimes as ISO text) for storing a filter."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContactFilterSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("status") is not None:
            values["status"] = tuple(ContactStatus(v) for v in values["status"])
        for key in ("last_activity_before", "status_updated_before"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


def parse_filter(raw: Any | None) -> ContactFilterSpec:
    """Validate a GraphQL ContactFilter input (or None) into a spec."""
    if raw is None:
        return ContactFilterSpec()
    search = validation.text(raw.search, "filter.search", max_length=MAX_SEARCH_LENGTH)
    times: dict[str, datetime | None] = {}
    for name, label in (
        ("last_activity_before", "lastActivityBefore"),
        ("status_updated_before", "statusUpdatedBefore"),
    ):
        value = getattr(raw, name)
        if value is not None and value.tzinfo is None:
            raise BadInput(f"`{label}` needs a time zone offset", field=f"filter.{label}")
        times[name] = value.astimezone(UTC) if value is not None else None
    return ContactFilterSpec(
        status=tuple(ContactStatus(s.value) for s in raw.status)
        if raw.status is not None
        else None,
        no_status=raw.no_status,
        owner_id=ids.decode("User", raw.owner_id, field="filter.ownerId") if raw.owner_id else None,
        unassigned=raw.unassigned,
        company_id=ids.decode("Company", raw.company_id, field="filter.companyId")
        if raw.company_id
        else None,
        search=search,
        at_risk=raw.at_risk,
        last_activity_before=times["last_activity_before"],
        status_updated_before=times["status_updated_before"],
        unsubscribed=raw.unsubscribed,
        include_archived=raw.include_archived,
    )


def filter_q(spec: ContactFilterSpec) -> Q:
    """The conditions of a filter, ANDed; visibility (policy.contact_scope) is added by callers."""
    parts: list[Q] = []
    if not spec.include_archived:
        parts.append(Q(archived=False))
    if spec.status is not None and spec.no_status:
        parts.append(Q(status__in=list(spec.status)) | Q(status__isnull=True))
    elif spec.status is not None:
        parts.append(Q(status__in=list(spec.status)))
    elif spec.no_status is not None:
        parts.append(Q(status__isnull=spec.no_status))
    if spec.owner_id is not None:
        parts.append(Q(owner_id=spec.owner_id))
    if spec.unassigned is not None:
        parts.append(Q(owner_id__isnull=spec.unassigned))
    if spec.company_id is not None:
        parts.append(Q(company_id=spec.company_id))
    if spec.search:
        parts.append(Q(search_text__contains=spec.search.lower()))
    if spec.at_risk is not None:
        parts.append(Q(at_risk_since__isnull=not spec.at_risk))
    if spec.last_activity_before is not None:
        parts.append(Q(last_activity_at__lt=spec.last_activity_before))
    if spec.status_updated_before is not None:
        parts.append(Q(status_updated_at__lt=spec.status_updated_before))
    if spec.unsubscribed is not None:
        parts.append(Q(unsubscribed=spec.unsubscribed))
    return Q(*parts) if parts else Q()


def search_text(first_name: str, last_name: str, email: str | None, company: str | None) -> str:
    """What the `search` filter matches: name, email and company name, lower-cased."""
    return " ".join(p for p in (first_name, last_name, email or "", company or "") if p).lower()
