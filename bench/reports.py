"""The reports (R19), first page of each, through GraphQL beside raw SQL returning the same
rows: the statements api/reports/service.py (and the loaders) send, written as Tortoise writes
them, on one asyncpg connection; bench.run compares them with what the app really sends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.core import ids
from bench.plain_app import (
    AUTH_SQL,
    COMPANIES_SQL,
    CONTACT_COLUMNS,
    COUNT_UNASSIGNED_SQL,
    USERS_SQL,
)

FIRST = 50
_NODE = (
    "edges { cursor node { id firstName lastName email status owner { id name }"
    " company { id name } } } pageInfo { hasNextPage endCursor }"
)
BREAKDOWN_QUERY = "query Bench { reports { statusBreakdown { status count } } }"
BY_COMPANY_QUERY = (
    "query Bench($first: Int!) { reports { lastStatusUpdateByCompany(first: $first) {"
    " edges { cursor node { company { id name } lastStatusUpdateAt contactCount } }"
    " pageInfo { hasNextPage endCursor } } } }"
)


def _contact_report(field: str) -> str:
    return f"query Bench($first: Int!) {{ reports {{ {field}(first: $first) {{ {_NODE} }} }} }}"


NO_STATUS_QUERY = _contact_report("contactsWithoutStatus")
STALE_QUERY = _contact_report("staleContacts")
AT_RISK_QUERY = _contact_report("atRiskContacts")
UNASSIGNED_QUERY = "query Bench { reports { unassignedCount } }"

BREAKDOWN_SQL = (
    'SELECT "status" "status",COUNT("id") "n" FROM "contact" WHERE "office_id"=$1'
    ' AND "archived"=$2 GROUP BY "status"'
)
BY_COMPANY_SQL = (
    'SELECT "company_id" "company_id",MAX("status_updated_at") "last",COUNT("id") "n"'
    ' FROM "contact" WHERE "office_id"=$1 AND "archived"=$2 AND NOT "company_id" IS NULL'
    ' GROUP BY "company_id" ORDER BY "company_id" ASC LIMIT $3'
)
OFFICE_SQL = (
    'SELECT "timezone","auto_inactivate_days","created_at","stale_days","name","id",'
    '"risk_days" FROM "office" WHERE "id"=$1 LIMIT $2'
)
_PAGE = f'SELECT {CONTACT_COLUMNS} FROM "contact" WHERE "office_id"=$1 AND "archived"=$2'
NO_STATUS_SQL = f'{_PAGE} AND "status" IS NULL ORDER BY "id" DESC LIMIT $3'
STALE_SQL = (
    f'{_PAGE} AND ("status_updated_at"<$3 OR "status_updated_at" IS NULL)'
    ' ORDER BY "id" DESC LIMIT $4'
)
AT_RISK_SQL = (
    f'{_PAGE} AND ("last_activity_at"<$3 OR ("last_activity_at" IS NULL AND "created_at"<$4))'
    ' ORDER BY "id" DESC LIMIT $5'
)


class RawReports:
    """Each report as the app runs it: the caller's user row, the office's settings where
    the report needs them, the report's statement, then the page's owners and companies."""

    def __init__(self, conn: asyncpg.Connection, office_id: int, admin_id: int) -> None:
        self.conn, self.office_id, self.admin_id = conn, office_id, admin_id

    async def _auth(self) -> None:
        await self.conn.fetchrow(AUTH_SQL, [self.admin_id])

    async def _office(self) -> Any:
        return await self.conn.fetchrow(OFFICE_SQL, self.office_id, 2)

    async def _contacts(self, sql: str, *args: Any) -> tuple[list[Any], dict, dict]:
        rows = await self.conn.fetch(sql, self.office_id, False, *args, FIRST + 1)
        page = rows[:FIRST]
        owner_ids = list(dict.fromkeys(r["owner_id"] for r in page if r["owner_id"]))
        company_ids = list(dict.fromkeys(r["company_id"] for r in page if r["company_id"]))
        owners = (
            {u["id"]: u for u in await self.conn.fetch(USERS_SQL, owner_ids)} if owner_ids else {}
        )
        companies = (
            {c["id"]: c for c in await self.conn.fetch(COMPANIES_SQL, company_ids)}
            if company_ids
            else {}
        )
        return rows, owners, companies

    async def breakdown(self) -> dict[str | None, int]:
        await self._auth()
        rows = await self.conn.fetch(BREAKDOWN_SQL, self.office_id, False)
        return {r["status"]: r["n"] for r in rows}

    async def by_company(self) -> tuple[list[Any], dict]:
        await self._auth()
        rows = await self.conn.fetch(BY_COMPANY_SQL, self.office_id, False, FIRST + 1)
        company_ids = [r["company_id"] for r in rows[:FIRST]]
        companies = {c["id"]: c for c in await self.conn.fetch(COMPANIES_SQL, company_ids)}
        return rows, companies

    async def no_status(self) -> tuple[list[Any], dict, dict]:
        await self._auth()
        return await self._contacts(NO_STATUS_SQL)

    async def stale(self) -> tuple[list[Any], dict, dict]:
        await self._auth()
        office = await self._office()
        cutoff = datetime.now(UTC) - timedelta(days=office["stale_days"])
        return await self._contacts(STALE_SQL, cutoff)

    async def at_risk(self) -> tuple[list[Any], dict, dict]:
        await self._auth()
        office = await self._office()
        cutoff = datetime.now(UTC) - timedelta(days=office["risk_days"])
        return await self._contacts(AT_RISK_SQL, cutoff, cutoff)

    async def unassigned(self) -> int:
        await self._auth()
        return await self.conn.fetchval(COUNT_UNASSIGNED_SQL, self.office_id, False)


# --------------------------------------------------------------------------- same rows


def _same_breakdown(data: Any, raw: dict[str | None, int]) -> bool:
    got = {r["status"]: r["count"] for r in data["reports"]["statusBreakdown"]}
    return got == {s: raw.get(s, 0) for s in ("ACTIVE", "INACTIVE", None)}


def _same_by_company(data: Any, raw: tuple[list[Any], dict]) -> bool:
    conn = data["reports"]["lastStatusUpdateByCompany"]
    rows, companies = raw
    nodes = [e["node"] for e in conn["edges"]]
    return conn["pageInfo"]["hasNextPage"] == (len(rows) > FIRST) and all(
        n["company"]["id"] == ids.encode("Company", r["company_id"])
        and n["company"]["name"] == companies[r["company_id"]]["name"]
        and n["contactCount"] == r["n"]
        and (
            datetime.fromisoformat(n["lastStatusUpdateAt"]) == r["last"]
            if r["last"]
            else n["lastStatusUpdateAt"] is None
        )
        for n, r in zip(nodes, rows[:FIRST], strict=True)
    )


def _same_contacts(field: str) -> Callable[[Any, Any], bool]:
    def same(data: Any, raw: tuple[list[Any], dict, dict]) -> bool:
        conn = data["reports"][field]
        rows, owners, companies = raw
        nodes = [e["node"] for e in conn["edges"]]
        return conn["pageInfo"]["hasNextPage"] == (len(rows) > FIRST) and all(
            n["id"] == ids.encode("Contact", r["id"])
            and n["status"] == r["status"]
            and (n["owner"] or {}).get("name")
            == (owners[r["owner_id"]]["name"] if r["owner_id"] else None)
            and (n["company"] or {}).get("name")
            == (companies[r["company_id"]]["name"] if r["company_id"] else None)
            for n, r in zip(nodes, rows[:FIRST], strict=True)
        )

    return same


@dataclass(frozen=True)
class Report:
    key: str
    label: str
    query: str
    variables: dict[str, Any] | None
    raw: Callable[[RawReports], Awaitable[Any]]
    same: Callable[[Any, Any], bool]


REPORTS = (
    Report(
        "statusBreakdown",
        "`reports { statusBreakdown }`",
        BREAKDOWN_QUERY,
        None,
        RawReports.breakdown,
        _same_breakdown,
    ),
    Report(
        "lastStatusUpdateByCompany",
        f"`reports {{ lastStatusUpdateByCompany(first: {FIRST}) }}` with company",
        BY_COMPANY_QUERY,
        {"first": FIRST},
        RawReports.by_company,
        _same_by_company,
    ),
    Report(
        "contactsWithoutStatus",
        f"`reports {{ contactsWithoutStatus(first: {FIRST}) }}` with owner and company",
        NO_STATUS_QUERY,
        {"first": FIRST},
        RawReports.no_status,
        _same_contacts("contactsWithoutStatus"),
    ),
    Report(
        "staleContacts",
        f"`reports {{ staleContacts(first: {FIRST}) }}` with owner and company",
        STALE_QUERY,
        {"first": FIRST},
        RawReports.stale,
        _same_contacts("staleContacts"),
    ),
    Report(
        "atRiskContacts",
        f"`reports {{ atRiskContacts(first: {FIRST}) }}` with owner and company",
        AT_RISK_QUERY,
        {"first": FIRST},
        RawReports.at_risk,
        _same_contacts("atRiskContacts"),
    ),
    Report(
        "unassignedCount",
        "`reports { unassignedCount }`",
        UNASSIGNED_QUERY,
        None,
        RawReports.unassigned,
        lambda data, raw: data["reports"]["unassignedCount"] == raw,
    ),
)


def plan_statements(office_id: int, risk_days: int, stale_days: int) -> dict[str, tuple]:
    """Each report's own statement with its arguments, for EXPLAIN ANALYZE."""
    now = datetime.now(UTC)
    risk, stale = now - timedelta(days=risk_days), now - timedelta(days=stale_days)
    return {
        "statusBreakdown": (BREAKDOWN_SQL, office_id, False),
        "lastStatusUpdateByCompany": (BY_COMPANY_SQL, office_id, False, FIRST + 1),
        "contactsWithoutStatus": (NO_STATUS_SQL, office_id, False, FIRST + 1),
        "staleContacts": (STALE_SQL, office_id, False, stale, FIRST + 1),
        "atRiskContacts": (AT_RISK_SQL, office_id, False, risk, risk, FIRST + 1),
        "unassignedCount": (COUNT_UNASSIGNED_SQL, office_id, False),
    }
