"""Reports (R19, scoped as R2 says), the status trend of the audit runs (R18) and the contact's
status timeline (R8), through GraphQL over HTTP. Times are backdated through `logActivity(at:)`
or by writing contact rows directly; every report leaves archived contacts out (R11)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.contacts.models import ContactStatus
from api.core import ids
from tests.conftest import assert_clean, error_codes, make_office, make_user, the_error
from tests.test_defence import baseline, counting_sql, sql_of

BAD = "BAD_USER_INPUT"
ACTIVE, INACTIVE = ContactStatus.ACTIVE, ContactStatus.INACTIVE

BREAKDOWN = "{ reports { statusBreakdown { status count } } }"
BY_COMPANY = """
query($first: Int, $after: String) {
  reports {
    lastStatusUpdateByCompany(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { company { id name } lastStatusUpdateAt contactCount } }
    }
  }
}"""
PAGE = "totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } }"
WITHOUT_STATUS = f"""
query($first: Int, $after: String) {{
  reports {{ contactsWithoutStatus(first: $first, after: $after) {{ {PAGE} }} }}
}}"""
STALE = f"""
query($days: Int, $first: Int, $after: String) {{
  reports {{ staleContacts(days: $days, first: $first, after: $after) {{ {PAGE} }} }}
}}"""
AT_RISK = f"""
query($days: Int, $first: Int, $after: String) {{
  reports {{ atRiskContacts(days: $days, first: $first, after: $after) {{ {PAGE} }} }}
}}"""
UNASSIGNED = "{ reports { unassignedCount statusBreakdown { status count } } }"
TREND = """
query($days: Int) {
  reports { statusTrend(days: $days) { date active inactive noStatus atRisk } }
}"""
TREND_DEFAULT = "{ reports { statusTrend { date active inactive noStatus atRisk } } }"
TIMELINE = """
query($id: ID!) {
  contact(id: $id) {
    status
    statusHistory { from to at }
    statusTimeline { status from to durationSeconds }
  }
}"""
SET_STATUS = """
mutation($id: ID!, $status: ContactStatus!) { setContactStatus(id: $id, status: $status) { id } }
"""
LOG = "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }"
CREATE = """
mutation($input: ContactInput!) { createContact(input: $input) { id } }
"""


def cid(contact: Any) -> str:
    return ids.encode("Contact", contact.id)


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def ago(**delta: float) -> datetime:
    """A whole-second UTC time in the past (whole seconds survive every backend exactly)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


async def orm_update(contact: Any, **values: Any) -> None:
    from api.contacts.models import Contact

    await Contact.filter(id=contact.id).update(**values)


async def archive(contact: Any) -> None:
    await orm_update(contact, archived=True, archived_at=datetime.now(UTC))


async def log(gql: Any, contact: Any, kind: str, at: datetime, as_: Any) -> None:
    body = {"contactId": cid(contact), "kind": kind, "at": at.isoformat()}
    await gql.ok(LOG, {"input": body}, as_=as_)


def node_ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


def refused(body: dict[str, Any], field: str) -> None:
    assert_clean(body)
    error = the_error(body)
    assert error["extensions"] == {"code": BAD, "field": field}, body


async def walk(gql: Any, query: str, report: str, as_: Any, **variables: Any) -> list[str]:
    """The id of every row of a paginated report (the company's id for companies), page by
    page, checking pageInfo on the way."""
    seen: list[str] = []
    after = None
    while True:
        data = await gql.ok(query, {**variables, "after": after}, as_=as_)
        connection = data["reports"][report]
        for edge in connection["edges"]:
            node = edge["node"]
            seen.append(node["company"]["id"] if "company" in node else node["id"])
        info = connection["pageInfo"]
        if connection["edges"]:
            assert info["endCursor"] == connection["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            return seen
        assert len(seen) < 1000, "pagination does not end"
        after = info["endCursor"]


# --- the cast: contacts of every kind of visibility ---------------------------------------------


@pytest.fixture
async def cast(world: Any) -> dict[str, Any]:
    """Contacts of the agent (one per status), of another agent, an unassigned one, archived
    ones, and one in the foreign office: each report must count exactly the visible ones."""
    agent_active = await world.contact(owner=world.agent, status=ACTIVE)
    agent_inactive = await world.contact(owner=world.agent, status=INACTIVE)
    agent_none = await world.contact(owner=world.agent)
    other_active = await world.contact(owner=world.other_agent, status=ACTIVE)
    unassigned_none = await world.contact()
    archived_agent = await world.contact(owner=world.agent, status=ACTIVE)
    archived_unassigned = await world.contact()
    await archive(archived_agent)
    await archive(archived_unassigned)
    foreign_active = await world.contact(by=world.foreign_admin, status=ACTIVE)
    foreign_none = await world.contact(by=world.foreign_admin)
    return {
        "foreign_active": foreign_active,
        "foreign_none": foreign_none,
        "agent_active": agent_active,
        "agent_inactive": agent_inactive,
        "agent_none": agent_none,
        "other_active": other_active,
        "unassigned_none": unassigned_none,
    }


def breakdown(data: dict[str, Any]) -> dict[str | None, int]:
    rows = data["reports"]["statusBreakdown"]
    assert len({row["status"] for row in rows}) == len(rows), rows
    return {row["status"]: row["count"] for row in rows}


# --- statusBreakdown -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", {"ACTIVE": 2, "INACTIVE": 1, None: 2}),
        ("office_wide", {"ACTIVE": 2, "INACTIVE": 1, None: 2}),
        ("agent", {"ACTIVE": 1, "INACTIVE": 1, None: 1}),
        ("other_agent", {"ACTIVE": 1, "INACTIVE": 0, None: 0}),
        ("foreign_admin", {"ACTIVE": 1, "INACTIVE": 0, None: 1}),
    ],
)
async def test_status_breakdown_is_scoped(gql, world, cast, role, expected):
    """R19/R2: counts per status (null = without status) over what the caller sees; an agent
    counts their own, admins and office-wide users the office, archived ones never (R11);
    the foreign office counts only its own."""
    data = await gql.ok(BREAKDOWN, as_=getattr(world, role))
    assert breakdown(data) == expected


async def test_status_breakdown_follows_changes(gql, world, cast):
    """R19: the breakdown is live: a status change moves a contact between the counts."""
    before = breakdown(await gql.ok(BREAKDOWN, as_=world.agent))
    await gql.ok(SET_STATUS, {"id": cid(cast["agent_none"]), "status": "ACTIVE"}, as_=world.agent)
    after = breakdown(await gql.ok(BREAKDOWN, as_=world.agent))
    assert after == {**before, "ACTIVE": before["ACTIVE"] + 1, None: before[None] - 1}


async def test_status_breakdown_is_one_statement(gql, world, cast):
    """R19: the breakdown is one GROUP BY, however many contacts."""
    lookup = await baseline(gql, world.admin)
    body, statements = await sql_of(gql, BREAKDOWN, as_=world.admin)
    assert not body.get("errors"), body
    assert len(statements) == lookup + 1, statements


# --- lastStatusUpdateByCompany -------------------------------------------------------------------


@pytest.fixture
async def companies(world: Any) -> dict[str, Any]:
    """Acme: two of the agent's contacts and a later one of another agent; Globex: another
    agent's; Initech: only an archived contact; Umbrella: an unassigned, never updated one."""
    tag = uuid.uuid4().hex[:6]
    names = {key: f"{key} {tag}" for key in ("Acme", "Globex", "Initech", "Umbrella")}
    a1 = await world.contact(owner=world.agent, company_name=names["Acme"], status=ACTIVE)
    a2 = await world.contact(owner=world.agent, company_name=names["Acme"], status=INACTIVE)
    a3 = await world.contact(owner=world.other_agent, company_name=names["Acme"], status=ACTIVE)
    g1 = await world.contact(owner=world.other_agent, company_name=names["Globex"])
    i1 = await world.contact(owner=world.agent, company_name=names["Initech"], status=ACTIVE)
    u1 = await world.contact(company_name=names["Umbrella"])
    await world.contact(by=world.foreign_admin, company_name=names["Acme"], status=ACTIVE)
    times = {
        "a1": ago(days=30),
        "a2": ago(days=10),
        "a3": ago(days=2),
        "g1": ago(days=5),
        "i1": ago(days=1),
    }
    await orm_update(a1, status_updated_at=times["a1"])
    await orm_update(a2, status_updated_at=times["a2"])
    await orm_update(a3, status_updated_at=times["a3"])
    await orm_update(g1, status_updated_at=times["g1"])
    await orm_update(i1, status_updated_at=times["i1"])
    await archive(i1)
    from api.contacts.models import Company

    by_name = {
        c.name: c
        for c in await Company.filter(office_id=world.office.id, name__in=list(names.values()))
    }
    return {
        "times": times,
        "ids": {key: ids.encode("Company", by_name[name].id) for key, name in names.items()},
        "names": names,
        "u1": u1,
    }


def by_company(data: dict[str, Any]) -> dict[str, tuple[datetime | None, int]]:
    return {
        edge["node"]["company"]["id"]: (
            ts(edge["node"]["lastStatusUpdateAt"]),
            edge["node"]["contactCount"],
        )
        for edge in data["reports"]["lastStatusUpdateByCompany"]["edges"]
    }


@pytest.mark.parametrize("role", ["admin", "office_wide"])
async def test_last_status_update_by_company_for_the_office(gql, world, companies, role):
    """R19: per company, the latest statusUpdatedAt and the contact count over the office
    (unassigned contacts included, archived ones not: a company with only archived contacts
    is not listed; a never-updated company has a null date)."""
    data = await gql.ok(BY_COMPANY, as_=getattr(world, role))
    report = data["reports"]["lastStatusUpdateByCompany"]
    c, t = companies["ids"], companies["times"]
    assert by_company(data) == {
        c["Acme"]: (t["a3"], 3),
        c["Globex"]: (t["g1"], 1),
        c["Umbrella"]: (None, 1),
    }
    assert report["totalCount"] == 3
    names = {e["node"]["company"]["name"] for e in report["edges"]}
    assert names == {companies["names"][k] for k in ("Acme", "Globex", "Umbrella")}


async def test_last_status_update_by_company_for_an_agent(gql, world, companies):
    """R19/R2: an agent's report covers only their own contacts: Acme counts their two and
    its date is their latest, not the other agent's later one; other companies are absent."""
    data = await gql.ok(BY_COMPANY, as_=world.agent)
    c, t = companies["ids"], companies["times"]
    assert by_company(data) == {c["Acme"]: (t["a2"], 2)}
    assert data["reports"]["lastStatusUpdateByCompany"]["totalCount"] == 1

    other = await gql.ok(BY_COMPANY, as_=world.other_agent)
    assert by_company(other) == {c["Acme"]: (t["a3"], 1), c["Globex"]: (t["g1"], 1)}


async def test_last_status_update_by_company_foreign_office(gql, world, companies):
    """R1: the foreign office sees its own company of the same name only, none of ours."""
    data = await gql.ok(BY_COMPANY, as_=world.foreign_admin)
    report = data["reports"]["lastStatusUpdateByCompany"]
    assert report["totalCount"] == 1
    assert not set(by_company(data)) & set(companies["ids"].values())
    [edge] = report["edges"]
    assert edge["node"]["contactCount"] == 1


async def test_last_status_update_by_company_pages(gql, world, companies):
    """R19: keyset pages of one company each walk every company once, in company order,
    with totalCount the number of companies on every page."""
    everything = await gql.ok(BY_COMPANY, {"first": 100}, as_=world.admin)
    all_ids = list(by_company(everything))
    assert all_ids == sorted(all_ids, key=lambda g: ids.decode("Company", g))
    first = await gql.ok(BY_COMPANY, {"first": 1}, as_=world.admin)
    report = first["reports"]["lastStatusUpdateByCompany"]
    assert report["totalCount"] == 3
    assert report["pageInfo"]["hasNextPage"] is True
    walked = await walk(gql, BY_COMPANY, "lastStatusUpdateByCompany", world.admin, first=1)
    assert walked == all_ids
    assert len(walked) == 3


@pytest.mark.parametrize(
    ("variables", "field"),
    [({"first": 0}, "first"), ({"first": 101}, "first"), ({"after": "not-a-cursor"}, "after")],
)
async def test_last_status_update_by_company_bad_page(gql, world, variables, field):
    """R20: `first` outside 1..100 and a foreign cursor are BAD_USER_INPUT on that argument."""
    refused(await gql(BY_COMPANY, variables, as_=world.admin), field)


async def test_company_report_loads_companies_together(gql):
    """A page of 60 companies costs a constant number of statements: the companies come
    through the request's DataLoader, not one query per row."""
    from api.contacts.models import Company, Contact

    office = await make_office()
    admin = await make_user(office, "ADMIN")
    await Company.bulk_create(
        [Company(office_id=office.id, name=f"Co {n}", name_key=f"co {n}") for n in range(60)]
    )
    companies = await Company.filter(office_id=office.id)
    await Contact.bulk_create(
        [
            Contact(office_id=office.id, first_name="B", last_name=str(n), company_id=co.id)
            for n, co in enumerate(companies)
        ]
    )
    lookup = await baseline(gql, admin)
    counts = {}
    for size in (5, 60):
        with counting_sql() as statements:
            data = await gql.ok(BY_COMPANY, {"first": size}, as_=admin)
        report = data["reports"]["lastStatusUpdateByCompany"]
        assert len(report["edges"]) == size
        assert report["totalCount"] == 60
        assert {e["node"]["contactCount"] for e in report["edges"]} == {1}
        counts[size] = len(statements)
    # The caller, the page, the count, the companies.
    assert counts[5] == counts[60] == lookup + 3, counts


# --- contactsWithoutStatus -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", ["agent_none", "unassigned_none"]),
        ("office_wide", ["agent_none", "unassigned_none"]),
        ("agent", ["agent_none"]),
        ("other_agent", []),
        ("foreign_admin", ["foreign_none"]),
    ],
)
async def test_contacts_without_status_is_scoped(gql, world, cast, role, expected):
    """R19/R1/R2: contacts never given a status, of those the caller sees, archived ones out;
    the foreign office lists only its own."""
    data = await gql.ok(WITHOUT_STATUS, as_=getattr(world, role))
    report = data["reports"]["contactsWithoutStatus"]
    assert set(node_ids(report)) == {cid(cast[key]) for key in expected}
    assert report["totalCount"] == len(expected)


async def test_contacts_without_status_pages(gql, world):
    """R19: pages of two walk all five contacts without status exactly once, newest first."""
    made = [await world.contact(owner=world.agent) for _ in range(5)]
    await world.contact(owner=world.agent, status=ACTIVE)
    walked = await walk(gql, WITHOUT_STATUS, "contactsWithoutStatus", world.agent, first=2)
    assert walked == [cid(c) for c in reversed(made)]
    first = await gql.ok(WITHOUT_STATUS, {"first": 2}, as_=world.agent)
    report = first["reports"]["contactsWithoutStatus"]
    assert (len(report["edges"]), report["totalCount"]) == (2, 5)
    assert report["pageInfo"]["hasNextPage"] is True


# --- staleContacts -------------------------------------------------------------------------------


@pytest.fixture
async def stale_cast(world: Any) -> dict[str, Any]:
    """With staleDays 30: status updated 40 days ago (stale), 10 days ago (fresh) and never
    (stale), for the agent; a stale one of another agent; a stale archived one."""
    from api.offices.models import Office

    await Office.filter(id=world.office.id).update(stale_days=30)
    old = await world.contact(owner=world.agent, status=ACTIVE)
    fresh = await world.contact(owner=world.agent, status=INACTIVE)
    never = await world.contact(owner=world.agent)
    other_old = await world.contact(owner=world.other_agent, status=ACTIVE)
    archived_old = await world.contact(owner=world.agent, status=ACTIVE)
    await orm_update(old, status_updated_at=ago(days=40))
    await orm_update(fresh, status_updated_at=ago(days=10))
    await orm_update(other_old, status_updated_at=ago(days=100))
    await orm_update(archived_old, status_updated_at=ago(days=100))
    await archive(archived_old)
    return {"old": old, "fresh": fresh, "never": never, "other_old": other_old}


@pytest.mark.parametrize(
    ("role", "days", "expected"),
    [
        ("admin", None, ["old", "never", "other_old"]),
        ("office_wide", None, ["old", "never", "other_old"]),
        ("agent", None, ["old", "never"]),
        ("agent", 5, ["old", "fresh", "never"]),
        ("agent", 50, ["never"]),
        ("admin", 50, ["never", "other_old"]),
        ("other_agent", None, ["other_old"]),
        ("foreign_admin", None, []),
        ("foreign_admin", 1, []),
    ],
)
async def test_stale_contacts(gql, world, stale_cast, role, days, expected):
    """R19/R18: status not updated for `days` (default the office's staleDays) or never,
    scoped as R2 says, archived ones out."""
    data = await gql.ok(STALE, {"days": days}, as_=getattr(world, role))
    report = data["reports"]["staleContacts"]
    assert set(node_ids(report)) == {cid(stale_cast[key]) for key in expected}
    assert report["totalCount"] == len(expected)


async def test_stale_contacts_follow_the_office_setting(gql, world, stale_cast):
    """R19: the default is the office's staleDays as it is now: raising it to 60 leaves only
    the never-updated contact."""
    await gql.ok(
        "mutation { updateOfficeSettings(input: {staleDays: 60}) { id } }", as_=world.admin
    )
    data = await gql.ok(STALE, as_=world.agent)
    assert node_ids(data["reports"]["staleContacts"]) == [cid(stale_cast["never"])]


async def test_stale_contacts_pages(gql, world):
    """R19: pages of two walk every stale contact once."""
    made = [await world.contact(owner=world.agent) for _ in range(5)]
    walked = await walk(gql, STALE, "staleContacts", world.agent, first=2)
    assert walked == [cid(c) for c in reversed(made)]


# --- atRiskContacts ------------------------------------------------------------------------------


@pytest.fixture
async def risk_cast(gql: Any, world: Any) -> dict[str, Any]:
    """With riskDays 30, contacts created 100 days ago: one without any activity, one with a
    call 10 days ago, one with a deal 50 days ago, one with an email opened 20 days ago but a
    note 45 days ago; one created 5 days ago without activity; another agent's idle one; an
    idle archived one."""
    from api.offices.models import Office

    await Office.filter(id=world.office.id).update(risk_days=30)
    created = ago(days=100)
    made = {}
    for key, owner in [
        ("idle", world.agent),
        ("called", world.agent),
        ("deal", world.agent),
        ("opened", world.agent),
        ("other_idle", world.other_agent),
        ("archived_idle", world.agent),
    ]:
        made[key] = await world.contact(owner=owner)
        await orm_update(made[key], created_at=created)
    made["new"] = await world.contact(owner=world.agent)
    await orm_update(made["new"], created_at=ago(days=5))
    await log(gql, made["called"], "CALL", ago(days=10), world.agent)
    await log(gql, made["deal"], "DEAL", ago(days=50), world.agent)
    await log(gql, made["opened"], "EMAIL_OPENED", ago(days=20), world.agent)
    await log(gql, made["opened"], "TASK", ago(days=45), world.agent)
    await archive(made["archived_idle"])
    return made


@pytest.mark.parametrize(
    ("role", "days", "expected"),
    [
        ("admin", None, ["idle", "deal", "other_idle"]),
        ("office_wide", None, ["idle", "deal", "other_idle"]),
        ("agent", None, ["idle", "deal"]),
        ("agent", 60, ["idle"]),
        ("agent", 15, ["idle", "deal", "opened"]),
        ("agent", 3, ["idle", "deal", "opened", "called", "new"]),
        ("agent", 3650, []),
        ("other_agent", None, ["other_idle"]),
        ("foreign_admin", None, []),
        ("foreign_admin", 1, []),
    ],
)
async def test_at_risk_contacts(gql, world, risk_cast, role, days, expected):
    """R19/R18: no activity of any kind (deals included) for `days` (default the office's
    riskDays), counted from the last activity or, with none, from creation; a backdated
    activity counts from when it happened; scoped as R2 says, archived ones out."""
    data = await gql.ok(AT_RISK, {"days": days}, as_=getattr(world, role))
    report = data["reports"]["atRiskContacts"]
    assert set(node_ids(report)) == {cid(risk_cast[key]) for key in expected}
    assert report["totalCount"] == len(expected)


async def test_at_risk_contacts_match_the_audit(gql, world, risk_cast):
    """R18/R19: the report and the audit share one definition: after an audit run the
    contacts flagged atRiskSince are exactly those the report lists by default."""
    from api.audit.models import AuditRun, AuditTrigger
    from api.audit.service import execute_run

    run = await AuditRun.create(office_id=world.office.id, trigger=AuditTrigger.MANUAL)
    await execute_run(run.id)
    flagged = await gql.ok(
        "{ contacts(filter: {atRisk: true}, first: 100) { edges { node { id } } } }",
        as_=world.admin,
    )
    report = await gql.ok(AT_RISK, {"first": 100}, as_=world.admin)
    assert set(node_ids(flagged["contacts"])) == set(node_ids(report["reports"]["atRiskContacts"]))
    assert set(node_ids(flagged["contacts"])) == {
        cid(risk_cast[key]) for key in ("idle", "deal", "other_idle")
    }


async def test_activity_takes_a_contact_off_the_at_risk_report(gql, world, risk_cast):
    """R10/R19: logging any activity now takes the contact off the report at once."""
    await log(gql, risk_cast["idle"], "MEETING", ago(seconds=5), world.agent)
    data = await gql.ok(AT_RISK, as_=world.agent)
    assert set(node_ids(data["reports"]["atRiskContacts"])) == {cid(risk_cast["deal"])}


# --- days validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", [STALE, AT_RISK, TREND], ids=["stale", "at-risk", "trend"])
@pytest.mark.parametrize("days", [0, -1, 3651, 100_000])
async def test_days_out_of_range(gql, world, query, days):
    """R20: `days` outside 1..3650 is BAD_USER_INPUT on `days`."""
    refused(await gql(query, {"days": days}, as_=world.admin), "days")


@pytest.mark.parametrize("query", [STALE, AT_RISK, TREND], ids=["stale", "at-risk", "trend"])
@pytest.mark.parametrize("days", [1, 3650])
async def test_days_at_the_bounds(gql, world, query, days):
    """1 and 3650 are valid `days`."""
    await gql.ok(query, {"days": days}, as_=world.admin)


# --- unassignedCount -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"), [("admin", 1), ("office_wide", 1), ("foreign_admin", 2)]
)
async def test_unassigned_count(gql, world, cast, role, expected):
    """R3/R19: admins and office-wide users get the office's unassigned contacts, archived
    ones out; the foreign office counts only its own."""
    data = await gql.ok(UNASSIGNED, as_=getattr(world, role))
    assert data["reports"]["unassignedCount"] == expected


@pytest.mark.parametrize("role", ["agent", "other_agent"])
async def test_unassigned_count_forbidden_for_agents(gql, world, cast, role):
    """R3: for an agent without office-wide access unassignedCount is null with FORBIDDEN on
    that path; the rest of the reports still answer."""
    body = await gql(UNASSIGNED, as_=getattr(world, role))
    assert_clean(body)
    error = the_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["reports", "unassignedCount"]
    assert body["data"]["reports"]["unassignedCount"] is None
    assert sum(breakdown(body["data"]).values()) > 0


async def test_reports_need_a_login(gql, world):
    """R20: reports without a token are UNAUTHENTICATED."""
    body = await gql(BREAKDOWN)
    assert_clean(body)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


# --- statusTimeline ------------------------------------------------------------------------------


def expected_periods(created: datetime, history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(status, from, to) the timeline should show, from the history the API returns."""
    periods = []
    status, start = None, created
    for change in history:
        at = ts(change["at"])
        periods.append((status, start, at))
        status, start = change["to"], at
    periods.append((status, start, None))
    return periods


async def test_status_timeline_after_several_changes(gql, world):
    """R8: the timeline is the history as periods: no status from creation until a
    backdated engagement made the contact ACTIVE, then each setContactStatus; each closed
    period lasts `to - from`, the current one up to now."""
    contact = await world.contact(owner=world.agent)
    created = ago(days=10)
    await orm_update(contact, created_at=created)
    await log(gql, contact, "EMAIL_REPLIED", ago(days=6), world.agent)
    for status in ("INACTIVE", "ACTIVE", "INACTIVE"):
        await gql.ok(SET_STATUS, {"id": cid(contact), "status": status}, as_=world.agent)

    before = datetime.now(UTC)
    data = (await gql.ok(TIMELINE, {"id": cid(contact)}, as_=world.admin))["contact"]
    after = datetime.now(UTC)
    timeline = data["statusTimeline"]
    got = [(p["status"], ts(p["from"]), ts(p["to"])) for p in timeline]
    assert got == expected_periods(created, data["statusHistory"])
    assert [p["status"] for p in timeline] == [None, "ACTIVE", "INACTIVE", "ACTIVE", "INACTIVE"]
    assert timeline[-1]["status"] == data["status"]

    first = timeline[0]
    assert first["durationSeconds"] == 4 * 86400  # created 10 days ago, replied 6 days ago
    for period in timeline[:-1]:
        span = ts(period["to"]) - ts(period["from"])
        assert period["durationSeconds"] == int(span.total_seconds())
    assert timeline[1]["durationSeconds"] >= 6 * 86400 - 60
    current = timeline[-1]
    low = int((before - ts(current["from"])).total_seconds())
    high = int((after - ts(current["from"])).total_seconds())
    assert low <= current["durationSeconds"] <= high + 1


async def test_status_timeline_without_changes(gql, world):
    """R8: a contact whose status was never set has one open period without status, from
    its creation."""
    contact = await world.contact(owner=world.agent)
    created = ago(hours=3)
    await orm_update(contact, created_at=created)
    data = (await gql.ok(TIMELINE, {"id": cid(contact)}, as_=world.agent))["contact"]
    [period] = data["statusTimeline"]
    assert (period["status"], ts(period["from"]), period["to"]) == (None, created, None)
    assert 3 * 3600 <= period["durationSeconds"] <= 3 * 3600 + 60


async def test_status_timeline_of_a_contact_created_with_a_status(gql, world):
    """R8: a status given at creation leaves no zero-length period without status."""
    data = await gql.ok(
        CREATE,
        {"input": {"firstName": "Ann", "lastName": "Lee", "status": "ACTIVE"}},
        as_=world.agent,
    )
    contact_id = data["createContact"]["id"]
    data = (await gql.ok(TIMELINE, {"id": contact_id}, as_=world.agent))["contact"]
    [period] = data["statusTimeline"]
    assert period["status"] == "ACTIVE"
    assert period["to"] is None
    assert 0 <= period["durationSeconds"] < 60


async def test_status_timeline_with_engagement_before_creation(gql, world):
    """R8/R10: an engagement logged as having happened before the contact was created here
    makes it ACTIVE from its creation on; no period runs backwards."""
    contact = await world.contact(owner=world.agent)
    await log(gql, contact, "EMAIL_OPENED", ago(days=3), world.agent)
    data = (await gql.ok(TIMELINE, {"id": cid(contact)}, as_=world.agent))["contact"]
    [period] = data["statusTimeline"]
    assert period["status"] == "ACTIVE"
    assert period["to"] is None
    assert ts(period["from"]) > ts(data["statusHistory"][0]["at"])
    assert 0 <= period["durationSeconds"] < 60


async def test_status_timeline_is_scoped_with_its_contact(gql, world):
    """R1/R2: the timeline comes with the contact: another agent's contact is NOT_FOUND."""
    contact = await world.contact(owner=world.agent, status=ACTIVE)
    for user in (world.other_agent, world.foreign_admin):
        body = await gql(TIMELINE, {"id": cid(contact)}, as_=user)
        assert error_codes(body) == ["NOT_FOUND"]


TIMELINE_PAGE = """
query {
  contacts(first: %d) { edges { node { id statusTimeline { status from to durationSeconds } } } }
}"""


async def test_status_timeline_page_costs_constant_sql(gql):
    """A page of 50 contacts with their timelines costs the same statements as a page of 5,
    and at most 3: the caller, the page, every status change of the page at once."""
    from api.contacts.models import Contact, ContactStatus, StatusChange, StatusSource

    office = await make_office()
    admin = await make_user(office, "ADMIN")
    created = ago(days=30)
    await Contact.bulk_create(
        [
            Contact(office_id=office.id, first_name="T", last_name=str(n), created_at=created)
            for n in range(60)
        ]
    )
    contacts = await Contact.filter(office_id=office.id).order_by("id")
    steps = [ContactStatus.ACTIVE, ContactStatus.INACTIVE, ContactStatus.ACTIVE]
    changes = []
    for n, contact in enumerate(contacts):
        previous = None
        for k, status in enumerate(steps[: n % 4]):
            changes.append(
                StatusChange(
                    office_id=office.id,
                    contact_id=contact.id,
                    from_status=previous,
                    to_status=status,
                    source=StatusSource.USER,
                    at=created + timedelta(days=k + 1),
                )
            )
            previous = status
    await StatusChange.bulk_create(changes)

    lookup = await baseline(gql, admin)
    counts = {}
    for size in (5, 50):
        with counting_sql() as statements:
            data = await gql.ok(TIMELINE_PAGE % size, as_=admin)
        nodes = [edge["node"] for edge in data["contacts"]["edges"]]
        assert len(nodes) == size
        lengths = {len(node["statusTimeline"]) for node in nodes}
        assert lengths == {1, 2, 3, 4}, lengths
        counts[size] = len(statements)
    assert counts[5] == counts[50] == lookup + 2, counts


# --- statusTrend ---------------------------------------------------------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A time of an office-local day in Tokyo, in UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=TOKYO).astimezone(UTC)


@pytest.fixture
async def runs(world: Any) -> dict[str, date]:
    """Audit runs of a Tokyo office: one on day -40 and -3; two on day -2 (the later one
    counts); on day -1 one at 00:30 local (still day -2 in UTC) then a later dry run and a
    later failed run, both ignored; a run still going; and a foreign office's run."""
    from api.audit.models import AuditRun, AuditTrigger
    from api.core.jobs import JobState
    from api.offices.models import Office

    await Office.filter(id=world.office.id).update(timezone="Asia/Tokyo")
    today = datetime.now(TOKYO).date()
    day = {k: today - timedelta(days=k) for k in (1, 2, 3, 40)}

    async def run(office: Any, finished: datetime | None, n: int, **extra: Any) -> None:
        await AuditRun.create(
            office_id=office.id,
            trigger=AuditTrigger.MANUAL,
            state=extra.pop("state", JobState.DONE),
            started_at=finished - timedelta(seconds=30) if finished else ago(seconds=30),
            finished_at=finished,
            active_count=n,
            inactive_count=n + 1,
            no_status=n + 2,
            at_risk=n + 3,
            **extra,
        )

    await run(world.office, local(day[40], 2, 5), 400)
    await run(world.office, local(day[3], 2, 5), 30)
    await run(world.office, local(day[2], 9), 20)
    await run(world.office, local(day[2], 18), 21)
    await run(world.office, local(day[1], 0, 30), 11)
    await run(world.office, local(day[1], 10), 99, dry_run=True)
    await run(world.office, local(day[1], 11), 98, state=JobState.FAILED)
    await run(world.office, None, 97, state=JobState.RUNNING)
    await run(world.foreign_office, local(day[1], 12), 77)
    return day


def point(day: date, n: int) -> dict[str, Any]:
    return {
        "date": day.isoformat(),
        "active": n,
        "inactive": n + 1,
        "noStatus": n + 2,
        "atRisk": n + 3,
    }


@pytest.mark.parametrize("role", ["admin", "office_wide"])
async def test_status_trend(gql, world, runs, role):
    """R18/R19: one point per office-local day of the last 90 days with a finished real
    run, that day's last run; dry runs, failed and unfinished runs and other offices' runs
    are left out; days are the office's, not UTC's."""
    data = await gql.ok(TREND_DEFAULT, as_=getattr(world, role))
    assert data["reports"]["statusTrend"] == [
        point(runs[40], 400),
        point(runs[3], 30),
        point(runs[2], 21),
        point(runs[1], 11),
    ]


@pytest.mark.parametrize(
    ("days", "expected"),
    [(1, []), (2, [(1, 11)]), (3, [(2, 21), (1, 11)]), (4, [(3, 30), (2, 21), (1, 11)])],
)
async def test_status_trend_window(gql, world, runs, days, expected):
    """R19: `days` counts office-local days back from today, today included."""
    data = await gql.ok(TREND, {"days": days}, as_=world.admin)
    assert data["reports"]["statusTrend"] == [point(runs[k], n) for k, n in expected]


async def test_status_trend_other_offices(gql, world, runs):
    """R1: the foreign office's trend holds its own run only; an office without runs has none."""
    data = await gql.ok(TREND_DEFAULT, as_=world.foreign_admin)
    assert [p["active"] for p in data["reports"]["statusTrend"]] == [77]
    office = await make_office()
    empty = await gql.ok(TREND_DEFAULT, as_=await make_user(office, "ADMIN"))
    assert empty["reports"]["statusTrend"] == []


@pytest.mark.parametrize("role", ["agent", "other_agent"])
async def test_status_trend_forbidden_for_agents(gql, world, runs, role):
    """R3/R19: the trend is office-wide: an agent without office-wide access gets null with
    FORBIDDEN on that path."""
    body = await gql(TREND_DEFAULT, as_=getattr(world, role))
    assert_clean(body)
    error = the_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["reports", "statusTrend"]
    assert body["data"]["reports"]["statusTrend"] is None


async def test_status_trend_is_one_statement(gql, world, runs):
    """R19: the trend is one query, whatever the number of runs."""
    lookup = await baseline(gql, world.admin)
    body, statements = await sql_of(gql, TREND_DEFAULT, as_=world.admin)
    assert not body.get("errors"), body
    assert len(statements) == lookup + 1, statements
