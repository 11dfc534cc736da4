"""The permission matrix of R1–R4: every role × operation × guarded field, over HTTP.

Roles (from the `world` fixture):
- admin: the office's admin;
- owner: `world.agent`, who owns the contact under test;
- other: `world.other_agent`, a plain agent of the same office;
- office_wide: `world.office_wide`, an agent with office-wide access (not the owner);
- foreign_admin: the admin of another office.

Outcomes: "ok"; "masked" (the field is null with a FORBIDDEN error on its path, R3);
or the error code the whole operation answers with.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.core import ids
from tests.conftest import error_codes, make_user, the_error, unique_email

ROLE_ATTR = {
    "admin": "admin",
    "owner": "agent",
    "other": "other_agent",
    "office_wide": "office_wide",
    "foreign_admin": "foreign_admin",
}
ROLES = list(ROLE_ATTR)


def actor(world: Any, role: str) -> Any:
    return getattr(world, ROLE_ATTR[role])


def gid(kind: str, pk: int) -> str:
    return ids.encode(kind, pk)


# An id no row has: well formed, far beyond any primary key a test creates.
MISSING_CONTACT_ID = gid("Contact", 2**62 + 12345)


async def target_contact(world: Any, target: str) -> Any:
    """`own`: owned by `world.agent` (the "owner" role); `unassigned`: nobody's;
    `office_wide`: owned by the office-wide agent herself."""
    if target == "own":
        contact = await world.contact(owner=world.agent)
        assert contact.owner_id == world.agent.id
    elif target == "unassigned":
        contact = await world.contact(owner=None)
        assert contact.owner_id is None
    elif target == "office_wide":
        contact = await world.contact(owner=world.office_wide)
        assert contact.owner_id == world.office_wide.id
    else:  # pragma: no cover - a typo in a table
        raise AssertionError(target)
    return contact


# ---------------------------------------------------------------------------------------------
# Query contact(id) and the guarded fields Contact.email / Contact.phone (R1, R2, R3)

CONTACT_FIELD_MATRIX = [
    # (contact, role, outcome)
    ("own", "admin", "ok"),
    ("own", "owner", "ok"),
    ("own", "other", "NOT_FOUND"),
    ("own", "office_wide", "masked"),
    ("own", "foreign_admin", "NOT_FOUND"),
    ("unassigned", "admin", "ok"),
    ("unassigned", "owner", "NOT_FOUND"),
    ("unassigned", "other", "NOT_FOUND"),
    ("unassigned", "office_wide", "ok"),
    ("unassigned", "foreign_admin", "NOT_FOUND"),
    ("office_wide", "admin", "ok"),
    ("office_wide", "owner", "NOT_FOUND"),
    ("office_wide", "other", "NOT_FOUND"),
    ("office_wide", "office_wide", "ok"),
    ("office_wide", "foreign_admin", "NOT_FOUND"),
]


@pytest.mark.parametrize("field", ["email", "phone"])
@pytest.mark.parametrize(("target", "role", "outcome"), CONTACT_FIELD_MATRIX)
async def test_contact_query_and_guarded_field(world, gql, target, role, outcome, field):
    """R1/R2: contact(id) is NOT_FOUND unless visible; R3: email and phone of a contact
    another user owns are masked for a non-admin, with FORBIDDEN on exactly that path."""
    contact = await target_contact(world, target)
    body = await gql(
        f"query($id: ID!) {{ contact(id: $id) {{ id lastName {field} }} }}",
        {"id": gid("Contact", contact.id)},
        as_=actor(world, role),
    )
    if outcome == "NOT_FOUND":
        error = the_error(body)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["path"] == ["contact"]
        assert body["data"]["contact"] is None
        return
    node = body["data"]["contact"]
    assert node["id"] == gid("Contact", contact.id)
    assert node["lastName"] == contact.last_name
    if outcome == "ok":
        assert not body.get("errors"), body["errors"]
        assert node[field] == getattr(contact, field)
        assert node[field]
    else:
        assert outcome == "masked"
        assert node[field] is None
        error = the_error(body)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["path"] == ["contact", field]


async def test_masking_applies_per_contact_in_lists(world, gql):
    """R3 in a list: the office-wide agent gets email and phone of unassigned and own
    contacts, and a FORBIDDEN error on exactly the masked fields of others' contacts."""
    own = await target_contact(world, "own")
    other = await world.contact(owner=world.other_agent)
    unassigned = await target_contact(world, "unassigned")
    mine = await target_contact(world, "office_wide")
    body = await gql(
        "{ contacts(first: 50) { edges { node { id email phone } } } }", as_=world.office_wide
    )
    nodes = [edge["node"] for edge in body["data"]["contacts"]["edges"]]
    position = {node["id"]: index for index, node in enumerate(nodes)}
    for contact in (unassigned, mine):
        node = nodes[position[gid("Contact", contact.id)]]
        assert (node["email"], node["phone"]) == (contact.email, contact.phone)
    expected_paths = set()
    for contact in (own, other):
        index = position[gid("Contact", contact.id)]
        assert nodes[index]["email"] is None
        assert nodes[index]["phone"] is None
        for field in ("email", "phone"):
            expected_paths.add(("contacts", "edges", index, "node", field))
    assert set(error_codes(body)) == {"FORBIDDEN"}
    assert {tuple(error["path"]) for error in body["errors"]} == expected_paths


async def test_unassigned_contact_visible_to_office_wide_not_to_plain_agent(world, gql):
    """R2/R3: an unassigned contact is the office-wide account's, email included; a plain
    agent gets NOT_FOUND for it."""
    contact = await target_contact(world, "unassigned")
    query = "query($id: ID!) { contact(id: $id) { id email unassigned } }"
    variables = {"id": gid("Contact", contact.id)}
    data = await gql.ok(query, variables, as_=world.office_wide)
    assert data["contact"] == {
        "id": gid("Contact", contact.id),
        "email": contact.email,
        "unassigned": True,
    }
    body = await gql(query, variables, as_=world.agent)
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"]["contact"] is None


# ---------------------------------------------------------------------------------------------
# Query contacts: which contacts each role's list holds, and its totalCount (R1, R2)

CONTACTS_LIST_MATRIX = [
    # (role, the contacts its list holds)
    ("admin", {"own", "other", "unassigned", "office_wide"}),
    ("owner", {"own"}),
    ("other", {"other"}),
    ("office_wide", {"own", "other", "unassigned", "office_wide"}),
    ("foreign_admin", {"foreign"}),
]


@pytest.mark.parametrize(("role", "expected"), CONTACTS_LIST_MATRIX)
async def test_contacts_list_per_role(world, gql, role, expected):
    """R1/R2: the list holds exactly what the role may see, and totalCount agrees."""
    contacts = {
        "own": await world.contact(owner=world.agent),
        "other": await world.contact(owner=world.other_agent),
        "unassigned": await world.contact(owner=None),
        "office_wide": await world.contact(owner=world.office_wide),
        "foreign": await world.contact(by=world.foreign_admin),
    }
    data = await gql.ok(
        "{ contacts(first: 50) { totalCount edges { node { id } } } }", as_=actor(world, role)
    )
    seen = {edge["node"]["id"] for edge in data["contacts"]["edges"]}
    assert seen == {gid("Contact", contacts[name].id) for name in expected}
    assert data["contacts"]["totalCount"] == len(expected)


async def test_foreign_admin_lists_none_of_the_office(world, gql):
    """R1: another office's admin lists none of this office's contacts or users."""
    office_contacts = {
        gid("Contact", (await world.contact(owner=owner)).id)
        for owner in (world.agent, world.other_agent, world.office_wide, None)
    }
    data = await gql.ok(
        "{ contacts(first: 100) { totalCount edges { node { id } } } users { id } }",
        as_=world.foreign_admin,
    )
    listed = {edge["node"]["id"] for edge in data["contacts"]["edges"]}
    assert not listed & office_contacts
    office_users = {
        gid("User", user.id)
        for user in (world.admin, world.agent, world.other_agent, world.office_wide)
    }
    user_ids = {user["id"] for user in data["users"]}
    assert not user_ids & office_users
    assert user_ids == {gid("User", world.foreign_admin.id)}


# ---------------------------------------------------------------------------------------------
# Query users, User.email for self vs others (R1, R3)

USERS_LIST_MATRIX = [
    # (role, whose rows its list holds)
    ("admin", "office"),
    ("owner", "office"),
    ("other", "office"),
    ("office_wide", "office"),
    ("foreign_admin", "foreign"),
]


@pytest.mark.parametrize(("role", "expected"), USERS_LIST_MATRIX)
async def test_users_list_per_role(world, gql, role, expected):
    """R1: `users` lists the caller's own office only."""
    office = [world.admin, world.agent, world.other_agent, world.office_wide]
    want = office if expected == "office" else [world.foreign_admin]
    data = await gql.ok("{ users { id name } }", as_=actor(world, role))
    assert {user["id"] for user in data["users"]} == {gid("User", user.id) for user in want}


USER_EMAIL_MATRIX = [
    # (viewer, whose email, visible)
    ("admin", "admin", True),
    ("admin", "owner", True),
    ("admin", "office_wide", True),
    ("owner", "owner", True),
    ("owner", "admin", False),
    ("owner", "other", False),
    ("owner", "office_wide", False),
    ("other", "other", True),
    ("other", "owner", False),
    ("office_wide", "office_wide", True),
    ("office_wide", "owner", False),
    ("office_wide", "admin", False),
    ("foreign_admin", "foreign_admin", True),
]


@pytest.mark.parametrize(("viewer", "target", "visible"), USER_EMAIL_MATRIX)
async def test_user_email_self_vs_others(world, gql, viewer, target, visible):
    """R3: User.email is visible to the user themself and admins; others get null and a
    FORBIDDEN error on that row's email."""
    user = actor(world, target)
    body = await gql("{ users { id email } }", as_=actor(world, viewer))
    rows = body["data"]["users"]
    index = next(i for i, row in enumerate(rows) if row["id"] == gid("User", user.id))
    forbidden_paths = [e["path"] for e in body.get("errors") or []]
    assert set(error_codes(body)) <= {"FORBIDDEN"}
    if visible:
        assert rows[index]["email"] == user.email
        assert ["users", index, "email"] not in forbidden_paths
    else:
        assert rows[index]["email"] is None
        assert ["users", index, "email"] in forbidden_paths


@pytest.mark.parametrize("role", ROLES)
async def test_me_email_is_always_visible(world, gql, role):
    """R3: everyone sees their own email through `me`."""
    user = actor(world, role)
    data = await gql.ok("{ me { id email } }", as_=user)
    assert data["me"] == {"id": gid("User", user.id), "email": user.email}


# ---------------------------------------------------------------------------------------------
# Query office { unassignedCount } (R3)

UNASSIGNED_COUNT_MATRIX = [
    # (role, outcome: the office whose count it gets, or an error code)
    ("admin", "office"),
    ("owner", "FORBIDDEN"),
    ("other", "FORBIDDEN"),
    ("office_wide", "office"),
    ("foreign_admin", "foreign"),
]


@pytest.mark.parametrize(("role", "outcome"), UNASSIGNED_COUNT_MATRIX)
async def test_office_unassigned_count(world, gql, role, outcome):
    """R3: Office.unassignedCount needs admin or office-wide access; the rest of the office
    stays readable; each office counts its own."""
    for _ in range(2):
        await world.contact(owner=None)
    await world.contact(owner=world.agent)
    await world.contact(by=world.foreign_admin)  # unassigned, in the other office
    body = await gql("{ office { id name unassignedCount } }", as_=actor(world, role))
    office = body["data"]["office"]
    if outcome == "FORBIDDEN":
        assert office["name"] == world.office.name
        assert office["unassignedCount"] is None
        error = the_error(body)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["path"] == ["office", "unassignedCount"]
        return
    assert not body.get("errors"), body["errors"]
    if outcome == "office":
        assert (office["name"], office["unassignedCount"]) == (world.office.name, 2)
    else:
        assert (office["name"], office["unassignedCount"]) == (world.foreign_office.name, 1)


# ---------------------------------------------------------------------------------------------
# Contact mutations (R1–R4, R9, R11)

SNAPSHOT = """query($id: ID!) { contact(id: $id) {
  firstName status archived owner { id } activities { totalCount } } }"""


async def snapshot(gql: Any, world: Any, contact_id: int) -> dict[str, Any]:
    """The contact as the office admin sees it."""
    data = await gql.ok(SNAPSHOT, {"id": gid("Contact", contact_id)}, as_=world.admin)
    return data["contact"]


OPERATIONS: dict[str, tuple[str, Any]] = {
    # name: (document, variables for a contact id)
    "updateContact": (
        'mutation($id: ID!) { updateContact(id: $id, input: {firstName: "Changed"}) '
        "{ id firstName } }",
        lambda cid: {"id": cid},
    ),
    "setContactStatus": (
        "mutation($id: ID!) { setContactStatus(id: $id, status: ACTIVE) { id status } }",
        lambda cid: {"id": cid},
    ),
    "assignContacts": (
        "mutation($ids: [ID!]!) { assignContacts(contactIds: $ids, ownerId: null) }",
        lambda cid: {"ids": [cid]},
    ),
    "deleteContact": (
        "mutation($id: ID!) { deleteContact(id: $id) { id archived } }",
        lambda cid: {"id": cid},
    ),
    "restoreContact": (
        "mutation($id: ID!) { restoreContact(id: $id) { id archived } }",
        lambda cid: {"id": cid},
    ),
    "logActivity": (
        "mutation($id: ID!) { logActivity(input: {contactId: $id, kind: CALL}) { id kind } }",
        lambda cid: {"id": cid},
    ),
}


def expected_change(operation: str, before: dict[str, Any]) -> dict[str, Any]:
    after = dict(before)
    if operation == "updateContact":
        after["firstName"] = "Changed"
    elif operation == "setContactStatus":
        after["status"] = "ACTIVE"
    elif operation == "assignContacts":
        after["owner"] = None
    elif operation == "deleteContact":
        after["archived"] = True
    elif operation == "restoreContact":
        after["archived"] = False
    elif operation == "logActivity":
        after["activities"] = {"totalCount": before["activities"]["totalCount"] + 1}
    return after


def _rows(operation: str, target: str, outcomes: dict[str, str]) -> list[tuple[str, str, str, str]]:
    return [(operation, target, role, outcomes[role]) for role in ROLES]


NF, FB = "NOT_FOUND", "FORBIDDEN"
CONTACT_MUTATION_MATRIX = [
    # (operation, contact, role, outcome)
    *_rows(
        "updateContact",
        "own",
        {"admin": "ok", "owner": "ok", "other": NF, "office_wide": FB, "foreign_admin": NF},
    ),
    *_rows(
        "updateContact",
        "unassigned",
        {"admin": "ok", "owner": NF, "other": NF, "office_wide": "ok", "foreign_admin": NF},
    ),
    *_rows(
        "setContactStatus",
        "own",
        {"admin": "ok", "owner": "ok", "other": NF, "office_wide": FB, "foreign_admin": NF},
    ),
    *_rows(
        "setContactStatus",
        "unassigned",
        {"admin": "ok", "owner": NF, "other": NF, "office_wide": "ok", "foreign_admin": NF},
    ),
    *_rows(
        "assignContacts",
        "own",
        {"admin": "ok", "owner": FB, "other": FB, "office_wide": FB, "foreign_admin": NF},
    ),
    *_rows(
        "deleteContact",
        "own",
        {"admin": "ok", "owner": FB, "other": FB, "office_wide": FB, "foreign_admin": NF},
    ),
    *_rows(
        "deleteContact",
        "unassigned",
        {"admin": "ok", "owner": FB, "other": FB, "office_wide": FB, "foreign_admin": NF},
    ),
    *_rows(
        "restoreContact",
        "own",
        {"admin": "ok", "owner": FB, "other": FB, "office_wide": FB, "foreign_admin": NF},
    ),
    *_rows(
        "logActivity",
        "own",
        {"admin": "ok", "owner": "ok", "other": NF, "office_wide": "ok", "foreign_admin": NF},
    ),
    *_rows(
        "logActivity",
        "unassigned",
        {"admin": "ok", "owner": NF, "other": NF, "office_wide": "ok", "foreign_admin": NF},
    ),
]


@pytest.mark.parametrize(("operation", "target", "role", "outcome"), CONTACT_MUTATION_MATRIX)
async def test_contact_mutation(world, gql, operation, target, role, outcome):
    """R1–R3, R11: who may change a contact. A refusal changes nothing; NOT_FOUND for what
    the caller cannot see, FORBIDDEN for what they see but may not change (or a right
    they lack: assigning needs admin, archiving needs canDelete)."""
    contact = await target_contact(world, target)
    if operation == "restoreContact":
        await gql.ok(
            OPERATIONS["deleteContact"][0], {"id": gid("Contact", contact.id)}, as_=world.admin
        )
    before = await snapshot(gql, world, contact.id)
    document, variables = OPERATIONS[operation]
    body = await gql(document, variables(gid("Contact", contact.id)), as_=actor(world, role))
    after = await snapshot(gql, world, contact.id)
    if outcome == "ok":
        assert not body.get("errors"), body["errors"]
        if operation == "assignContacts":
            assert body["data"]["assignContacts"] == 1
        assert after == expected_change(operation, before)
    else:
        error = the_error(body)
        assert error["extensions"]["code"] == outcome, error
        assert error["path"] == [operation]
        assert body["data"] is None
        assert after == before


CREATE_CONTACT_MATRIX = [
    # (role, who owns what they create without a CRM owner)
    ("admin", "nobody"),
    ("owner", "creator"),
    ("other", "creator"),
    ("office_wide", "nobody"),
    ("foreign_admin", "nobody"),
]


@pytest.mark.parametrize(("role", "owned_by"), CREATE_CONTACT_MATRIX)
async def test_create_contact(world, gql, role, owned_by):
    """R1/R2/R5: anyone creates contacts in their own office; a plain agent's contact
    without a CRM owner is theirs (else they could not see it), an admin's or office-wide
    user's is unassigned. It lands in the creator's office only."""
    user = actor(world, role)
    email = f"{uuid.uuid4().hex[:10]}@client.example"
    data = await gql.ok(
        "mutation($input: ContactInput!) { createContact(input: $input) "
        "{ id email unassigned owner { id } } }",
        {"input": {"firstName": "New", "lastName": "Contact", "email": email}},
        as_=user,
    )
    created = data["createContact"]
    assert created["email"] == email
    if owned_by == "creator":
        assert created["owner"] == {"id": gid("User", user.id)}
    else:
        assert created["unassigned"] is True
        assert created["owner"] is None
    # The creator reads it back with its email.
    read = await gql.ok(
        "query($id: ID!) { contact(id: $id) { id email } }", {"id": created["id"]}, as_=user
    )
    assert read["contact"] == {"id": created["id"], "email": email}
    # The office's admin sees it only if it was created in the office.
    body = await gql(
        "query($id: ID!) { contact(id: $id) { id } }", {"id": created["id"]}, as_=world.admin
    )
    if role == "foreign_admin":
        assert error_codes(body) == ["NOT_FOUND"]
    else:
        assert body["data"]["contact"] == {"id": created["id"]}


async def test_can_delete_agent_without_visibility_gets_not_found(world, gql):
    """R1/R11: canDelete does not widen visibility: another agent's contact is NOT_FOUND."""
    deleter = await make_user(world.office, can_delete=True, crm_agent_id=f"D-{uuid.uuid4().hex}")
    contact = await world.contact(owner=world.agent)
    before = await snapshot(gql, world, contact.id)
    for operation in ("deleteContact", "restoreContact"):
        document, variables = OPERATIONS[operation]
        body = await gql(document, variables(gid("Contact", contact.id)), as_=deleter)
        assert error_codes(body) == ["NOT_FOUND"], (operation, body)
    assert await snapshot(gql, world, contact.id) == before


async def test_can_delete_agent_archives_and_restores_own_contact(world, gql):
    """R11: an agent with canDelete archives their own contact (it leaves the list) and
    restores it."""
    deleter = await make_user(world.office, can_delete=True, crm_agent_id=f"D-{uuid.uuid4().hex}")
    contact = await world.contact(owner=deleter)
    cid = gid("Contact", contact.id)
    list_query = "{ contacts { totalCount edges { node { id } } } }"
    assert (await gql.ok(list_query, as_=deleter))["contacts"]["totalCount"] == 1
    data = await gql.ok(OPERATIONS["deleteContact"][0], {"id": cid}, as_=deleter)
    assert data["deleteContact"] == {"id": cid, "archived": True}
    listed = await gql.ok(list_query, as_=deleter)
    assert listed["contacts"] == {"totalCount": 0, "edges": []}
    data = await gql.ok(OPERATIONS["restoreContact"][0], {"id": cid}, as_=deleter)
    assert data["restoreContact"] == {"id": cid, "archived": False}
    listed = await gql.ok(list_query, as_=deleter)
    assert listed["contacts"] == {"totalCount": 1, "edges": [{"node": {"id": cid}}]}


# ---------------------------------------------------------------------------------------------
# A contact of another office, or one the caller cannot see, answers exactly as a missing id (R1)

NOT_FOUND_ALIKE = [
    # (role, whose contact, operation)
    ("admin", "foreign", "contact"),
    ("admin", "foreign", "updateContact"),
    ("admin", "foreign", "setContactStatus"),
    ("admin", "foreign", "assignContacts"),
    ("admin", "foreign", "deleteContact"),
    ("admin", "foreign", "restoreContact"),
    ("admin", "foreign", "logActivity"),
    ("other", "own", "contact"),
    ("other", "own", "updateContact"),
    ("other", "own", "setContactStatus"),
    ("other", "own", "logActivity"),
    ("owner", "unassigned", "contact"),
    ("owner", "unassigned", "updateContact"),
]


@pytest.mark.parametrize(("role", "whose", "operation"), NOT_FOUND_ALIKE)
async def test_invisible_contact_answers_like_a_missing_one(world, gql, role, whose, operation):
    """R1: the answer for another office's contact, or one the caller may not see, is the
    same body (message, code, path) as for an id no contact has."""
    if whose == "foreign":
        contact = await world.contact(by=world.foreign_admin)
    else:
        contact = await target_contact(world, whose)
    if operation == "contact":
        document, variables = "query($id: ID!) { contact(id: $id) { id } }", lambda c: {"id": c}
    else:
        document, variables = OPERATIONS[operation]
    user = actor(world, role)
    hidden = await gql(document, variables(gid("Contact", contact.id)), as_=user)
    missing = await gql(document, variables(MISSING_CONTACT_ID), as_=user)
    assert error_codes(hidden) == ["NOT_FOUND"]
    assert hidden == missing


# ---------------------------------------------------------------------------------------------
# User mutations (R4)

CREATE_USER_MATRIX = [
    # (role, outcome)
    ("admin", "ok"),
    ("owner", "FORBIDDEN"),
    ("other", "FORBIDDEN"),
    ("office_wide", "FORBIDDEN"),
    ("foreign_admin", "ok"),
]

USER_FIELDS = "id name email role active crmAgentId officeWideAccess canExport canDelete"


async def users_by_email(gql: Any, admin: Any) -> dict[str, dict[str, Any]]:
    data = await gql.ok(f"{{ users {{ {USER_FIELDS} }} }}", as_=admin)
    return {user["email"]: user for user in data["users"]}


@pytest.mark.parametrize(("role", "outcome"), CREATE_USER_MATRIX)
async def test_create_user(world, gql, role, outcome):
    """R4: only admins create users, in their own office; a refusal creates nobody."""
    email = unique_email("new")
    body = await gql(
        "mutation($input: UserInput!) { createUser(input: $input) { id email role canDelete } }",
        {
            "input": {
                "email": email,
                "name": "New Person",
                "password": "a-long-enough-password",
                "role": "ADMIN",
                "canDelete": True,
            }
        },
        as_=actor(world, role),
    )
    office_users = await users_by_email(gql, world.admin)
    foreign_users = await users_by_email(gql, world.foreign_admin)
    if outcome == "ok":
        assert not body.get("errors"), body["errors"]
        assert body["data"]["createUser"]["email"] == email
        assert body["data"]["createUser"]["role"] == "ADMIN"
        mine, theirs = (
            (foreign_users, office_users)
            if role == "foreign_admin"
            else (office_users, foreign_users)
        )
        assert email in mine
        assert email not in theirs
    else:
        error = the_error(body)
        assert error["extensions"]["code"] == outcome
        assert error["path"] == ["createUser"]
        assert email not in office_users
        assert email not in foreign_users


UPDATE_USER_MATRIX = [
    # (actor, target ("self" = the actor), patch, outcome)
    ("owner", "self", {"name": "Renamed Self"}, "ok"),
    ("owner", "self", {"role": "ADMIN"}, "FORBIDDEN"),
    ("owner", "self", {"officeWideAccess": True}, "FORBIDDEN"),
    ("owner", "self", {"canExport": True}, "FORBIDDEN"),
    ("owner", "self", {"canDelete": True}, "FORBIDDEN"),
    ("owner", "self", {"crmAgentId": "SELF-CHOSEN"}, "FORBIDDEN"),
    ("owner", "self", {"active": False}, "FORBIDDEN"),
    ("owner", "self", {"name": "Sneaky", "canDelete": True}, "FORBIDDEN"),
    ("owner", "other", {"name": "Renamed Other"}, "FORBIDDEN"),
    ("owner", "admin", {"role": "AGENT"}, "FORBIDDEN"),
    ("office_wide", "self", {"name": "Wide Renamed"}, "ok"),
    ("office_wide", "self", {"role": "ADMIN"}, "FORBIDDEN"),
    ("office_wide", "self", {"canDelete": True}, "FORBIDDEN"),
    ("office_wide", "self", {"canExport": True}, "FORBIDDEN"),
    ("office_wide", "owner", {"officeWideAccess": True}, "FORBIDDEN"),
    ("admin", "self", {"name": "Admin Renamed"}, "ok"),
    ("admin", "self", {"role": "AGENT"}, "FORBIDDEN"),
    ("admin", "self", {"active": False}, "FORBIDDEN"),
    ("admin", "owner", {"name": "Renamed By Admin"}, "ok"),
    ("admin", "owner", {"role": "ADMIN"}, "ok"),
    ("admin", "owner", {"officeWideAccess": True, "canExport": True, "canDelete": True}, "ok"),
    ("admin", "office_wide", {"officeWideAccess": False}, "ok"),
    ("foreign_admin", "owner", {"name": "Hijacked"}, "NOT_FOUND"),
    ("foreign_admin", "owner", {"role": "ADMIN"}, "NOT_FOUND"),
]


@pytest.mark.parametrize(("role", "target", "patch", "outcome"), UPDATE_USER_MATRIX)
async def test_update_user(world, gql, role, target, patch, outcome):
    """R4: admins change users and grant flags (never their own role or active); a user
    may change only their own name; nobody raises their own rights; another office's
    user is NOT_FOUND. A refusal changes nothing."""
    user = actor(world, role)
    subject = user if target == "self" else actor(world, target)
    before = (await users_by_email(gql, world.admin))[subject.email]
    body = await gql(
        "mutation($id: ID!, $input: UserPatch!) { updateUser(id: $id, input: $input) "
        "{ id name role officeWideAccess canExport canDelete } }",
        {"id": gid("User", subject.id), "input": patch},
        as_=user,
    )
    after = (await users_by_email(gql, world.admin))[subject.email]
    if outcome == "ok":
        assert not body.get("errors"), body["errors"]
        assert after == {**before, **patch}
    else:
        error = the_error(body)
        assert error["extensions"]["code"] == outcome
        assert error["path"] == ["updateUser"]
        assert after == before


# ---------------------------------------------------------------------------------------------
# updateOfficeSettings (R4: admins only; R1: one's own office)

SETTINGS_MATRIX = [
    ("admin", "ok"),
    ("owner", "FORBIDDEN"),
    ("other", "FORBIDDEN"),
    ("office_wide", "FORBIDDEN"),
    ("foreign_admin", "ok"),
]


@pytest.mark.parametrize(("role", "outcome"), SETTINGS_MATRIX)
async def test_update_office_settings(world, gql, role, outcome):
    """Only admins change office settings, and only their own office's."""
    read = "{ office { id settings { riskDays staleDays } } }"
    office_before = (await gql.ok(read, as_=world.admin))["office"]
    foreign_before = (await gql.ok(read, as_=world.foreign_admin))["office"]
    new_risk = office_before["settings"]["riskDays"] + 7
    body = await gql(
        "mutation($days: Int!) { updateOfficeSettings(input: {riskDays: $days}) "
        "{ id settings { riskDays } } }",
        {"days": new_risk},
        as_=actor(world, role),
    )
    office_after = (await gql.ok(read, as_=world.admin))["office"]
    foreign_after = (await gql.ok(read, as_=world.foreign_admin))["office"]
    if outcome == "ok":
        assert not body.get("errors"), body["errors"]
        changed, untouched = (
            (foreign_after, (office_before, office_after))
            if role == "foreign_admin"
            else (office_after, (foreign_before, foreign_after))
        )
        assert body["data"]["updateOfficeSettings"]["id"] == changed["id"]
        assert changed["settings"]["riskDays"] == new_risk
        assert untouched[0] == untouched[1]
    else:
        error = the_error(body)
        assert error["extensions"]["code"] == outcome
        assert error["path"] == ["updateOfficeSettings"]
        assert office_after == office_before
        assert foreign_after == foreign_before
