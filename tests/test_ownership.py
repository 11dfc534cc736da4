"""Contact ownership (R5–R7) and the contact list's filters and pagination, through
GraphQL over HTTP. Every trigger of R6 is exercised, and after each step the owner of
every contact, `unassigned`, User.contactCount and Office.unassignedCount must agree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.core import ids
from tests.conftest import PASSWORD, error_codes, make_user, unique_email

CREATE_CONTACT = """
mutation($input: ContactInput!) {
  createContact(input: $input) { id crmOwnerId unassigned owner { id } }
}"""
UPDATE_CONTACT = """
mutation($id: ID!, $input: ContactPatch!) {
  updateContact(id: $id, input: $input) { id firstName unassigned owner { id } }
}"""
READ_OWNER = "query($id: ID!) { contact(id: $id) { id unassigned owner { id } } }"
ASSIGN = "mutation($ids: [ID!]!, $owner: ID) { assignContacts(contactIds: $ids, ownerId: $owner) }"
CREATE_USER = """
mutation($input: UserInput!) { createUser(input: $input) { id crmAgentId active contactCount } }
"""
UPDATE_USER = """
mutation($id: ID!, $input: UserPatch!) {
  updateUser(id: $id, input: $input) { id crmAgentId active contactCount }
}"""
OVERVIEW = """
query {
  office { unassignedCount }
  users { id contactCount }
  contacts(first: 100) { totalCount edges { node { id unassigned owner { id } } } }
}"""
LIST = """
query($filter: ContactFilter, $first: Int, $after: String) {
  contacts(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id } }
  }
}"""


def cid(contact: Any) -> str:
    return ids.encode("Contact", contact.id)


def uid(user: Any) -> str:
    return ids.encode("User", user.id)


def tag() -> str:
    return uuid.uuid4().hex[:8]


async def owners(gql: Any, admin: Any) -> dict[str, str | None]:
    """Every (non-archived) contact of the admin's office → owner id, after checking that
    `unassigned`, `owner`, User.contactCount and Office.unassignedCount tell one story."""
    data = await gql.ok(OVERVIEW, as_=admin)
    nodes = [e["node"] for e in data["contacts"]["edges"]]
    assert data["contacts"]["totalCount"] == len(nodes)
    result: dict[str, str | None] = {}
    for node in nodes:
        owner = node["owner"]["id"] if node["owner"] else None
        assert node["unassigned"] is (owner is None), node
        result[node["id"]] = owner
    for user in data["users"]:
        owned = sum(1 for o in result.values() if o == user["id"])
        assert user["contactCount"] == owned, user
    assert data["office"]["unassignedCount"] == sum(1 for o in result.values() if o is None)
    return result


async def owner_of(gql: Any, admin: Any, contact: Any) -> str | None:
    return (await owners(gql, admin))[cid(contact)]


async def create_contact(gql: Any, as_: Any, crm_owner_id: str | None) -> dict[str, Any]:
    data = await gql.ok(
        CREATE_CONTACT,
        {"input": {"firstName": "Cam", "lastName": tag(), "crmOwnerId": crm_owner_id}},
        as_=as_,
    )
    return data["createContact"]


async def update_user(gql: Any, admin: Any, user: Any, **patch: Any) -> dict[str, Any]:
    return (await gql.ok(UPDATE_USER, {"id": uid(user), "input": patch}, as_=admin))["updateUser"]


# --- R5 / R6: createContact --------------------------------------------------------------


async def test_create_contact_owned_by_matching_user(gql, world):
    """R5/R6: createContact with a crmOwnerId of an active user of the office → theirs."""
    by_admin = await create_contact(gql, world.admin, world.agent.crm_agent_id)
    assert by_admin["owner"] == {"id": uid(world.agent)}
    assert by_admin["unassigned"] is False
    assert by_admin["crmOwnerId"] == world.agent.crm_agent_id
    # Whoever writes it, the CRM owner decides.
    by_office_wide = await create_contact(gql, world.office_wide, world.other_agent.crm_agent_id)
    assert by_office_wide["owner"] == {"id": uid(world.other_agent)}
    by_agent = await create_contact(gql, world.agent, world.other_agent.crm_agent_id)
    assert by_agent["owner"] == {"id": uid(world.other_agent)}
    snapshot = await owners(gql, world.admin)
    assert snapshot[by_admin["id"]] == uid(world.agent)
    assert snapshot[by_office_wide["id"]] == uid(world.other_agent)
    assert snapshot[by_agent["id"]] == uid(world.other_agent)


@pytest.mark.parametrize("crm_owner_id", ["NOBODY", None])
async def test_create_contact_matching_nobody_is_unassigned(gql, world, crm_owner_id):
    """R5: no CRM owner, or one without an account here → unassigned (created by an admin)."""
    created = await create_contact(gql, world.admin, crm_owner_id and f"{crm_owner_id}-{tag()}")
    assert created["unassigned"] is True
    assert created["owner"] is None
    assert (await owners(gql, world.admin))[created["id"]] is None


async def test_crm_owner_in_another_office_is_nobody_here(gql, world):
    """R5/R1: a crmAgentId matching only a user of another office does not own the contact."""
    foreign_agent_id = f"X-{tag()}"
    await make_user(world.foreign_office, crm_agent_id=foreign_agent_id)
    created = await create_contact(gql, world.admin, foreign_agent_id)
    assert created["unassigned"] is True
    assert (await owners(gql, world.admin))[created["id"]] is None


async def test_crm_owner_deactivated_is_unassigned(gql, world):
    """R5: the crmOwnerId of a deactivated user → unassigned."""
    await update_user(gql, world.admin, world.other_agent, active=False)
    created = await create_contact(gql, world.admin, world.other_agent.crm_agent_id)
    assert created["unassigned"] is True
    assert created["owner"] is None
    await owners(gql, world.admin)


# --- R6: user triggers -------------------------------------------------------------------


async def test_new_user_receives_unassigned_contacts(gql, world):
    """R6: createUser with a matching crmAgentId receives the unassigned contacts at once."""
    agent_id = f"N-{tag()}"
    mine = [await world.contact(crm_owner_id=agent_id) for _ in range(2)]
    other = await world.contact(crm_owner_id=f"N-{tag()}")
    before = await owners(gql, world.admin)
    assert all(before[cid(c)] is None for c in [*mine, other])

    data = await gql.ok(
        CREATE_USER,
        {
            "input": {
                "email": unique_email("new"),
                "name": "New Agent",
                "password": PASSWORD,
                "role": "AGENT",
                "crmAgentId": agent_id,
            }
        },
        as_=world.admin,
    )
    user = data["createUser"]
    assert user["contactCount"] == 2
    after = await owners(gql, world.admin)
    assert [after[cid(c)] for c in mine] == [user["id"]] * 2
    assert after[cid(other)] is None


async def test_user_given_a_crm_agent_id_receives_contacts(gql, world):
    """R6: updateUser giving a user a crmAgentId hands them the matching contacts at once."""
    plain = await make_user(world.office)
    agent_id = f"G-{tag()}"
    contacts = [await world.contact(crm_owner_id=agent_id) for _ in range(3)]
    other = await world.contact(crm_owner_id=f"G-{tag()}")
    assert (await owners(gql, world.admin))[cid(contacts[0])] is None

    updated = await update_user(gql, world.admin, plain, crmAgentId=agent_id)
    assert updated["crmAgentId"] == agent_id
    assert updated["contactCount"] == 3
    after = await owners(gql, world.admin)
    assert [after[cid(c)] for c in contacts] == [uid(plain)] * 3
    assert after[cid(other)] is None


async def test_changing_crm_agent_id_moves_contacts(gql, world):
    """R6: a changed crmAgentId: contacts of the old id become unassigned, those of the new
    id arrive; a contact assigned by hand stays (R7)."""
    old = [await world.contact(owner=world.agent) for _ in range(2)]
    new_id = f"C-{tag()}"
    new = [await world.contact(crm_owner_id=new_id) for _ in range(3)]
    by_hand = await world.contact(crm_owner_id=f"NOBODY-{tag()}")
    await gql.ok(ASSIGN, {"ids": [cid(by_hand)], "owner": uid(world.agent)}, as_=world.admin)
    before = await owners(gql, world.admin)
    assert [before[cid(c)] for c in old] == [uid(world.agent)] * 2

    updated = await update_user(gql, world.admin, world.agent, crmAgentId=new_id)
    assert updated["contactCount"] == 4
    after = await owners(gql, world.admin)
    assert [after[cid(c)] for c in old] == [None, None]
    assert [after[cid(c)] for c in new] == [uid(world.agent)] * 3
    assert after[cid(by_hand)] == uid(world.agent)


async def test_deactivation_unassigns_all_contacts_at_once(gql, world):
    """R6: deactivating a user unassigns all their contacts, hand-assigned ones included."""
    crm_owned = [await world.contact(owner=world.agent) for _ in range(2)]
    by_hand = await world.contact(owner=world.other_agent)
    await gql.ok(ASSIGN, {"ids": [cid(by_hand)], "owner": uid(world.agent)}, as_=world.admin)
    untouched = await world.contact(owner=world.other_agent)
    before = await owners(gql, world.admin)
    assert before[cid(by_hand)] == uid(world.agent)

    updated = await update_user(gql, world.admin, world.agent, active=False)
    assert updated["active"] is False
    assert updated["contactCount"] == 0
    after = await owners(gql, world.admin)
    assert all(after[cid(c)] is None for c in [*crm_owned, by_hand])
    assert after[cid(untouched)] == uid(world.other_agent)


async def test_reactivation_brings_crm_contacts_back(gql, world):
    """R6: reactivating a user re-derives: their CRM contacts come back to them; a contact
    that was theirs only by hand, its CRM owner being nobody, stays unassigned."""
    crm_owned = [await world.contact(owner=world.agent) for _ in range(2)]
    by_hand = await world.contact(crm_owner_id=f"NOBODY-{tag()}")
    await gql.ok(ASSIGN, {"ids": [cid(by_hand)], "owner": uid(world.agent)}, as_=world.admin)
    await update_user(gql, world.admin, world.agent, active=False)
    assert all(v is None for v in (await owners(gql, world.admin)).values())

    updated = await update_user(gql, world.admin, world.agent, active=True)
    assert updated["active"] is True
    assert updated["contactCount"] == 2
    after = await owners(gql, world.admin)
    assert [after[cid(c)] for c in crm_owned] == [uid(world.agent)] * 2
    assert after[cid(by_hand)] is None


async def test_update_contact_keeps_ownership(gql, world):
    """R6: updateContact re-derives ownership, which keeps CRM owners and unassigned ones."""
    owned = await world.contact(owner=world.agent)
    loose = await world.contact(crm_owner_id=f"NOBODY-{tag()}")
    data = await gql.ok(
        UPDATE_CONTACT, {"id": cid(owned), "input": {"firstName": "Kept"}}, as_=world.agent
    )
    assert data["updateContact"]["owner"] == {"id": uid(world.agent)}
    data = await gql.ok(
        UPDATE_CONTACT, {"id": cid(loose), "input": {"firstName": "Loose"}}, as_=world.admin
    )
    assert data["updateContact"]["unassigned"] is True
    after = await owners(gql, world.admin)
    assert after[cid(owned)] == uid(world.agent)
    assert after[cid(loose)] is None


async def test_update_contact_rederives_a_stale_owner(gql, world):
    """R6: an update re-derives the owner: a contact left unassigned although its CRM owner
    is an active user (state made with the ORM) goes to that user."""
    from api.contacts.models import Contact

    contact = await world.contact(owner=world.agent)
    await Contact.filter(id=contact.id).update(owner_id=None, owner_source=None)
    assert (await owners(gql, world.admin))[cid(contact)] is None

    data = await gql.ok(
        UPDATE_CONTACT, {"id": cid(contact), "input": {"lastName": "Fixed"}}, as_=world.admin
    )
    assert data["updateContact"]["owner"] == {"id": uid(world.agent)}
    assert (await owners(gql, world.admin))[cid(contact)] == uid(world.agent)


# --- R7: assignContacts ------------------------------------------------------------------


async def test_assign_contacts_counts_changes(gql, world):
    """R7: assignContacts sets owners by hand and returns how many changed; null unassigns."""
    loose = await world.contact()
    mine = await world.contact(owner=world.agent)
    theirs = await world.contact(owner=world.other_agent)
    three = [cid(loose), cid(mine), cid(theirs)]

    assert (await gql.ok(ASSIGN, {"ids": three, "owner": uid(world.agent)}, as_=world.admin))[
        "assignContacts"
    ] == 2
    after = await owners(gql, world.admin)
    assert [after[i] for i in three] == [uid(world.agent)] * 3
    assert (await gql.ok(ASSIGN, {"ids": three, "owner": uid(world.agent)}, as_=world.admin))[
        "assignContacts"
    ] == 0

    two = [cid(loose), cid(theirs)]
    assert (await gql.ok(ASSIGN, {"ids": two, "owner": None}, as_=world.admin))[
        "assignContacts"
    ] == 2
    after = await owners(gql, world.admin)
    assert [after[i] for i in three] == [None, uid(world.agent), None]
    assert (await gql.ok(ASSIGN, {"ids": two}, as_=world.admin))["assignContacts"] == 0

    # The assignment is visible to its new owner (R2) and only to them among agents.
    seen = await gql.ok(LIST, as_=world.agent)
    assert [e["node"]["id"] for e in seen["contacts"]["edges"]] == [cid(mine)]


async def test_assign_contacts_unknown_ids_are_not_found(gql, world):
    """R7/R1: an unknown or foreign owner or contact id → NOT_FOUND, and nothing changes."""
    a = await world.contact()
    b = await world.contact(owner=world.agent)
    foreign = await world.contact(by=world.foreign_admin)
    missing_contact = ids.encode("Contact", 2**62)
    missing_user = ids.encode("User", 2**62)
    before = await owners(gql, world.admin)

    cases = [
        ([cid(a), cid(b)], missing_user),
        ([cid(a), cid(b)], uid(world.foreign_admin)),
        ([cid(a), cid(b), cid(foreign)], uid(world.other_agent)),
        ([cid(a), cid(b), missing_contact], uid(world.other_agent)),
        ([cid(b), cid(foreign)], None),
        ([cid(b), missing_contact], None),
    ]
    for contact_ids, owner in cases:
        body = await gql(ASSIGN, {"ids": contact_ids, "owner": owner}, as_=world.admin)
        assert error_codes(body) == ["NOT_FOUND"], (contact_ids, owner, body)
        assert await owners(gql, world.admin) == before
    foreign_view = await gql.ok(READ_OWNER, {"id": cid(foreign)}, as_=world.foreign_admin)
    assert foreign_view["contact"]["unassigned"] is True


@pytest.mark.parametrize("who", ["agent", "office_wide"])
async def test_assign_contacts_is_for_admins(gql, world, who):
    """R7: only admins assign contacts; others get FORBIDDEN and nothing changes."""
    contact = await world.contact()
    before = await owners(gql, world.admin)
    body = await gql(
        ASSIGN, {"ids": [cid(contact)], "owner": uid(getattr(world, who))}, as_=getattr(world, who)
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert await owners(gql, world.admin) == before


async def test_manual_owner_holds_through_update_contact(gql, world):
    """R7: an owner set by hand stays when the contact is updated (no CRM write)."""
    contact = await world.contact(owner=world.agent)
    await gql.ok(ASSIGN, {"ids": [cid(contact)], "owner": uid(world.other_agent)}, as_=world.admin)
    data = await gql.ok(
        UPDATE_CONTACT, {"id": cid(contact), "input": {"firstName": "Still"}}, as_=world.admin
    )
    assert data["updateContact"]["owner"] == {"id": uid(world.other_agent)}
    assert (await owners(gql, world.admin))[cid(contact)] == uid(world.other_agent)


async def test_manual_owner_holds_through_user_triggers(gql, world):
    """R7: a user who gets the contact's crmAgentId does not take a hand-assigned contact,
    nor one unassigned by hand; contacts not held by hand still follow R6."""
    crm_id = f"M-{tag()}"
    by_hand = await world.contact(crm_owner_id=crm_id)
    follows = await world.contact(crm_owner_id=crm_id)
    await gql.ok(ASSIGN, {"ids": [cid(by_hand)], "owner": uid(world.other_agent)}, as_=world.admin)

    # A user getting the id through updateUser.
    plain = await make_user(world.office)
    await update_user(gql, world.admin, plain, crmAgentId=crm_id)
    after = await owners(gql, world.admin)
    assert after[cid(by_hand)] == uid(world.other_agent)
    assert after[cid(follows)] == uid(plain)

    # Unassigned by hand holds too, through the id leaving and coming back.
    await gql.ok(ASSIGN, {"ids": [cid(follows)], "owner": None}, as_=world.admin)
    await update_user(gql, world.admin, plain, crmAgentId=f"elsewhere-{tag()}")
    await update_user(gql, world.admin, plain, crmAgentId=crm_id)
    after = await owners(gql, world.admin)
    assert after[cid(follows)] is None
    assert after[cid(by_hand)] == uid(world.other_agent)


async def test_manual_owner_holds_against_a_new_user(gql, world):
    """R7: createUser with the crmAgentId of a hand-assigned contact does not take it."""
    crm_id = f"H-{tag()}"
    by_hand = await world.contact(crm_owner_id=crm_id)
    await gql.ok(ASSIGN, {"ids": [cid(by_hand)], "owner": uid(world.agent)}, as_=world.admin)
    data = await gql.ok(
        CREATE_USER,
        {
            "input": {
                "email": unique_email("late"),
                "name": "Late Agent",
                "password": PASSWORD,
                "role": "AGENT",
                "crmAgentId": crm_id,
            }
        },
        as_=world.admin,
    )
    assert data["createUser"]["contactCount"] == 0
    assert (await owners(gql, world.admin))[cid(by_hand)] == uid(world.agent)


# --- The contact list: filters and pagination --------------------------------------------


async def listed(gql: Any, as_: Any, filter: dict[str, Any] | None) -> set[str]:
    data = await gql.ok(LIST, {"filter": filter, "first": 100}, as_=as_)
    conn = data["contacts"]
    found = [e["node"]["id"] for e in conn["edges"]]
    assert conn["totalCount"] == len(found), (filter, conn["totalCount"], found)
    assert len(set(found)) == len(found)
    return set(found)


async def test_contact_list_filters(gql, world):
    """R2/R11 and the ContactFilter: each filter returns exactly the expected contacts."""
    from api.contacts.models import Contact, ContactStatus
    from api.contacts.service import archive_contact

    now = datetime.now(UTC).replace(microsecond=0)
    a = await world.contact(
        owner=world.agent,
        first_name="Alice",
        last_name="Zephyrine",
        email="alice.a@client.example",
        company_name="Acme Ltd",
        status=ContactStatus.ACTIVE,
    )
    b = await world.contact(
        owner=world.other_agent,
        first_name="Bob",
        last_name="Brown",
        email="bob@beta.example",
        company_name="Beta",
        status=ContactStatus.INACTIVE,
    )
    c = await world.contact(
        first_name="Carol",
        last_name="Castle",
        email="carol.findme@client.example",
        company_name="ACME LTD",
    )
    d = await world.contact(
        first_name="Dan",
        last_name="Drake",
        email="dan@client.example",
        status=ContactStatus.ACTIVE,
    )
    e = await world.contact(owner=world.agent, first_name="Eve", last_name="Acmeson")
    await archive_contact(world.admin, e.id)
    await world.contact(by=world.foreign_admin, first_name="Alice", company_name="Acme Ltd")

    await Contact.filter(id=a.id).update(last_activity_at=now - timedelta(days=1))
    await Contact.filter(id=d.id).update(
        last_activity_at=now - timedelta(days=200),
        at_risk_since=now - timedelta(days=110),
        unsubscribed=True,
    )
    await Contact.filter(id=b.id).update(status_updated_at=now - timedelta(days=400))

    data = await gql.ok(
        "query($id: ID!) { contact(id: $id) { company { id name } } }",
        {"id": cid(a)},
        as_=world.admin,
    )
    acme = data["contact"]["company"]["id"]
    A, B, C, D, E = (cid(x) for x in (a, b, c, d, e))
    month_ago = (now - timedelta(days=30)).isoformat()

    expectations: list[tuple[dict[str, Any] | None, set[str]]] = [
        (None, {A, B, C, D}),
        ({"unassigned": True}, {C, D}),
        ({"unassigned": False}, {A, B}),
        ({"ownerId": uid(world.agent)}, {A}),
        ({"ownerId": uid(world.other_agent)}, {B}),
        ({"status": ["ACTIVE"]}, {A, D}),
        ({"status": ["INACTIVE"]}, {B}),
        ({"status": ["ACTIVE", "INACTIVE"]}, {A, B, D}),
        ({"noStatus": True}, {C}),
        ({"noStatus": False}, {A, B, D}),
        ({"search": "acme"}, {A, C}),
        ({"search": "  ACME LTD "}, {A, C}),
        ({"search": "aLiCe"}, {A}),
        ({"search": "zephyr"}, {A}),
        ({"search": "CAROL.FINDME"}, {C}),
        ({"search": "beta.example"}, {B}),
        ({"search": "no such text"}, set()),
        ({"companyId": acme}, {A, C}),
        ({"atRisk": True}, {D}),
        ({"atRisk": False}, {A, B, C}),
        ({"lastActivityBefore": month_ago}, {D}),
        ({"lastActivityBefore": now.isoformat()}, {A, D}),
        ({"statusUpdatedBefore": month_ago}, {B}),
        ({"unsubscribed": True}, {D}),
        ({"unsubscribed": False}, {A, B, C}),
        ({"includeArchived": True}, {A, B, C, D, E}),
        ({"includeArchived": True, "ownerId": uid(world.agent)}, {A, E}),
        ({"includeArchived": True, "search": "acme"}, {A, C, E}),
        ({"unassigned": True, "status": ["ACTIVE"]}, {D}),
        ({"companyId": acme, "noStatus": True}, {C}),
    ]
    for filter, expected in expectations:
        assert await listed(gql, world.admin, filter) == expected, filter

    # R2: the same filters as an agent cover only their own contacts.
    assert await listed(gql, world.agent, None) == {A}
    assert await listed(gql, world.agent, {"search": "acme"}) == {A}
    assert await listed(gql, world.agent, {"unassigned": True}) == set()
    assert await listed(gql, world.agent, {"includeArchived": True}) == {A, E}
    assert await listed(gql, world.office_wide, {"search": "acme"}) == {A, C}


async def test_contact_list_cursor_pagination(gql, world):
    """Contacts connection: first/after walks 5 contacts in pages of 2 without duplicates
    or gaps, with hasNextPage right and totalCount on every page."""
    made = {cid(await world.contact(owner=world.agent)) for _ in range(5)}
    await world.contact(by=world.foreign_admin)

    for viewer in (world.admin, world.agent):
        seen: list[str] = []
        flags: list[bool] = []
        after = None
        for _ in range(4):
            data = await gql.ok(LIST, {"first": 2, "after": after}, as_=viewer)
            conn = data["contacts"]
            assert conn["totalCount"] == 5
            seen.extend(e["node"]["id"] for e in conn["edges"])
            flags.append(conn["pageInfo"]["hasNextPage"])
            assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert flags == [True, True, False]
        assert len(seen) == len(set(seen)) == 5
        assert set(seen) == made
