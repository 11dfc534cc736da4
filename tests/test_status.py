"""Contact status (R8–R10), through GraphQL over HTTP: history, the read-only inactive
contact, engagement, lastActivityAt / atRiskSince and the activity list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.core import ids
from tests.conftest import error_codes, the_error

CONTACT = """
  id firstName lastName archived unassigned owner { id }
  status statusUpdatedAt lastActivityAt atRiskSince
  statusHistory { from to source actor { id } reason at }
"""
READ = f"query($id: ID!) {{ contact(id: $id) {{ {CONTACT} }} }}"
SET_STATUS = f"""
mutation($id: ID!, $status: ContactStatus!, $reason: String) {{
  setContactStatus(id: $id, status: $status, reason: $reason) {{ {CONTACT} }}
}}"""
LOG = """
mutation($input: ActivityInput!) {
  logActivity(input: $input) { id kind at note user { id } }
}"""
UPDATE = (
    "mutation($id: ID!, $input: ContactPatch!) { updateContact(id: $id, input: $input) { id } }"
)
ASSIGN = "mutation($ids: [ID!]!, $owner: ID) { assignContacts(contactIds: $ids, ownerId: $owner) }"
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { id archived } }"
ACTIVITIES = """
query($id: ID!, $first: Int, $after: String) {
  contact(id: $id) {
    activities(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id kind at } }
    }
  }
}"""

ENGAGEMENT = ["EMAIL_OPENED", "EMAIL_CLICKED", "EMAIL_REPLIED", "WEBINAR_ATTENDED"]
NOT_ENGAGEMENT = ["EMAIL_SENT", "CALL", "TASK", "MEETING", "DEAL"]


def cid(contact: Any) -> str:
    return ids.encode("Contact", contact.id)


def uid(user: Any) -> str:
    return ids.encode("User", user.id)


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def ago(**delta: float) -> datetime:
    """A whole-second UTC time in the past (whole seconds survive every backend exactly)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


async def read(gql: Any, contact: Any, as_: Any) -> dict[str, Any]:
    return (await gql.ok(READ, {"id": cid(contact)}, as_=as_))["contact"]


async def set_status(
    gql: Any, contact: Any, status: str, as_: Any, reason: str | None = None
) -> dict[str, Any]:
    variables = {"id": cid(contact), "status": status, "reason": reason}
    return (await gql.ok(SET_STATUS, variables, as_=as_))["setContactStatus"]


async def log(gql: Any, contact: Any, kind: str, as_: Any, **extra: Any) -> dict[str, Any]:
    body = {"contactId": cid(contact), "kind": kind, **extra}
    return (await gql.ok(LOG, {"input": body}, as_=as_))["logActivity"]


async def orm_update(contact: Any, **values: Any) -> None:
    from api.contacts.models import Contact

    await Contact.filter(id=contact.id).update(**values)


# --- R8: every change appends a StatusChange ---------------------------------------------


async def test_set_status_appends_change_and_sets_updated_at(gql, world):
    """R8: setContactStatus appends (from, to, USER, actor, reason, at) and sets statusUpdatedAt."""
    contact = await world.contact(owner=world.agent)
    before = await read(gql, contact, world.agent)
    assert before["status"] is None
    assert before["statusHistory"] == []
    assert before["statusUpdatedAt"] is None

    start = datetime.now(UTC) - timedelta(seconds=1)
    changed = await set_status(gql, contact, "ACTIVE", world.agent, reason="Called back")
    end = datetime.now(UTC) + timedelta(seconds=1)

    assert changed["status"] == "ACTIVE"
    [entry] = changed["statusHistory"]
    assert entry["from"] is None
    assert entry["to"] == "ACTIVE"
    assert entry["source"] == "USER"
    assert entry["actor"] == {"id": uid(world.agent)}
    assert entry["reason"] == "Called back"
    assert start <= ts(entry["at"]) <= end
    assert ts(changed["statusUpdatedAt"]) == ts(entry["at"])
    # The change is stored, not just echoed.
    assert await read(gql, contact, world.admin) == changed


async def test_create_with_status_records_a_change(gql, world):
    """R8: a status given at creation is a change too (null → ACTIVE, source USER)."""
    data = await gql.ok(
        f"""mutation {{ createContact(input: {{firstName: "Ann", lastName: "Lee",
            crmOwnerId: "{world.agent.crm_agent_id}", status: ACTIVE}}) {{ {CONTACT} }} }}""",
        as_=world.admin,
    )
    created = data["createContact"]
    assert created["status"] == "ACTIVE"
    [entry] = created["statusHistory"]
    assert (entry["from"], entry["to"], entry["source"]) == (None, "ACTIVE", "USER")
    assert entry["actor"] == {"id": uid(world.admin)}
    assert ts(created["statusUpdatedAt"]) == ts(entry["at"])


async def test_history_is_append_only_oldest_first(gql, world):
    """R8: several changes append in order; earlier entries are never rewritten."""
    contact = await world.contact(owner=world.agent)
    first = await set_status(gql, contact, "ACTIVE", world.agent, reason="one")
    second = await set_status(gql, contact, "INACTIVE", world.agent, reason="two")
    third = await set_status(gql, contact, "ACTIVE", world.admin, reason="three")

    history = third["statusHistory"]
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [
        (None, "ACTIVE", "one"),
        ("ACTIVE", "INACTIVE", "two"),
        ("INACTIVE", "ACTIVE", "three"),
    ]
    assert [h["actor"]["id"] for h in history] == [uid(world.agent)] * 2 + [uid(world.admin)]
    assert all(h["source"] == "USER" for h in history)
    # Each earlier snapshot is a prefix of the later one, entry for entry.
    assert history[:1] == first["statusHistory"]
    assert history[:2] == second["statusHistory"]
    times = [ts(h["at"]) for h in history]
    assert times == sorted(times)
    assert ts(third["statusUpdatedAt"]) == times[-1]
    assert (await read(gql, contact, world.admin))["statusHistory"] == history


async def test_same_status_again_records_nothing(gql, world):
    """R8: setting the status it already has appends nothing and keeps statusUpdatedAt."""
    contact = await world.contact(owner=world.agent)
    once = await set_status(gql, contact, "ACTIVE", world.agent, reason="first")
    again = await set_status(gql, contact, "ACTIVE", world.admin, reason="again")
    assert again["status"] == "ACTIVE"
    assert again["statusHistory"] == once["statusHistory"]
    assert again["statusUpdatedAt"] == once["statusUpdatedAt"]
    assert await read(gql, contact, world.admin) == once


# --- R9: an inactive contact is read-only ------------------------------------------------


async def test_inactive_contact_refuses_changes(gql, world):
    """R9: updateContact, assignContacts, deleteContact and setContactStatus(INACTIVE) on an
    INACTIVE contact are CONFLICT, and nothing changes."""
    contact = await world.contact(owner=world.agent, first_name="Iris")
    active = await world.contact(owner=world.agent)
    await set_status(gql, contact, "INACTIVE", world.agent, reason="moved away")
    before = await read(gql, contact, world.admin)
    active_before = await read(gql, active, world.admin)

    for who in (world.agent, world.admin):
        body = await gql(UPDATE, {"id": cid(contact), "input": {"firstName": "Changed"}}, as_=who)
        assert error_codes(body) == ["CONFLICT"]
    # All or nothing: the active contact in the same call is not reassigned either.
    for owner in (uid(world.other_agent), None):
        body = await gql(
            ASSIGN, {"ids": [cid(active), cid(contact)], "owner": owner}, as_=world.admin
        )
        assert error_codes(body) == ["CONFLICT"]
    body = await gql(DELETE, {"id": cid(contact)}, as_=world.admin)
    assert error_codes(body) == ["CONFLICT"]
    for who in (world.agent, world.admin):
        body = await gql(SET_STATUS, {"id": cid(contact), "status": "INACTIVE"}, as_=who)
        assert error_codes(body) == ["CONFLICT"]

    assert await read(gql, contact, world.admin) == before
    assert await read(gql, active, world.admin) == active_before


@pytest.mark.parametrize("who", ["agent", "admin"])
async def test_owner_or_admin_reactivates(gql, world, who):
    """R9: the owner or an admin may set an INACTIVE contact back to ACTIVE."""
    actor = getattr(world, who)
    contact = await world.contact(owner=world.agent)
    await set_status(gql, contact, "INACTIVE", world.agent)
    data = await set_status(gql, contact, "ACTIVE", actor, reason="back")
    assert data["status"] == "ACTIVE"
    last = data["statusHistory"][-1]
    assert (last["from"], last["to"], last["source"]) == ("INACTIVE", "ACTIVE", "USER")
    assert last["actor"] == {"id": uid(actor)}
    assert len(data["statusHistory"]) == 2
    # Read-only no more: the contact can be edited again.
    await gql.ok(UPDATE, {"id": cid(contact), "input": {"firstName": "Edited"}}, as_=world.agent)


async def test_others_cannot_reactivate(gql, world):
    """R9 (R1): the office-wide agent gets CONFLICT, an agent who cannot see it and another
    office get NOT_FOUND; the contact stays INACTIVE with its history unchanged."""
    owned = await world.contact(owner=world.agent)
    unassigned = await world.contact()
    await set_status(gql, owned, "INACTIVE", world.agent)
    await set_status(gql, unassigned, "INACTIVE", world.admin)

    cases = [
        (owned, world.office_wide, "CONFLICT"),
        (unassigned, world.office_wide, "CONFLICT"),
        (owned, world.other_agent, "NOT_FOUND"),
        (owned, world.foreign_admin, "NOT_FOUND"),
    ]
    for contact, actor, code in cases:
        before = await read(gql, contact, world.admin)
        body = await gql(SET_STATUS, {"id": cid(contact), "status": "ACTIVE"}, as_=actor)
        assert error_codes(body) == [code], (actor.name, body)
        assert await read(gql, contact, world.admin) == before


async def test_activity_can_be_logged_on_inactive_contact(gql, world):
    """R9: activities are always accepted on an INACTIVE contact; it stays INACTIVE."""
    contact = await world.contact(owner=world.agent)
    await set_status(gql, contact, "INACTIVE", world.agent)
    activity = await log(gql, contact, "CALL", world.agent, note="They rang us")
    assert activity["kind"] == "CALL"
    assert activity["user"] == {"id": uid(world.agent)}
    after = await read(gql, contact, world.agent)
    assert after["status"] == "INACTIVE"
    assert ts(after["lastActivityAt"]) == ts(activity["at"])
    listed = await gql.ok(ACTIVITIES, {"id": cid(contact)}, as_=world.agent)
    assert [e["node"]["id"] for e in listed["contact"]["activities"]["edges"]] == [activity["id"]]


# --- R10: engagement drives status -------------------------------------------------------


@pytest.mark.parametrize("kind", ENGAGEMENT)
async def test_engagement_makes_unset_status_active(gql, world, kind):
    """R10: engagement on a contact without status makes it ACTIVE, source ENGAGEMENT."""
    contact = await world.contact(owner=world.agent)
    activity = await log(gql, contact, kind, world.agent)
    after = await read(gql, contact, world.agent)
    assert after["status"] == "ACTIVE"
    [entry] = after["statusHistory"]
    assert (entry["from"], entry["to"], entry["source"]) == (None, "ACTIVE", "ENGAGEMENT")
    assert ts(after["statusUpdatedAt"]) == ts(entry["at"]) == ts(activity["at"])


@pytest.mark.parametrize("kind", NOT_ENGAGEMENT)
async def test_other_activity_leaves_status_unset(gql, world, kind):
    """R10: an activity that is not engagement does not set a status."""
    contact = await world.contact(owner=world.agent)
    await log(gql, contact, kind, world.agent)
    after = await read(gql, contact, world.agent)
    assert after["status"] is None
    assert after["statusHistory"] == []
    assert after["statusUpdatedAt"] is None
    assert after["lastActivityAt"] is not None


@pytest.mark.parametrize("kind", ["EMAIL_REPLIED", "WEBINAR_ATTENDED"])
async def test_engagement_keeps_inactive_set_by_a_person(gql, world, kind):
    """R10: INACTIVE set by a person stays INACTIVE after engagement, nothing recorded."""
    contact = await world.contact(owner=world.agent)
    await set_status(gql, contact, "INACTIVE", world.agent, reason="not interested")
    before = await read(gql, contact, world.agent)
    await log(gql, contact, kind, world.agent)
    after = await read(gql, contact, world.agent)
    assert after["status"] == "INACTIVE"
    assert after["statusHistory"] == before["statusHistory"]
    assert after["statusUpdatedAt"] == before["statusUpdatedAt"]


async def test_engagement_on_active_contact_records_nothing(gql, world):
    """R8/R10: engagement on an already ACTIVE contact appends no StatusChange."""
    contact = await world.contact(owner=world.agent)
    before = await set_status(gql, contact, "ACTIVE", world.agent)
    await log(gql, contact, "EMAIL_CLICKED", world.agent)
    after = await read(gql, contact, world.agent)
    assert after["status"] == "ACTIVE"
    assert after["statusHistory"] == before["statusHistory"]
    assert after["statusUpdatedAt"] == before["statusUpdatedAt"]


@pytest.mark.parametrize("kind", ENGAGEMENT)
async def test_engagement_reactivates_inactive_set_by_audit(gql, world, kind):
    """R10: INACTIVE set by the AUDIT becomes ACTIVE on engagement (state made via the ORM,
    as the audit does not exist yet)."""
    from api.contacts.models import ContactStatus, StatusSource

    contact = await world.contact(owner=world.agent)
    await orm_update(
        contact,
        status=ContactStatus.INACTIVE,
        status_source=StatusSource.AUDIT,
        status_updated_at=ago(days=3),
    )
    assert (await read(gql, contact, world.agent))["status"] == "INACTIVE"
    activity = await log(gql, contact, kind, world.agent)
    after = await read(gql, contact, world.agent)
    assert after["status"] == "ACTIVE"
    last = after["statusHistory"][-1]
    assert (last["from"], last["to"], last["source"]) == ("INACTIVE", "ACTIVE", "ENGAGEMENT")
    assert ts(after["statusUpdatedAt"]) == ts(activity["at"])


async def test_non_engagement_keeps_inactive_set_by_audit(gql, world):
    """R10: only engagement reactivates; a CALL leaves an audit's INACTIVE alone."""
    from api.contacts.models import ContactStatus, StatusSource

    contact = await world.contact(owner=world.agent)
    await orm_update(contact, status=ContactStatus.INACTIVE, status_source=StatusSource.AUDIT)
    await log(gql, contact, "CALL", world.agent)
    after = await read(gql, contact, world.agent)
    assert after["status"] == "INACTIVE"
    assert after["statusHistory"] == []


# --- R10: lastActivityAt and atRiskSince -------------------------------------------------


async def test_last_activity_at_moves_forward_only(gql, world):
    """R10: every activity updates lastActivityAt; a backdated one does not move it back."""
    contact = await world.contact(owner=world.agent)
    assert (await read(gql, contact, world.agent))["lastActivityAt"] is None

    two_days = ago(days=2)
    await log(gql, contact, "CALL", world.agent, at=two_days.isoformat())
    assert ts((await read(gql, contact, world.agent))["lastActivityAt"]) == two_days

    await log(gql, contact, "MEETING", world.agent, at=ago(days=10).isoformat())
    assert ts((await read(gql, contact, world.agent))["lastActivityAt"]) == two_days

    one_day = ago(days=1)
    await log(gql, contact, "DEAL", world.agent, at=one_day.isoformat())
    assert ts((await read(gql, contact, world.agent))["lastActivityAt"]) == one_day

    now = await log(gql, contact, "TASK", world.agent)
    assert ts((await read(gql, contact, world.agent))["lastActivityAt"]) == ts(now["at"])
    assert ts(now["at"]) > one_day


@pytest.mark.parametrize("kind", ["DEAL", "EMAIL_OPENED"])
async def test_any_activity_clears_at_risk(gql, world, kind):
    """R10: every activity clears atRiskSince, even one backdated before lastActivityAt."""
    contact = await world.contact(owner=world.agent)
    latest = ago(days=1)
    await log(gql, contact, "CALL", world.agent, at=latest.isoformat())
    risk = ago(days=5)
    await orm_update(contact, at_risk_since=risk)
    assert ts((await read(gql, contact, world.agent))["atRiskSince"]) == risk

    await log(gql, contact, kind, world.agent, at=ago(days=30).isoformat())
    after = await read(gql, contact, world.agent)
    assert after["atRiskSince"] is None
    assert ts(after["lastActivityAt"]) == latest


# --- logActivity input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        (datetime.now(UTC) + timedelta(days=400)).isoformat(),
        "2020-01-01T10:00:00",  # no time zone: ambiguous
    ],
)
async def test_log_activity_rejects_future_or_naive_at(gql, world, at):
    """R10/R20: `at` in the future (or without offset) is BAD_USER_INPUT on "at"; nothing lands."""
    contact = await world.contact(owner=world.agent)
    body = await gql(
        LOG,
        {"input": {"contactId": cid(contact), "kind": "EMAIL_OPENED", "at": at}},
        as_=world.agent,
    )
    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "at"
    after = await read(gql, contact, world.agent)
    assert after["lastActivityAt"] is None
    assert after["status"] is None
    listed = await gql.ok(ACTIVITIES, {"id": cid(contact)}, as_=world.agent)
    assert listed["contact"]["activities"]["totalCount"] == 0


async def test_log_activity_in_the_past(gql, world):
    """R10: `at` in the past is accepted and kept as given, with kind, note and author."""
    contact = await world.contact(owner=world.agent)
    when = ago(days=3, hours=2)
    activity = await log(gql, contact, "CALL", world.agent, at=when.isoformat(), note="Voicemail")
    assert ts(activity["at"]) == when
    assert activity["kind"] == "CALL"
    assert activity["note"] == "Voicemail"
    assert activity["user"] == {"id": uid(world.agent)}
    assert ts((await read(gql, contact, world.agent))["lastActivityAt"]) == when


async def test_activities_newest_first_with_cursor_pagination(gql, world):
    """Contact.activities: newest first, `first`/`after` walk every activity once, totalCount."""
    contact = await world.contact(owner=world.agent)
    # Logged out of order, one pair sharing a timestamp.
    offsets = [5, 1, 9, 3, 3, 7]
    logged = []
    for days in offsets:
        activity = await log(gql, contact, "CALL", world.agent, at=ago(days=days).isoformat())
        logged.append(activity)

    seen: list[dict[str, Any]] = []
    after = None
    pages = 0
    while True:
        data = await gql.ok(
            ACTIVITIES, {"id": cid(contact), "first": 4, "after": after}, as_=world.agent
        )
        conn = data["contact"]["activities"]
        pages += 1
        assert conn["totalCount"] == len(offsets)
        assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        seen.extend(e["node"] for e in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
        assert pages < 5
    assert pages == 2
    assert sorted(a["id"] for a in seen) == sorted(a["id"] for a in logged)
    assert len({a["id"] for a in seen}) == len(seen)
    times = [ts(a["at"]) for a in seen]
    assert times == sorted(times, reverse=True)

    # Page size 1 across the tie still yields each activity exactly once.
    ones, after = [], None
    for _ in range(len(offsets)):
        data = await gql.ok(
            ACTIVITIES, {"id": cid(contact), "first": 1, "after": after}, as_=world.agent
        )
        conn = data["contact"]["activities"]
        ones.extend(e["node"]["id"] for e in conn["edges"])
        after = conn["pageInfo"]["endCursor"]
    assert conn["pageInfo"]["hasNextPage"] is False
    assert ones == [a["id"] for a in seen]
