"""`crm demo` (api.demo.load_demo): a consistent demo office, loaded once.

The demo office's name and its users' addresses are fixed by default; each test module loads
its own office under a unique name and email domain, since the test database is shared.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from api.contacts.filters import search_text
from api.contacts.models import (
    ENGAGEMENT_KINDS,
    Activity,
    ActivityKind,
    Company,
    Contact,
    ContactStatus,
    OwnerSource,
    StatusChange,
    StatusSource,
)
from api.core import validation
from api.demo import DEMO_PASSWORD, load_demo
from api.offices.models import Office
from api.users.models import Role, User
from tests.conftest import error_codes

CONTACTS = 200

LOGIN = """
mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) { token user { email role officeWideAccess } }
}
"""


async def _load(name: str, domain: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await load_demo(contacts=CONTACTS, office_name=name, email_domain=domain)
    return out.getvalue()


@pytest.fixture(scope="module")
async def demo() -> dict:
    suffix = uuid.uuid4().hex[:8]
    name, domain = f"Harbour Realty {suffix}", f"demo-{suffix}.example"
    output = await _load(name, domain)
    office = await Office.get(name=name)
    return {"name": name, "domain": domain, "output": output, "office": office}


async def _ok(gql, query: str, login: dict) -> dict:
    """Run `query` with the token a `login` returned."""
    body = await gql(query, token=login["login"]["token"])
    assert not body.get("errors"), body["errors"]
    return body["data"]


async def _snapshot(office_id: int) -> dict:
    contacts = await Contact.filter(office_id=office_id).order_by("id").values()
    return {
        "users": await User.filter(office_id=office_id).order_by("id").values(),
        "companies": await Company.filter(office_id=office_id).count(),
        "contacts": contacts,
        "status_changes": await StatusChange.filter(office_id=office_id).count(),
        "activities": await Activity.filter(office_id=office_id).count(),
    }


async def test_demo_office_and_users(demo):
    """The office, its admin and a cast of agents covering R2/R4/R5/R6 cases; logins printed."""
    office = demo["office"]
    assert office.timezone == "Europe/London"
    users = await User.filter(office_id=office.id)
    admins = [u for u in users if u.role == Role.ADMIN]
    agents = [u for u in users if u.role == Role.AGENT]
    assert [a.email for a in admins] == [f"admin@{demo['domain']}"]
    assert 5 <= len(agents) <= 8
    active = [a for a in agents if a.active]
    inactive = [a for a in agents if not a.active]
    assert len(inactive) == 1 and inactive[0].crm_agent_id
    assert any(a.crm_agent_id is None for a in active)
    assert sum(a.crm_agent_id is not None for a in active) >= 3
    assert any(a.office_wide_access for a in active)
    assert any(a.can_export and a.can_delete for a in active)
    for user in users:
        assert user.email in demo["output"]
    assert DEMO_PASSWORD in demo["output"]


async def test_demo_contacts_follow_ownership_rule(demo):
    """R5: an owner is the active user whose crmAgentId is the contact's crmOwnerId (source
    CRM); a deactivated agent's contacts, and those of CRM ids without a user, are unassigned."""
    office = demo["office"]
    users = await User.filter(office_id=office.id)
    active_by_crm = {u.crm_agent_id: u.id for u in users if u.active and u.crm_agent_id}
    gone = {u.crm_agent_id for u in users if not u.active}
    contacts = await Contact.filter(office_id=office.id)
    assert len(contacts) == CONTACTS
    for c in contacts:
        expected = active_by_crm.get(c.crm_owner_id) if c.crm_owner_id else None
        assert c.owner_id == expected, c.external_id
        assert c.owner_source == (OwnerSource.CRM if expected else None), c.external_id
    unassigned = [c for c in contacts if c.owner_id is None]
    assert any(c.crm_owner_id in gone for c in unassigned)
    assert any(c.crm_owner_id is None for c in unassigned)
    assert any(
        c.crm_owner_id and c.crm_owner_id not in active_by_crm.keys() | gone for c in contacts
    )
    companies = {c.company_id for c in contacts if c.company_id}
    assert 20 <= len(companies) <= 40


async def test_demo_contact_fields_are_valid(demo):
    """R20/R21: every email and phone passes the product's own input checks; search text matches."""
    office = demo["office"]
    names = dict(await Company.filter(office_id=office.id).values_list("id", "name"))
    contacts = await Contact.filter(office_id=office.id)
    assert len({c.external_id for c in contacts}) == CONTACTS
    assert sum(c.email is not None for c in contacts) > CONTACTS * 0.8
    for c in contacts:
        assert validation.email(c.email) == c.email
        assert validation.phone(c.phone) == c.phone
        company = names.get(c.company_id)
        assert c.search_text == search_text(c.first_name, c.last_name, c.email, company)


async def test_demo_status_history_matches_status(demo):
    """R8: every status has its history: the last StatusChange's `to`, source and time are the
    contact's; each change starts where the previous ended. R9: no archived contact is inactive.
    R10: engagement never leaves a contact without status."""
    office = demo["office"]
    contacts = await Contact.filter(office_id=office.id)
    history = defaultdict(list)
    for change in await StatusChange.filter(office_id=office.id).order_by("at", "id"):
        history[change.contact_id].append(change)
    engaged = set(
        await Activity.filter(office_id=office.id, kind__in=list(ENGAGEMENT_KINDS)).values_list(
            "contact_id", flat=True
        )
    )
    kinds = defaultdict(int)
    for c in contacts:
        changes = history[c.id]
        previous = None
        for change in changes:
            assert change.from_status == previous, c.external_id
            assert change.to_status != previous, c.external_id
            previous = change.to_status
        if c.status is None:
            assert not changes, c.external_id
            assert c.id not in engaged, c.external_id
            kinds["none"] += 1
        else:
            last = changes[-1]
            assert (last.to_status, last.source) == (c.status, c.status_source), c.external_id
            assert last.at == c.status_updated_at, c.external_id
            kinds[(c.status, c.status_source)] += 1
        assert not (c.archived and c.status == ContactStatus.INACTIVE), c.external_id
    assert kinds["none"] > 0
    assert kinds[(ContactStatus.INACTIVE, StatusSource.USER)] > 0
    assert kinds[(ContactStatus.INACTIVE, StatusSource.AUDIT)] > 0
    assert sum(v for k, v in kinds.items() if k != "none" and k[0] == ContactStatus.ACTIVE) > 0
    sources = {ch.source for changes in history.values() for ch in changes}
    assert {StatusSource.IMPORT, StatusSource.USER, StatusSource.ENGAGEMENT} <= sources


async def test_demo_activities_match_last_activity_and_risk(demo):
    """R10/R18: lastActivityAt is the latest activity; atRiskSince is set exactly where a
    contact has had no activity for riskDays; activities of every kind over the last year."""
    office = demo["office"]
    now = datetime.now(UTC)
    contacts = await Contact.filter(office_id=office.id)
    activities = await Activity.filter(office_id=office.id).values("contact_id", "kind", "at")
    latest: dict[int, datetime] = {}
    for a in activities:
        assert now - timedelta(days=366) <= a["at"] <= now
        latest[a["contact_id"]] = max(a["at"], latest.get(a["contact_id"], a["at"]))
    assert {a["kind"] for a in activities} == set(ActivityKind)
    at_risk = 0
    for c in contacts:
        assert c.last_activity_at == latest.get(c.id), c.external_id
        assert c.created_at <= (c.last_activity_at or c.created_at), c.external_id
        if not c.archived:
            idle = now - (c.last_activity_at or c.created_at)
            assert (c.at_risk_since is not None) == (idle >= timedelta(days=office.risk_days))
            at_risk += c.at_risk_since is not None
    assert 0 < at_risk < CONTACTS / 2
    assert 0 < sum(c.unsubscribed for c in contacts) < CONTACTS / 10
    assert 0 < sum(c.archived for c in contacts) < CONTACTS / 10


async def test_demo_second_run_changes_nothing(demo):
    """`crm demo` twice: the second run writes nothing and says so."""
    office = demo["office"]
    before = await _snapshot(office.id)
    output = await _load(demo["name"], demo["domain"])
    assert "nothing changed" in output
    assert await _snapshot(office.id) == before


async def test_demo_logins_work(gql, demo):
    """Printed demo logins work through GraphQL; an agent sees only their own contacts (R2),
    the office-wide agent sees the unassigned count (R3); the deactivated one cannot log in."""
    office = demo["office"]
    users = await User.filter(office_id=office.id)
    agent = next(u for u in users if u.active and u.crm_agent_id and not u.office_wide_access)
    office_wide = next(u for u in users if u.office_wide_access)
    gone = next(u for u in users if not u.active)

    login = await gql.ok(LOGIN, {"email": agent.email, "password": DEMO_PASSWORD})
    assert login["login"]["user"] == {
        "email": agent.email,
        "role": "AGENT",
        "officeWideAccess": False,
    }
    data = await _ok(gql, "{ me { email } contacts { totalCount } }", login)
    owned = await Contact.filter(office_id=office.id, owner_id=agent.id, archived=False).count()
    assert data["me"]["email"] == agent.email
    assert data["contacts"]["totalCount"] == owned > 0

    login = await gql.ok(LOGIN, {"email": office_wide.email, "password": DEMO_PASSWORD})
    data = await _ok(gql, "{ office { name timezone unassignedCount } }", login)
    unassigned = await Contact.filter(office_id=office.id, owner_id=None, archived=False).count()
    assert data["office"] == {
        "name": demo["name"],
        "timezone": "Europe/London",
        "unassignedCount": unassigned,
    }
    assert unassigned > 0

    body = await gql(LOGIN, {"email": gone.email, "password": DEMO_PASSWORD})
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_demo_has_campaigns_ready_to_send(gql, demo):
    """Draft campaigns in the office-wide account and an agent's own, with live audiences."""
    office = demo["office"]
    admin = await User.get(office_id=office.id, role=Role.ADMIN)
    data = await gql.ok(
        "{ campaigns { edges { node { name state account audience { name size } } } } }",
        as_=admin,
    )
    campaigns = [e["node"] for e in data["campaigns"]["edges"]]
    assert {c["account"] for c in campaigns} == {"OFFICE", "USER"}
    assert {c["state"] for c in campaigns} == {"DRAFT"}
    unassigned = await Contact.filter(office_id=office.id, owner_id=None, archived=False).count()
    by_name = {c["name"]: c for c in campaigns}
    assert by_name["Spring market update (unassigned contacts)"]["audience"] == {
        "name": "Unassigned contacts",
        "size": unassigned,
    }
