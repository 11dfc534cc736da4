"""Reports (R19) and the contact's status timeline.

Every report is scoped as R2 says through `policy.contact_scope` and leaves archived
contacts out; each is one SQL aggregate or one filtered keyset page, never a loop over
contacts in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count, Max
from tortoise.queryset import QuerySet

from api.audit.models import AuditRun
from api.audit.service import _idle
from api.contacts.models import Company, Contact, ContactStatus, StatusChange
from api.contacts.service import ContactPage
from api.core import policy, validation
from api.core.errors import Forbidden
from api.core.jobs import JobState
from api.core.pagination import LazyPage
from api.offices.models import Office
from api.users.models import User

MAX_DAYS = 3650
DEFAULT_TREND_DAYS = 90
# GraphQL's Int is 32-bit.
_MAX_INT = 2**31 - 1
# The order `statusBreakdown` lists its rows in; every status is listed, 0 when none.
_STATUSES: tuple[ContactStatus | None, ...] = (ContactStatus.ACTIVE, ContactStatus.INACTIVE, None)


def _listed(actor: User) -> QuerySet[Contact]:
    """The contacts `actor` sees (R1, R2), archived ones excluded (R11)."""
    return Contact.filter(**policy.contact_scope(actor), archived=False)


def check_days(days: int | None) -> int | None:
    """`days` of a report: 1..3650 when given (BAD_USER_INPUT on `days` otherwise)."""
    return validation.int_range(days, "days", low=1, high=MAX_DAYS)


async def _office_days(actor: User, days: int | None, setting: str) -> int:
    if days is not None:
        return days
    office = await Office.get(id=actor.office_id)
    return getattr(office, setting)


# --- status breakdown ------------------------------------------------------------------------


async def status_breakdown(actor: User) -> list[tuple[ContactStatus | None, int]]:
    """(status, count) for ACTIVE, INACTIVE and no status, in that order: one GROUP BY."""
    rows = await _listed(actor).group_by("status").annotate(n=Count("id")).values("status", "n")
    counts = {
        (ContactStatus(row["status"]) if row["status"] is not None else None): row["n"]
        for row in rows
    }
    return [(status, counts.get(status, 0)) for status in _STATUSES]


# --- last status update per company ----------------------------------------------------------


@dataclass(frozen=True)
class CompanyStatusRow:
    company_id: int
    last_status_update_at: datetime | None
    contact_count: int


class CompanyStatusPage(LazyPage[CompanyStatusRow]):
    """Companies with contacts the caller sees, by company id; rows and count are each one
    statement, run only when asked for."""

    def __init__(self, actor: User, *, first: int, after: int | None) -> None:
        super().__init__(first=first, after=after)
        self._query = _listed(actor).filter(company_id__isnull=False)

    async def fetch(self) -> list[CompanyStatusRow]:
        page = self._query
        if self.after is not None:
            page = page.filter(company_id__gt=self.after)
        rows = (
            await page.group_by("company_id")
            .annotate(last=Max("status_updated_at"), n=Count("id"))
            .order_by("company_id")
            .limit(self.first + 1)
            .values("company_id", "last", "n")
        )
        return [CompanyStatusRow(r["company_id"], r["last"], r["n"]) for r in rows]

    async def count(self) -> int:
        return await Company.filter(id__in=Subquery(self._query.values("company_id"))).count()


def last_status_update_by_company(
    actor: User, *, first: int, after: int | None
) -> CompanyStatusPage:
    return CompanyStatusPage(actor, first=first, after=after)


# --- contact lists ---------------------------------------------------------------------------


def contacts_without_status(actor: User, *, first: int, after: int | None) -> ContactPage:
    return ContactPage(_listed(actor).filter(status__isnull=True), first=first, after=after)


async def stale_contacts(
    actor: User, days: int | None, *, first: int, after: int | None
) -> ContactPage:
    """Status not updated for `days` (default the office's staleDays), or never (R18, R19)."""
    check_days(days)
    cutoff = datetime.now(UTC) - timedelta(days=await _office_days(actor, days, "stale_days"))
    query = _listed(actor).filter(
        Q(status_updated_at__lt=cutoff) | Q(status_updated_at__isnull=True)
    )
    return ContactPage(query, first=first, after=after)


async def at_risk_contacts(
    actor: User, days: int | None, *, first: int, after: int | None
) -> ContactPage:
    """No activity of any kind for `days` (default the office's riskDays), counted from the
    last activity or, with none, from creation: the audit's own definition (R18)."""
    check_days(days)
    cutoff = datetime.now(UTC) - timedelta(days=await _office_days(actor, days, "risk_days"))
    return ContactPage(_listed(actor).filter(_idle(cutoff)), first=first, after=after)


# --- status timeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    status: ContactStatus | None
    start: datetime
    end: datetime | None
    duration_seconds: int


def _seconds(start: datetime, end: datetime) -> int:
    return min(max(int((end - start).total_seconds()), 0), _MAX_INT)


def status_timeline(
    created_at: datetime, changes: list[StatusChange], now: datetime | None = None
) -> list[Period]:
    """The contact's statuses as consecutive periods, oldest first: from its creation
    (no status) through each StatusChange (oldest first), the last one open-ended.

    A change recorded at or before the start of the period it ends (a status given at
    creation, a backdated engagement) leaves no zero-length period behind: the new status
    starts where the dropped one would have."""
    now = now or datetime.now(UTC)
    periods: list[Period] = []
    status: ContactStatus | None = None
    start = created_at
    for change in changes:
        at = max(change.at, start)
        if at > start:
            periods.append(Period(status, start, at, _seconds(start, at)))
        status, start = change.to_status, at
    periods.append(Period(status, start, None, _seconds(start, max(now, start))))
    return periods


# --- status trend ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    day: date
    active: int
    inactive: int
    no_status: int
    at_risk: int


async def status_trend(actor: User, days: int) -> list[TrendPoint]:
    """One point per office-local day of the last `days` (today included) with a finished,
    non-dry-run audit run: that day's last run. One query (the office comes joined)."""
    if not policy.sees_whole_office(actor):
        raise Forbidden("Needs admin or office-wide access")
    check_days(days)
    now = datetime.now(UTC)
    # The office's time zone is not known before the query: take a day more than asked
    # (no zone is a day away from UTC) and cut on local dates below.
    runs = (
        await AuditRun.filter(
            office_id=actor.office_id,
            state=JobState.DONE,
            dry_run=False,
            finished_at__gte=now - timedelta(days=days + 1),
        )
        .select_related("office")
        .order_by("finished_at", "id")
    )
    if not runs:
        return []
    zone = ZoneInfo(runs[0].office.timezone)
    first_day = now.astimezone(zone).date() - timedelta(days=days - 1)
    last_of_day: dict[date, AuditRun] = {}
    for run in runs:
        day = run.finished_at.astimezone(zone).date()
        if day >= first_day:
            last_of_day[day] = run  # ordered by finish time: the last one wins
    return [
        TrendPoint(day, run.active_count, run.inactive_count, run.no_status, run.at_risk)
        for day, run in sorted(last_of_day.items())
    ]
