"""Privacy, through GraphQL over HTTP: eraseContact (GDPR erasure) removes a contact's
personal data everywhere it was stored and keeps its history and counts; the audit log
records every privileged action once, with its actor and target, and never a password or a
contact's personal data; only admins erase, and only admins read the log."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction, AuditLogEntry
from api.campaigns import dispatch, sender
from api.campaigns.models import CampaignBatch, Delivery, DeliveryState, Suppression
from api.core import database, ids
from tests.conftest import PASSWORD, assert_clean, error_codes, make_user, the_error

DETAIL = """
  id firstName lastName email phone externalId crmOwnerId company { name } owner { id }
  status archived unsubscribed erasedAt
  statusHistory { from to source reason at actor { id } }
  activities(first: 50) { totalCount edges { node { kind at note } } }
"""
READ = f"query($id: ID!) {{ contact(id: $id) {{ {DETAIL} }} }}"
ERASE = f"mutation($id: ID!) {{ eraseContact(id: $id) {{ {DETAIL} }} }}"
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { id archived } }"
RESTORE = "mutation($id: ID!) { restoreContact(id: $id) { id archived } }"
UPDATE = (
    "mutation($id: ID!, $input: ContactPatch!) { updateContact(id: $id, input: $input) { id } }"
)
SET_STATUS = """
mutation($id: ID!, $status: ContactStatus!, $reason: String) {
  setContactStatus(id: $id, status: $status, reason: $reason) { id }
}"""
LOG = "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }"
SEARCH = """
query($search: String!) {
  contacts(filter: {search: $search, includeArchived: true}, first: 100) {
    totalCount edges { node { id } }
  }
}"""
CREATE_USER = "mutation($input: UserInput!) { createUser(input: $input) { id } }"
UPDATE_USER = "mutation($id: ID!, $input: UserPatch!) { updateUser(id: $id, input: $input) { id } }"
SETTINGS = """
mutation($input: OfficeSettingsInput!) { updateOfficeSettings(input: $input) { id } }"""
CREATE_CAMPAIGN = "mutation($input: CampaignInput!) { createCampaign(input: $input) { id } }"
SEND = "mutation($id: ID!) { sendCampaign(id: $id) { id state } }"
EXPORT = "mutation { exportContacts { id } }"
AUDIT_LOG = """
query($first: Int, $after: String, $action: AuditAction) {
  auditLog(first: $first, after: $after, action: $action) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id action at actor { id } target details filter rowCount } }
  }
}"""


def gid(kind: str, row: Any) -> str:
    return ids.encode(kind, row.id)


async def log_entries(
    gql: Any, admin: Any, action: str | None = None, first: int = 3
) -> list[dict[str, Any]]:
    """Every entry of the admin's office, newest first, paging through `first` at a time."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        variables = {"first": first, "after": after, "action": action}
        conn = (await gql.ok(AUDIT_LOG, variables, as_=admin))["auditLog"]
        found += [edge["node"] for edge in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            assert conn["totalCount"] == len(found)
            return found
        after = conn["pageInfo"]["endCursor"]


def summary(entries: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    """(action, actor id, target) of each entry, oldest first."""
    return [(e["action"], (e["actor"] or {}).get("id"), e["target"]) for e in reversed(entries)]


async def sent_campaign(gql: Any, world: Any, *, run: bool = True) -> int:
    """An office-wide campaign to every contact, sent by the admin; with `run`, the workers'
    dispatch and batches done too, else only the dispatch (deliveries left PENDING)."""
    audience = await system_audience(world.office.id, SendAccount.OFFICE, None, "all")
    created = await gql.ok(
        CREATE_CAMPAIGN,
        {
            "input": {
                "name": "Spring listings",
                "subject": "New homes, {{first_name}}",
                "bodyHtml": "<p>Hello {{first_name}}</p>",
                "audienceId": gid("Audience", audience),
                "account": "OFFICE",
            }
        },
        as_=world.admin,
    )
    await gql.ok(SEND, {"id": created["createCampaign"]["id"]}, as_=world.admin)
    campaign_id = ids.decode("Campaign", created["createCampaign"]["id"])
    await dispatch.dispatch(campaign_id)
    if run:
        for batch_id in await CampaignBatch.filter(campaign_id=campaign_id).values_list(
            "id", flat=True
        ):
            await sender.send_batch(batch_id)
    return campaign_id


async def person(world: Any) -> tuple[Any, dict[str, str]]:
    """A contact of the agent full of personal data, and the values to look for afterwards."""
    tag = uuid.uuid4().hex[:8]
    pii = {
        "first": f"Jolene{tag}",
        "last": f"Quartermaine{tag}",
        "email": f"jolene.{tag}@client.example",
        "phone": "+44 20 7946 0958",
        "company": f"Quartermaine Holdings {tag}",
        "external": f"CRM-{tag}",
        "note": f"Jolene {tag} said her divorce closes in May",
        "reason": f"Moved to 12 Elm Street {tag}",
    }
    contact = await world.contact(
        owner=world.agent,
        first_name=pii["first"],
        last_name=pii["last"],
        email=pii["email"],
        phone=pii["phone"],
        company_name=pii["company"],
        external_id=pii["external"],
    )
    return contact, pii


# --- erasure ------------------------------------------------------------------------------


async def test_erasure_removes_personal_data_everywhere_and_keeps_history(gql, world):
    """eraseContact: name, email, phone, externalId and company leave the contact; activity
    notes, status reasons, its deliveries' addresses and server answers and the suppression
    of its address go; the search no longer finds it. Its status history rows, activities
    (kinds and times) and counts stay; it ends archived and unsubscribed."""
    contact, pii = await person(world)
    bystander = await world.contact(owner=world.agent, email="bystander@client.example")
    cid = gid("Contact", contact)
    await gql.ok(
        SET_STATUS, {"id": cid, "status": "ACTIVE", "reason": pii["reason"]}, as_=world.agent
    )
    await gql.ok(
        LOG, {"input": {"contactId": cid, "kind": "CALL", "note": pii["note"]}}, as_=world.agent
    )
    campaign_id = await sent_campaign(gql, world)
    await Delivery.filter(contact_id=contact.id).update(error=f"250 ok <{pii['email']}>")
    await Suppression.create(office_id=world.office.id, address=pii["email"], reason="550")
    await Suppression.create(office_id=world.office.id, address=bystander.email, reason="550")
    before = (await gql.ok(READ, {"id": cid}, as_=world.admin))["contact"]
    assert before["activities"]["totalCount"] == 2  # the call and the campaign's EMAIL_SENT
    assert (await gql.ok(SEARCH, {"search": pii["last"]}, as_=world.admin))["contacts"][
        "totalCount"
    ] == 1

    erased = (await gql.ok(ERASE, {"id": cid}, as_=world.admin))["eraseContact"]

    assert erased["erasedAt"] is not None
    assert (await gql.ok(READ, {"id": cid}, as_=world.admin))["contact"] == erased
    assert {
        k: erased[k] for k in ("firstName", "lastName", "email", "phone", "externalId", "company")
    } == {
        "firstName": "Erased",
        "lastName": "contact",
        "email": None,
        "phone": None,
        "externalId": None,
        "company": None,
    }
    assert erased["archived"] is True and erased["unsubscribed"] is True
    # What is not the person's stays: owner, CRM owner id, status and the history's shape.
    for key in ("id", "owner", "crmOwnerId", "status"):
        assert erased[key] == before[key], key
    assert [{**c, "reason": None} for c in before["statusHistory"]] == erased["statusHistory"]
    assert [c["reason"] for c in erased["statusHistory"]] == [None]
    assert erased["activities"]["totalCount"] == 2
    assert [(a["node"]["kind"], a["node"]["at"]) for a in erased["activities"]["edges"]] == [
        (a["node"]["kind"], a["node"]["at"]) for a in before["activities"]["edges"]
    ]
    assert [a["node"]["note"] for a in erased["activities"]["edges"]] == [None, None]

    delivery = await Delivery.get(contact_id=contact.id, campaign_id=campaign_id)
    assert (delivery.email, delivery.error, delivery.state) == (None, None, DeliveryState.SENT)
    assert (
        await Delivery.get(contact_id=bystander.id, campaign_id=campaign_id)
    ).email == bystander.email
    assert not await Suppression.exists(office_id=world.office.id, address=pii["email"])
    assert await Suppression.exists(office_id=world.office.id, address=bystander.email)
    for value in (pii["first"], pii["last"], pii["email"], pii["company"], pii["external"]):
        found = await gql.ok(SEARCH, {"search": value}, as_=world.admin)
        assert found["contacts"]["totalCount"] == 0, value

    # No column of any row about the contact holds any of it any more.
    rows = []
    for table in ("contact", "activity", "status_change", "delivery"):
        column = "id" if table == "contact" else "contact_id"
        rows += await database.fetch(f"SELECT * FROM {table} WHERE {column} = $1", contact.id)  # noqa: S608
    rows += await database.fetch("SELECT * FROM audit_log WHERE office_id = $1", world.office.id)
    stored = json.dumps(rows, default=str).lower()
    for value in pii.values():
        assert value.lower() not in stored, value


async def test_a_waiting_delivery_of_an_erased_contact_is_cancelled(gql, world):
    """A send already resolved but not yet carried out: the erased contact's delivery is
    cancelled (it has no address any more) and only the others receive the message."""
    contact, _ = await person(world)
    other = await world.contact(owner=world.agent)
    campaign_id = await sent_campaign(gql, world, run=False)
    await gql.ok(ERASE, {"id": gid("Contact", contact)}, as_=world.admin)
    for batch_id in await CampaignBatch.filter(campaign_id=campaign_id).values_list(
        "id", flat=True
    ):
        await sender.send_batch(batch_id)
    states = {
        d.contact_id: (d.state, d.email) for d in await Delivery.filter(campaign_id=campaign_id)
    }
    assert states == {
        contact.id: (DeliveryState.CANCELLED, None),
        other.id: (DeliveryState.SENT, other.email),
    }


async def test_only_admins_erase_and_another_office_sees_not_found(gql, world):
    """Erasure needs an admin: the owner with canDelete and office-wide users are FORBIDDEN,
    nobody logged in is UNAUTHENTICATED; another office's admin gets NOT_FOUND exactly as
    for an id that does not exist (R1). Nothing changes on the way."""
    contact, pii = await person(world)
    cid = gid("Contact", contact)
    owner_who_deletes = await make_user(
        world.office, can_delete=True, crm_agent_id=f"E-{uuid.uuid4().hex[:6]}"
    )
    for user in (owner_who_deletes, world.office_wide, world.agent):
        body = await gql(ERASE, {"id": cid}, as_=user)
        assert error_codes(body) == ["FORBIDDEN"], user.name
        assert body["data"] is None
        assert_clean(body)
    assert error_codes(await gql(ERASE, {"id": cid})) == ["UNAUTHENTICATED"]
    foreign = await gql(ERASE, {"id": cid}, as_=world.foreign_admin)
    missing = await gql(ERASE, {"id": ids.encode("Contact", 2**62)}, as_=world.foreign_admin)
    assert error_codes(foreign) == error_codes(missing) == ["NOT_FOUND"]
    assert the_error(foreign)["message"] == the_error(missing)["message"]
    unchanged = (await gql.ok(READ, {"id": cid}, as_=world.admin))["contact"]
    assert (unchanged["firstName"], unchanged["email"], unchanged["erasedAt"]) == (
        pii["first"],
        pii["email"],
        None,
    )
    assert await log_entries(gql, world.admin, "CONTACT_ERASED") == []


async def test_an_erased_contact_cannot_be_restored_changed_or_erased_again(gql, world):
    """Erasure is for good: restoreContact, updateContact and a second eraseContact answer
    CONFLICT and change nothing. An inactive (read-only, R9) or archived contact can be
    erased all the same."""
    contact, _ = await person(world)
    cid = gid("Contact", contact)
    await gql.ok(SET_STATUS, {"id": cid, "status": "INACTIVE"}, as_=world.admin)
    await gql.ok(ERASE, {"id": cid}, as_=world.admin)
    for query, variables in (
        (RESTORE, {"id": cid}),
        (UPDATE, {"id": cid, "input": {"email": "new@client.example", "firstName": "Back"}}),
        (ERASE, {"id": cid}),
    ):
        body = await gql(query, variables, as_=world.admin)
        assert error_codes(body) == ["CONFLICT"], query
        assert_clean(body)
    after = (await gql.ok(READ, {"id": cid}, as_=world.admin))["contact"]
    assert (after["firstName"], after["email"], after["archived"], after["status"]) == (
        "Erased",
        None,
        True,
        "INACTIVE",
    )
    archived, _ = await person(world)
    await gql.ok(DELETE, {"id": gid("Contact", archived)}, as_=world.admin)
    await gql.ok(ERASE, {"id": gid("Contact", archived)}, as_=world.admin)
    erased = await log_entries(gql, world.admin, "CONTACT_ERASED")
    assert [e["target"] for e in erased] == [gid("Contact", archived), cid]


# --- the audit log ------------------------------------------------------------------------


async def test_each_privileged_action_writes_one_entry_with_actor_and_target(
    gql, world, monkeypatch
):
    """Users created and changed, a password reset, a contact deleted, restored and erased,
    settings changed, an office-wide campaign sent and an export: one entry each, with who
    did it and to what, in order; a USER campaign sent and a change that changes nothing
    write none."""
    from workers.exports import export_contacts

    # The export's job is recorded, not carried out: its entry is what this test reads.
    monkeypatch.setattr(export_contacts, "send", lambda job_id: None)
    admin, agent = world.admin, world.agent
    contact, _ = await person(world)
    cid = gid("Contact", contact)
    new_password = "a-brand-new-long-secret"
    created = await gql.ok(
        CREATE_USER,
        {
            "input": {
                "email": f"new-{uuid.uuid4().hex[:8]}@office.example",
                "name": "New Agent",
                "password": PASSWORD,
                "role": "AGENT",
                "canExport": True,
            }
        },
        as_=admin,
    )
    new_user = created["createUser"]["id"]
    await gql.ok(
        UPDATE_USER, {"id": new_user, "input": {"canDelete": True, "role": "ADMIN"}}, as_=admin
    )
    await gql.ok(
        UPDATE_USER, {"id": new_user, "input": {"canDelete": True}}, as_=admin
    )  # no change
    await gql.ok(UPDATE_USER, {"id": new_user, "input": {"password": new_password}}, as_=admin)
    await gql.ok(UPDATE_USER, {"id": gid("User", agent), "input": {"name": "Renamed"}}, as_=agent)
    await gql.ok(DELETE, {"id": cid}, as_=admin)
    await gql.ok(RESTORE, {"id": cid}, as_=admin)
    await gql.ok(
        SETTINGS, {"input": {"riskDays": 45, "staleDays": world.office.stale_days}}, as_=admin
    )
    campaign_id = await sent_campaign(gql, world, run=False)
    user_audience = await system_audience(world.office.id, SendAccount.USER, agent.id, "mine")
    own = await gql.ok(
        CREATE_CAMPAIGN,
        {
            "input": {
                "name": "Mine",
                "subject": "Hi",
                "bodyHtml": "<p>Hi</p>",
                "audienceId": gid("Audience", user_audience),
                "account": "USER",
            }
        },
        as_=agent,
    )
    await gql.ok(SEND, {"id": own["createCampaign"]["id"]}, as_=agent)
    export = (await gql.ok(EXPORT, as_=admin))["exportContacts"]["id"]
    await gql.ok(ERASE, {"id": cid}, as_=admin)

    entries = await log_entries(gql, admin)
    a, g = gid("User", admin), gid("User", agent)
    assert summary(entries) == [
        ("USER_CREATED", a, new_user),
        ("USER_CHANGED", a, new_user),
        ("PASSWORD_RESET", a, new_user),
        ("USER_CHANGED", g, g),
        ("CONTACT_DELETED", a, cid),
        ("CONTACT_RESTORED", a, cid),
        ("SETTINGS_CHANGED", a, gid("Office", world.office)),
        ("CAMPAIGN_SENT", a, ids.encode("Campaign", campaign_id)),
        ("EXPORT", a, export),
        ("CONTACT_ERASED", a, cid),
    ]
    details = {(e["action"], e["target"]): e["details"] for e in entries}
    assert details[("USER_CREATED", new_user)]["values"] == {
        "role": "AGENT",
        "active": True,
        "officeWideAccess": False,
        "canExport": True,
        "canDelete": False,
    }
    assert details[("USER_CHANGED", new_user)] == {
        "fields": ["role", "canDelete"],
        "values": {"role": "ADMIN", "canDelete": True},
    }
    assert details[("USER_CHANGED", g)] == {"fields": ["name"], "values": {}}
    assert details[("PASSWORD_RESET", new_user)] is None
    assert details[("SETTINGS_CHANGED", gid("Office", world.office))] == {
        "fields": ["riskDays"],
        "values": {"riskDays": 45},
    }
    # Nothing a password or the contact's address could hide in.
    text = json.dumps(entries)
    assert new_password not in text and PASSWORD not in text
    assert contact.email not in text and contact.last_name not in text

    only = await log_entries(gql, admin, "USER_CHANGED", first=1)
    assert [e["target"] for e in only] == [g, new_user]
    foreign = await log_entries(gql, world.foreign_admin)
    assert foreign == []


async def test_refused_actions_write_no_entry(gql, world):
    """An entry is written with its action, in its transaction: a change refused (rights,
    a conflict, bad input) leaves no entry behind."""
    taken = world.other_agent.crm_agent_id
    assert error_codes(
        await gql(
            UPDATE_USER,
            {"id": gid("User", world.agent), "input": {"canExport": True}},
            as_=world.agent,
        )
    ) == ["FORBIDDEN"]
    body = await gql(
        UPDATE_USER,
        {"id": gid("User", world.agent), "input": {"canExport": True, "crmAgentId": taken}},
        as_=world.admin,
    )
    assert error_codes(body) == ["CONFLICT"]
    assert error_codes(await gql(SETTINGS, {"input": {"riskDays": 0}}, as_=world.admin)) == [
        "BAD_USER_INPUT"
    ]
    assert error_codes(
        await gql(DELETE, {"id": gid("Contact", await world.contact())}, as_=world.agent)
    ) == ["FORBIDDEN"]
    assert await log_entries(gql, world.admin) == []


async def test_only_admins_read_the_audit_log(gql, world):
    """Agents, office-wide agents and exporters are FORBIDDEN; nobody logged in is
    UNAUTHENTICATED; an admin reads the office's entries."""
    exporter = await make_user(world.office, can_export=True, can_delete=True)
    await gql.ok(DELETE, {"id": gid("Contact", await world.contact())}, as_=world.admin)
    for user in (world.agent, world.office_wide, exporter):
        body = await gql(AUDIT_LOG, {}, as_=user)
        assert error_codes(body) == ["FORBIDDEN"]
        assert_clean(body)
    assert error_codes(await gql(AUDIT_LOG, {})) == ["UNAUTHENTICATED"]
    assert [e["action"] for e in await log_entries(gql, world.admin)] == ["CONTACT_DELETED"]


async def test_details_never_take_a_password_or_a_contacts_personal_data(world):
    """The one writer refuses details that would keep a secret or a contact's data for good."""
    for details in (
        {"password": "x"},
        {"values": {"email": "a@b.example"}},
        {"x": [{"phone": "1"}]},
    ):
        with pytest.raises(ValueError):
            await auditlog.record(world.admin, AuditAction.USER_CHANGED, details=details)
    assert not await AuditLogEntry.exists(office_id=world.office.id)
