"""The status audit (R18), on rows backdated through logActivity (`at` in the past) and the
ORM: at-risk flags, stale and no-status counts, automatic inactivation, discrepancies, a
second run and a dry run, tenancy, archived contacts; through GraphQL (runStatusAudit,
auditRuns, discrepancyList) and through both actor paths (in-process worker, `crm worker`)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.audit import service
from api.audit.models import AuditRun, Discrepancy
from api.contacts.models import Contact, ContactStatus, StatusChange
from api.core import ids
from api.core.jobs import JobState
from tests.conftest import assert_clean, error_codes, make_user
from tests.workers_for_tests import crm_worker, drain_in_process, wait_until_finished

RUN = """
mutation($dryRun: Boolean) {
  runStatusAudit(dryRun: $dryRun) { id state trigger night dryRun startedAt finishedAt durationMs }
}"""
RUN_FIELDS = """
  id state trigger night dryRun startedAt finishedAt durationMs
  atRisk atRiskFlagged atRiskCleared stale noStatus autoInactivated discrepancies
  activeCount inactiveCount
"""
RUNS = f"query {{ auditRuns {{ {RUN_FIELDS} }} }}"
FINDINGS = """
query($kind: DiscrepancyKind, $first: Int, $after: String) {
  auditRuns(first: 1) {
    id
    discrepancyList(kind: $kind, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { kind contact { id } } }
    }
  }
}"""
CONTACT = """
query($id: ID!) {
  contact(id: $id) {
    id status statusUpdatedAt lastActivityAt atRiskSince
    statusHistory { from to source reason at actor { id } }
  }
}"""
AT_RISK = "query { contacts(filter: {atRisk: true}, first: 100) { edges { node { id } } } }"
LOG = "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }"
SETTINGS = """
mutation($input: OfficeSettingsInput!) {
  updateOfficeSettings(input: $input) { settings { riskDays staleDays autoInactivateDays } }
}"""
SET_STATUS = """
mutation($id: ID!, $status: ContactStatus!) { setContactStatus(id: $id, status: $status) { id } }
"""
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { id archived } }"
DEACTIVATE = "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id active } }"

COUNTS = (
    "atRisk",
    "atRiskFlagged",
    "atRiskCleared",
    "stale",
    "noStatus",
    "autoInactivated",
    "discrepancies",
    "activeCount",
    "inactiveCount",
)


# --- helpers ---------------------------------------------------------------------------


def cid(contact: Any) -> str:
    return ids.encode("Contact", contact.id)


def ago(**delta: float) -> datetime:
    """A whole-second UTC time in the past."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


async def backdate(contact: Any, **values: Any) -> None:
    """Write columns the API never lets a client set (created_at, status_updated_at, ...)."""
    await Contact.filter(id=contact.id).update(**values)


async def log(gql: Any, contact: Any, kind: str, as_: Any, at: datetime | None = None) -> None:
    body: dict[str, Any] = {"contactId": cid(contact), "kind": kind}
    if at is not None:
        body["at"] = at.isoformat()
    await gql.ok(LOG, {"input": body}, as_=as_)


async def read(gql: Any, contact: Any, as_: Any) -> dict[str, Any]:
    return (await gql.ok(CONTACT, {"id": cid(contact)}, as_=as_))["contact"]


async def settings(gql: Any, admin: Any, **values: Any) -> None:
    await gql.ok(SETTINGS, {"input": values}, as_=admin)


async def archive(gql: Any, contact: Any, admin: Any) -> None:
    data = await gql.ok(DELETE, {"id": cid(contact)}, as_=admin)
    assert data["deleteContact"]["archived"] is True


async def snapshot(office: Any) -> list[dict[str, Any]]:
    """Every column of every contact of the office (archived ones included)."""
    return await Contact.filter(office_id=office.id).order_by("id").values()


async def history_count(office: Any) -> int:
    return await StatusChange.filter(office_id=office.id).count()


async def listed_run(gql: Any, admin: Any, run_id: str) -> dict[str, Any]:
    runs = (await gql.ok(RUNS, as_=admin))["auditRuns"]
    [run] = [r for r in runs if r["id"] == run_id]
    return run


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records what is sent to the audit actor instead of sending it: the tests carry runs
    out themselves with `execute_run`."""
    from workers.audit import run_status_audit

    calls: list[int] = []
    monkeypatch.setattr(run_status_audit, "send", lambda run_id: calls.append(run_id))
    return calls


async def audit(gql: Any, admin: Any, *, dry_run: bool = False) -> dict[str, Any]:
    """runStatusAudit as `admin`, carried out with the service's execute_run; the finished
    run as auditRuns lists it. Needs the `sent` fixture."""
    queued = (await gql.ok(RUN, {"dryRun": dry_run}, as_=admin))["runStatusAudit"]
    assert queued["state"] == "QUEUED"
    assert queued["dryRun"] is dry_run
    await service.execute_run(ids.decode("AuditRun", queued["id"]))
    run = await listed_run(gql, admin, queued["id"])
    assert run["state"] == "DONE", run
    return run


async def findings(gql: Any, admin: Any, kind: str | None = None) -> list[tuple[str, str]]:
    """(kind, contact id) of every discrepancy of the office's latest run, page by page."""
    found: list[tuple[str, str]] = []
    after = None
    for _ in range(100):
        variables = {"kind": kind, "first": 2, "after": after}
        [run] = (await gql.ok(FINDINGS, variables, as_=admin))["auditRuns"]
        page = run["discrepancyList"]
        found += [(e["node"]["kind"], e["node"]["contact"]["id"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            assert page["totalCount"] == len(found)
            return found
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("discrepancyList never ended")


# --- GraphQL: runStatusAudit, auditRuns, who may --------------------------------------


async def test_run_status_audit_queues_a_run_that_audit_runs_lists(gql, world, sent):
    """R18: runStatusAudit (admins) records a QUEUED MANUAL run and sends it to the workers;
    auditRuns lists it with its counts, its times and durationMs once DONE."""
    await world.contact(owner=world.agent)
    queued = (await gql.ok(RUN, as_=world.admin))["runStatusAudit"]
    assert queued["state"] == "QUEUED"
    assert queued["trigger"] == "MANUAL"
    assert queued["night"] is None
    assert queued["dryRun"] is False
    assert queued["startedAt"] is queued["finishedAt"] is queued["durationMs"] is None
    pk = ids.decode("AuditRun", queued["id"])
    assert sent == [pk]

    listed = (await gql.ok(RUNS, as_=world.admin))["auditRuns"]
    assert [r["id"] for r in listed] == [queued["id"]]
    assert listed[0]["state"] == "QUEUED"

    before = datetime.now(UTC) - timedelta(seconds=1)
    await service.execute_run(pk)
    after = datetime.now(UTC) + timedelta(seconds=1)
    run = await listed_run(gql, world.admin, queued["id"])
    assert run["state"] == "DONE"
    started, finished = ts(run["startedAt"]), ts(run["finishedAt"])
    assert before <= started <= finished <= after
    assert run["durationMs"] == int((finished - started).total_seconds() * 1000)
    assert run["noStatus"] == 1 and run["stale"] == 1 and run["activeCount"] == 0

    # Newest first; office-wide users read them too; another office sees none of them (R1).
    second = (await gql.ok(RUN, {"dryRun": True}, as_=world.admin))["runStatusAudit"]
    listed = (await gql.ok(RUNS, as_=world.office_wide))["auditRuns"]
    assert [r["id"] for r in listed] == [second["id"], queued["id"]]
    assert (await gql.ok(RUNS, as_=world.foreign_admin))["auditRuns"] == []


async def test_agents_may_neither_run_nor_list_audits(gql, world, sent):
    """R18/R4: runStatusAudit is for admins, auditRuns for admins and office-wide users."""
    for user in (world.agent, world.office_wide):
        body = await gql(RUN, as_=user)
        assert error_codes(body) == ["FORBIDDEN"]
        assert body.get("data") is None
    body = await gql(RUNS, as_=world.agent)
    assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(await gql(RUNS)) == ["UNAUTHENTICATED"]
    assert sent == []
    assert not await AuditRun.filter(office_id=world.office.id).exists()


# --- at risk ---------------------------------------------------------------------------


async def test_at_risk_flags_contacts_idle_for_risk_days(gql, world, sent):
    """R18: atRiskSince is set on contacts with no activity of any kind (deals included) for
    riskDays, counted from their last activity or, without one, from their creation here."""
    admin = world.admin
    old_call = await world.contact(owner=world.agent)
    await backdate(old_call, created_at=ago(days=200))
    await log(gql, old_call, "CALL", admin, at=ago(days=100))
    recent_deal = await world.contact(owner=world.agent)
    await backdate(recent_deal, created_at=ago(days=200))
    await log(gql, recent_deal, "CALL", admin, at=ago(days=150))
    await log(gql, recent_deal, "DEAL", admin, at=ago(days=10))
    recent_meeting = await world.contact()
    await backdate(recent_meeting, created_at=ago(days=200))
    await log(gql, recent_meeting, "MEETING", admin, at=ago(days=89))
    never_old = await world.contact()
    await backdate(never_old, created_at=ago(days=91))
    never_new = await world.contact()
    await backdate(never_new, created_at=ago(days=89))
    gone = await world.contact()
    await backdate(gone, created_at=ago(days=300))
    await archive(gql, gone, admin)

    before = datetime.now(UTC) - timedelta(seconds=1)
    run = await audit(gql, admin)
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert (run["atRiskFlagged"], run["atRisk"], run["atRiskCleared"]) == (2, 2, 0)
    for contact in (old_call, never_old):
        since = ts((await read(gql, contact, admin))["atRiskSince"])
        assert since is not None and before <= since <= after
    for contact in (recent_deal, recent_meeting, never_new):
        assert (await read(gql, contact, admin))["atRiskSince"] is None
    edges = (await gql.ok(AT_RISK, as_=admin))["contacts"]["edges"]
    assert {e["node"]["id"] for e in edges} == {cid(old_call), cid(never_old)}


async def test_at_risk_clears_when_lively_again_or_risk_days_change(gql, world, sent):
    """R18/R10: an activity clears atRiskSince at once and the next run leaves it clear; a
    contact whose last activity is recent again is cleared by the run; raising riskDays
    clears, lowering it flags."""
    admin = world.admin
    a = await world.contact(owner=world.agent)
    await backdate(a, created_at=ago(days=200), last_activity_at=ago(days=100))
    b = await world.contact(owner=world.agent)
    await backdate(b, created_at=ago(days=200), last_activity_at=ago(days=130))
    c = await world.contact()
    await backdate(c, created_at=ago(days=95))
    d = await world.contact()
    await backdate(d, created_at=ago(days=60))
    run = await audit(gql, admin)
    assert (run["atRiskFlagged"], run["atRisk"]) == (3, 3)
    flagged_at = (await read(gql, b, admin))["atRiskSince"]

    # An activity clears the flag at once (R10), and the audit does not set it again.
    await log(gql, a, "CALL", world.agent)
    assert (await read(gql, a, admin))["atRiskSince"] is None
    # Lively again without passing through logActivity (a last activity written by a sync).
    await backdate(c, last_activity_at=ago(days=1))
    run = await audit(gql, admin)
    assert (run["atRiskFlagged"], run["atRiskCleared"], run["atRisk"]) == (0, 1, 1)
    assert (await read(gql, a, admin))["atRiskSince"] is None
    assert (await read(gql, c, admin))["atRiskSince"] is None
    # The one still idle keeps the time it was first flagged.
    assert (await read(gql, b, admin))["atRiskSince"] == flagged_at

    await settings(gql, admin, riskDays=150)
    run = await audit(gql, admin)
    assert (run["atRiskFlagged"], run["atRiskCleared"], run["atRisk"]) == (0, 1, 0)
    assert (await read(gql, b, admin))["atRiskSince"] is None

    await settings(gql, admin, riskDays=30)
    run = await audit(gql, admin)
    # b (130 days) and d (created 60 days ago, no activity) are idle for 30 days.
    assert (run["atRiskFlagged"], run["atRiskCleared"], run["atRisk"]) == (2, 0, 2)
    edges = (await gql.ok(AT_RISK, as_=admin))["contacts"]["edges"]
    assert {e["node"]["id"] for e in edges} == {cid(b), cid(d)}


# --- stale and no status ---------------------------------------------------------------


async def test_stale_and_no_status_counts(gql, world, sent):
    """R18: stale = status not updated for staleDays, or never; noStatus = no status;
    archived contacts are not counted; staleDays is read at each run."""
    none = await world.contact(owner=world.agent)
    await backdate(none, created_at=ago(days=2))
    await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)  # fresh
    old_active = await world.contact(status=ContactStatus.ACTIVE)
    await backdate(old_active, status_updated_at=ago(days=200))
    old_inactive = await world.contact(status=ContactStatus.INACTIVE)
    await backdate(old_inactive, status_updated_at=ago(days=181))
    younger = await world.contact(status=ContactStatus.ACTIVE)
    await backdate(younger, status_updated_at=ago(days=179))
    gone = await world.contact()
    await archive(gql, gone, world.admin)

    run = await audit(gql, world.admin)
    assert (run["stale"], run["noStatus"]) == (3, 1)
    assert (run["activeCount"], run["inactiveCount"]) == (3, 1)

    await settings(gql, world.admin, staleDays=150)
    run = await audit(gql, world.admin)
    assert (run["stale"], run["noStatus"]) == (4, 1)


# --- automatic inactivation ------------------------------------------------------------


async def test_auto_inactivation_is_off_by_default(gql, world, sent):
    """R18: with autoInactivateDays unset (the default), or set back to 0, no status moves."""
    idle_active = await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)
    idle_none = await world.contact(owner=world.agent)
    for contact in (idle_active, idle_none):
        await backdate(contact, created_at=ago(days=400), last_activity_at=ago(days=400))
    history = await history_count(world.office)

    run = await audit(gql, world.admin)
    assert run["autoInactivated"] == 0
    assert (run["activeCount"], run["inactiveCount"], run["noStatus"]) == (1, 0, 1)
    await settings(gql, world.admin, autoInactivateDays=30)
    await settings(gql, world.admin, autoInactivateDays=0)
    run = await audit(gql, world.admin)
    assert run["autoInactivated"] == 0
    assert (await read(gql, idle_active, world.admin))["status"] == "ACTIVE"
    assert (await read(gql, idle_none, world.admin))["status"] is None
    assert await history_count(world.office) == history


async def test_auto_inactivation_moves_idle_contacts_once_and_engagement_reactivates(
    gql, world, sent
):
    """R18/R8/R10: with autoInactivateDays on, idle ACTIVE and no-status contacts become
    INACTIVE with one StatusChange each (source AUDIT); inactive and archived ones are left
    alone; engagement afterwards reactivates what the audit inactivated."""
    admin = world.admin
    data = await gql.ok(SETTINGS, {"input": {"autoInactivateDays": 30}}, as_=admin)
    assert data["updateOfficeSettings"]["settings"]["autoInactivateDays"] == 30

    idle_active = await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)
    await backdate(idle_active, created_at=ago(days=100))
    await log(gql, idle_active, "CALL", admin, at=ago(days=40))
    idle_none = await world.contact(owner=world.agent)
    await backdate(idle_none, created_at=ago(days=31))
    lively_active = await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)
    await backdate(lively_active, created_at=ago(days=100))
    await log(gql, lively_active, "DEAL", admin, at=ago(days=29))
    lively_none = await world.contact()
    await backdate(lively_none, created_at=ago(days=100))
    await log(gql, lively_none, "TASK", admin, at=ago(days=5))
    inactive = await world.contact(owner=world.agent, status=ContactStatus.INACTIVE)
    await backdate(inactive, created_at=ago(days=50), status_updated_at=ago(days=40))
    gone = await world.contact(status=ContactStatus.ACTIVE)
    await backdate(gone, created_at=ago(days=100))
    await archive(gql, gone, admin)
    untouched = [lively_active, lively_none, inactive, gone]
    rows_before = {r["id"]: r for r in await snapshot(world.office)}
    history = await history_count(world.office)

    before = datetime.now(UTC) - timedelta(seconds=1)
    run = await audit(gql, admin)
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert run["autoInactivated"] == 2
    assert (run["activeCount"], run["inactiveCount"], run["noStatus"]) == (1, 3, 1)
    assert await history_count(world.office) == history + 2

    for contact, was in ((idle_active, "ACTIVE"), (idle_none, None)):
        seen = await read(gql, contact, admin)
        assert seen["status"] == "INACTIVE"
        [change] = [h for h in seen["statusHistory"] if h["source"] == "AUDIT"]
        assert seen["statusHistory"][-1] == change
        assert (change["from"], change["to"], change["actor"]) == (was, "INACTIVE", None)
        assert before <= ts(change["at"]) <= after
        assert ts(seen["statusUpdatedAt"]) == ts(change["at"])
    rows_after = {r["id"]: r for r in await snapshot(world.office)}
    for contact in untouched:
        assert rows_after[contact.id] == rows_before[contact.id]

    # R10: engagement brings back what the audit inactivated, and only that.
    await log(gql, idle_active, "EMAIL_OPENED", world.agent)
    await log(gql, inactive, "EMAIL_OPENED", world.agent)
    seen = await read(gql, idle_active, admin)
    assert seen["status"] == "ACTIVE"
    last = seen["statusHistory"][-1]
    assert (last["from"], last["to"], last["source"]) == ("INACTIVE", "ACTIVE", "ENGAGEMENT")
    assert (await read(gql, inactive, admin))["status"] == "INACTIVE"


# --- discrepancies ---------------------------------------------------------------------


async def test_each_discrepancy_kind_is_found(gql, world, sent):
    """R18: inactive yet engaged since (INACTIVE set by a person), owner deactivated, one
    email on several contacts (each reported), invalid email; discrepancyList pages them."""
    admin = world.admin
    suffix = uuid.uuid4().hex[:8]

    engaged = await world.contact(owner=world.agent)
    await gql.ok(SET_STATUS, {"id": cid(engaged), "status": "INACTIVE"}, as_=admin)
    await log(gql, engaged, "EMAIL_REPLIED", world.agent)
    # Not discrepancies: engagement before the person's change, or no engagement since.
    engaged_before = await world.contact(owner=world.agent)
    await gql.ok(SET_STATUS, {"id": cid(engaged_before), "status": "INACTIVE"}, as_=admin)
    await log(gql, engaged_before, "EMAIL_OPENED", world.agent, at=ago(days=1))
    called = await world.contact(owner=world.agent)
    await gql.ok(SET_STATUS, {"id": cid(called), "status": "INACTIVE"}, as_=admin)
    await log(gql, called, "CALL", world.agent)
    assert (await read(gql, engaged, admin))["status"] == "INACTIVE"

    leaver = await make_user(world.office, crm_agent_id=f"L-{suffix}")
    orphan = await world.contact(owner=leaver)
    await gql.ok(DEACTIVATE, {"id": ids.encode("User", leaver.id)}, as_=admin)
    nobody = await world.contact(crm_owner_id=f"N-{suffix}")
    # A deactivated user of another office does not count.
    foreign_leaver = await make_user(world.foreign_office, crm_agent_id=f"F-{suffix}")
    await gql.ok(DEACTIVATE, {"id": ids.encode("User", foreign_leaver.id)}, as_=world.foreign_admin)
    elsewhere = await world.contact(crm_owner_id=f"F-{suffix}")

    shared = f"shared-{suffix}@client.example"
    twin_a = await world.contact(owner=world.agent, email=shared)
    twin_b = await world.contact(owner=world.other_agent, email=shared)
    # The same address in another office is not a duplicate here.
    abroad = f"abroad-{suffix}@client.example"
    single = await world.contact(email=abroad)
    await world.contact(by=world.foreign_admin, email=abroad)

    invalid = []
    for bad in ("not-an-email", "two words@client.example", "a@b@client.example"):
        contact = await world.contact()
        await backdate(contact, email=bad)  # the API would refuse it
        invalid.append(contact)
    fine = await world.contact()
    no_email = await world.contact(email="")
    assert no_email.email is None

    run = await audit(gql, admin)
    expected = {
        ("INACTIVE_BUT_ENGAGED", cid(engaged)),
        ("OWNER_DEACTIVATED", cid(orphan)),
        ("DUPLICATE_EMAIL", cid(twin_a)),
        ("DUPLICATE_EMAIL", cid(twin_b)),
        *(("INVALID_EMAIL", cid(c)) for c in invalid),
    }
    found = await findings(gql, admin)
    assert len(found) == len(set(found)) == run["discrepancies"] == len(expected)
    assert set(found) == expected
    for kind in ("INACTIVE_BUT_ENGAGED", "OWNER_DEACTIVATED", "DUPLICATE_EMAIL", "INVALID_EMAIL"):
        assert set(await findings(gql, admin, kind)) == {f for f in expected if f[0] == kind}
    clean = {engaged_before, called, nobody, elsewhere, single, fine, no_email}
    assert not {cid(c) for c in clean} & {contact for _, contact in found}


async def test_every_address_the_api_refuses_is_reported_invalid(gql, world, sent):
    """R18: the audit's "invalid email" is what the product itself refuses (the check every
    input goes through), written here straight into the database; valid ones are not."""
    from api.core import validation
    from api.core.errors import BadInput

    refused = [
        "plain-text",
        "user@localhost",
        "a..b@example.com",
        ".user@example.com",
        "user@example..com",
        "user@-example.com",
        "user@.example.com",
        "user@exa_mple.com",
    ]
    accepted = ["o'brien@example.com", "user+tag@sub.example.co.uk", "x@y.io"]
    contacts = {}
    for address in refused + accepted:
        if address in refused:
            with pytest.raises(BadInput):
                validation.email(address)
        else:
            assert validation.email(address) == address
        contact = await world.contact()
        await backdate(contact, email=address)
        contacts[address] = cid(contact)

    await audit(gql, world.admin)
    reported = {contact for _, contact in await findings(gql, world.admin, "INVALID_EMAIL")}
    assert {a for a in contacts if contacts[a] in reported} == set(refused)


async def test_malformed_paging_arguments_are_bad_input(gql, world, sent):
    """R20: auditRuns and discrepancyList refuse page sizes out of range and cursors that are
    not theirs with BAD_USER_INPUT naming the argument."""
    await audit(gql, world.admin)
    for variables, field in (
        ({"first": 0}, "first"),
        ({"first": 1000}, "first"),
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "WyJ4Il0="}, "after"),  # ["x"]
    ):
        body = await gql(FINDINGS, {"kind": None, **variables}, as_=world.admin)
        assert_clean(body)
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"].get("field") == field
    body = await gql("query { auditRuns(first: 100000) { id } }", as_=world.admin)
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_a_run_that_failed_is_carried_out_when_retried(gql, world, sent, monkeypatch):
    """R18: a run that fails on a passing error (the database away for a moment) changes
    nothing, and the actor's retry carries it out instead of leaving the night unaudited."""
    idle = await world.contact(owner=world.agent)
    await backdate(idle, created_at=ago(days=200))
    queued = (await gql.ok(RUN, as_=world.admin))["runStatusAudit"]
    pk = ids.decode("AuditRun", queued["id"])
    real_apply = service._apply
    calls = []

    async def flaky(*args: Any) -> None:
        calls.append(args)
        await real_apply(*args)
        if len(calls) == 1:
            raise ConnectionError("database went away")

    monkeypatch.setattr(service, "_apply", flaky)
    with pytest.raises(ConnectionError):
        await service.execute_run(pk)
    assert (await listed_run(gql, world.admin, queued["id"]))["state"] == "FAILED"
    assert (await read(gql, idle, world.admin))["atRiskSince"] is None

    await service.execute_run(pk)  # the actor's retry
    run = await listed_run(gql, world.admin, queued["id"])
    assert run["state"] == "DONE"
    assert run["atRiskFlagged"] == 1
    assert (await read(gql, idle, world.admin))["atRiskSince"] is not None


# --- a second run, a dry run -----------------------------------------------------------


async def seed_everything(gql: Any, world: Any) -> None:
    """An office where a run has something of every kind to do and to report."""
    admin = world.admin
    await settings(gql, admin, autoInactivateDays=60)
    idle = await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)
    await backdate(idle, created_at=ago(days=200), status_updated_at=ago(days=200))
    await log(gql, idle, "MEETING", admin, at=ago(days=120))
    for days in (95, 70, 10):
        contact = await world.contact(owner=world.other_agent)
        await backdate(contact, created_at=ago(days=days))
    engaged = await world.contact(owner=world.agent)
    await gql.ok(SET_STATUS, {"id": cid(engaged), "status": "INACTIVE"}, as_=admin)
    await log(gql, engaged, "WEBINAR_ATTENDED", admin)
    shared = f"twin-{uuid.uuid4().hex[:8]}@client.example"
    await world.contact(email=shared, status=ContactStatus.ACTIVE)
    await world.contact(email=shared)
    bad = await world.contact(status=ContactStatus.ACTIVE)
    await backdate(bad, email="broken.example")


async def test_second_run_changes_nothing(gql, world, sent):
    """R18: a second run right after the first changes no contact and no history and
    flags, clears and inactivates nothing; it counts and reports the same."""
    await seed_everything(gql, world)
    first = await audit(gql, world.admin)
    assert first["atRiskFlagged"] == 2 and first["autoInactivated"] == 3
    rows, history = await snapshot(world.office), await history_count(world.office)
    first_found = set(await findings(gql, world.admin))

    second = await audit(gql, world.admin)
    assert await snapshot(world.office) == rows
    assert await history_count(world.office) == history
    assert (second["atRiskFlagged"], second["atRiskCleared"], second["autoInactivated"]) == (
        0,
        0,
        0,
    )
    for name in ("atRisk", "stale", "noStatus", "discrepancies", "activeCount", "inactiveCount"):
        assert second[name] == first[name], name
    assert set(await findings(gql, world.admin)) == first_found


async def test_dry_run_reports_what_a_real_run_does_and_changes_nothing(gql, world, sent):
    """R18: a dry run reports the counts a real run then reports, and changes no contact
    and no history."""
    await seed_everything(gql, world)
    rows, history = await snapshot(world.office), await history_count(world.office)

    dry = await audit(gql, world.admin, dry_run=True)
    assert dry["dryRun"] is True
    assert await snapshot(world.office) == rows
    assert await history_count(world.office) == history
    dry_found = set(await findings(gql, world.admin))

    real = await audit(gql, world.admin)
    assert real["dryRun"] is False
    assert {k: dry[k] for k in COUNTS} == {k: real[k] for k in COUNTS}
    assert real["autoInactivated"] == 3 and real["atRiskFlagged"] == 2
    assert set(await findings(gql, world.admin)) == dry_found
    assert await snapshot(world.office) != rows


# --- tenancy and archived contacts -----------------------------------------------------


async def test_other_offices_are_untouched(gql, world, sent):
    """R1/R18: a run audits its own office only."""
    foreign_admin = world.foreign_admin
    await settings(gql, foreign_admin, autoInactivateDays=10)
    for status in (ContactStatus.ACTIVE, None):
        contact = await world.contact(by=foreign_admin, status=status)
        await backdate(contact, created_at=ago(days=400), email="not valid")
    rows, history = await snapshot(world.foreign_office), await history_count(world.foreign_office)
    mine = await world.contact(owner=world.agent)
    await backdate(mine, created_at=ago(days=400))

    run = await audit(gql, world.admin)
    assert (run["atRisk"], run["noStatus"], run["discrepancies"]) == (1, 1, 0)
    assert await snapshot(world.foreign_office) == rows
    assert await history_count(world.foreign_office) == history
    assert not await AuditRun.filter(office_id=world.foreign_office.id).exists()


async def test_archived_contacts_are_ignored(gql, world, sent):
    """R11/R18: archived contacts are not flagged, inactivated, counted or reported."""
    admin = world.admin
    suffix = uuid.uuid4().hex[:8]
    await settings(gql, admin, autoInactivateDays=30)
    leaver = await make_user(world.office, crm_agent_id=f"L-{suffix}")
    shared = f"kept-{suffix}@client.example"
    live = await world.contact(owner=world.agent, email=shared, status=ContactStatus.ACTIVE)
    archived = [
        await world.contact(owner=world.agent, email=shared),
        await world.contact(owner=leaver, status=ContactStatus.ACTIVE),
        await world.contact(),
    ]
    for contact in archived:
        await backdate(contact, created_at=ago(days=400), status_updated_at=None)
        await archive(gql, contact, admin)
    await backdate(archived[2], email="no-at-sign")
    await gql.ok(DEACTIVATE, {"id": ids.encode("User", leaver.id)}, as_=admin)
    rows = {r["id"]: r for r in await snapshot(world.office)}

    run = await audit(gql, admin)
    expected = dict.fromkeys(COUNTS, 0) | {"activeCount": 1}
    assert {k: run[k] for k in COUNTS} == expected
    after = {r["id"]: r for r in await snapshot(world.office)}
    assert after == rows
    assert live.id in after
    assert await findings(gql, admin) == []


# --- delivered twice -------------------------------------------------------------------


async def test_a_run_delivered_twice_at_once_reports_each_finding_once(gql, world, sent):
    """R18 (at-least-once delivery): the clock re-sends runs still QUEUED, so one run can
    reach two workers; carrying it out twice at once reports each finding once."""
    shared = f"dup-{uuid.uuid4().hex[:8]}@client.example"
    await world.contact(email=shared)
    await world.contact(email=shared)
    queued = (await gql.ok(RUN, as_=world.admin))["runStatusAudit"]
    pk = ids.decode("AuditRun", queued["id"])
    await asyncio.gather(service.execute_run(pk), service.execute_run(pk))
    run = await listed_run(gql, world.admin, queued["id"])
    assert run["state"] == "DONE"
    assert run["discrepancies"] == 2
    assert len(await findings(gql, world.admin)) == 2


class WorkerKilled(BaseException):
    """What a worker's death looks like from inside the run: nothing after it happens
    (dramatiq's time limit raises a BaseException too)."""


async def test_a_run_redelivered_after_a_crash_reports_each_finding_once(
    gql, world, sent, monkeypatch
):
    """R18: a worker that dies mid-run leaves the run unfinished and the broker delivers it
    again; the second attempt leaves the effects and findings of one run."""
    shared = f"dup-{uuid.uuid4().hex[:8]}@client.example"
    await world.contact(email=shared)
    await world.contact(email=shared)
    idle = await world.contact(owner=world.agent)
    await backdate(idle, created_at=ago(days=200))
    queued = (await gql.ok(RUN, as_=world.admin))["runStatusAudit"]
    pk = ids.decode("AuditRun", queued["id"])
    record = service._record_discrepancies

    async def dies_after_recording(*args: Any) -> None:
        await record(*args)
        raise WorkerKilled

    monkeypatch.setattr(service, "_record_discrepancies", dies_after_recording)
    with pytest.raises(WorkerKilled):
        await service.execute_run(pk)
    assert (await listed_run(gql, world.admin, queued["id"]))["state"] != "DONE"
    monkeypatch.setattr(service, "_record_discrepancies", record)

    await service.execute_run(pk)  # the broker's redelivery
    run = await listed_run(gql, world.admin, queued["id"])
    assert run["state"] == "DONE"
    assert (run["discrepancies"], run["atRiskFlagged"], run["atRisk"]) == (2, 1, 1)
    assert len(await findings(gql, world.admin)) == 2


# --- the actor, in process and in a `crm worker` ---------------------------------------


async def seed_for_actor(gql: Any, world: Any) -> tuple[Any, Any]:
    await settings(gql, world.admin, autoInactivateDays=30)
    idle = await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)
    await backdate(idle, created_at=ago(days=200))
    await log(gql, idle, "CALL", world.admin, at=ago(days=100))
    fresh = await world.contact(owner=world.agent)
    return idle, fresh


async def check_actor_result(gql: Any, world: Any, run_id: str, idle: Any, fresh: Any) -> None:
    run = await listed_run(gql, world.admin, run_id)
    assert run["state"] == "DONE"
    assert (run["atRiskFlagged"], run["autoInactivated"], run["noStatus"]) == (1, 1, 1)
    assert run["durationMs"] is not None and run["durationMs"] >= 0
    seen = await read(gql, idle, world.admin)
    assert seen["status"] == "INACTIVE" and seen["atRiskSince"] is not None
    assert seen["statusHistory"][-1]["source"] == "AUDIT"
    seen = await read(gql, fresh, world.admin)
    assert seen["status"] is None and seen["atRiskSince"] is None


@pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode (no REDIS_URL) only")
async def test_embedded_worker_carries_out_a_requested_run(gql, world):
    """R18, embedded default: runStatusAudit reaches the in-process worker, which runs the
    actor on the app's own event loop."""
    idle, fresh = await seed_for_actor(gql, world)
    queued = (await gql.ok(RUN, as_=world.admin))["runStatusAudit"]
    await drain_in_process("audit")
    await check_actor_result(gql, world, queued["id"], idle, fresh)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
async def test_crm_worker_carries_out_a_requested_run(gql, world, tmp_path):
    """R18 with REDIS_URL: runStatusAudit reaches a separate `crm worker` process through
    Redis, and the run it carries out lands in the database."""
    idle, fresh = await seed_for_actor(gql, world)
    log_path = tmp_path / "worker.log"
    async with crm_worker(log_path) as proc:
        queued = (await gql.ok(RUN, as_=world.admin))["runStatusAudit"]
        pk = ids.decode("AuditRun", queued["id"])
        state = await wait_until_finished(AuditRun, pk, proc)
        assert state == JobState.DONE, log_path.read_text()
    await check_actor_result(gql, world, queued["id"], idle, fresh)
    assert await Discrepancy.filter(run_id=pk).count() == 0


def test_the_invalid_email_index_predicate_matches_the_audit():
    """The PostgreSQL partial index that keeps a quiet audit fast is used only while its
    predicate reads exactly as the audit's own invalid-email condition."""
    import importlib

    from api.audit import service

    migration = importlib.import_module("api.migrations.0005_audit_indexes")
    assert service._INVALID_EMAIL.replace("c.email", "email") == migration.INVALID_EMAIL
