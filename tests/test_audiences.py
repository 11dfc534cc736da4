"""Audiences (R13, with R1–R3 and R11 as they apply to them), over HTTP: system audiences
that exist without anyone creating them, custom audiences made from a contact filter, live
sizes and members, who may see and change which audience, and the input they refuse."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from api.core import ids
from tests.conftest import assert_clean, error_codes, the_error
from tests.test_defence import baseline, counting_sql

OFFICE_SYSTEM = ["All contacts", "Unassigned contacts", "Inactive contacts", "At risk", "No status"]

AUDIENCES = """
query($account: SendAccount) {
  audiences(account: $account) { id name kind account owner { id } size }
}
"""
AUDIENCE = """
query($id: ID!, $first: Int) {
  audience(id: $id) {
    id name kind account size owner { id }
    contacts(first: $first) { totalCount edges { node { id } } }
  }
}
"""
CREATE = """
mutation($input: AudienceInput!) {
  createAudience(input: $input) {
    id name kind account size owner { id }
    contacts { totalCount edges { node { id } } }
    ownerBreakdown { owner { id } count }
    filter { status noStatus ownerId unassigned atRisk search }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: AudiencePatch!) {
  updateAudience(id: $id, input: $input) { id name size }
}
"""
DELETE = "mutation($id: ID!) { deleteAudience(id: $id) { id name } }"
SIZE = "query($id: ID!) { audience(id: $id) { size } }"


def gid(kind: str, pk: int) -> str:
    return ids.encode(kind, pk)


async def audience_rows(office: Any) -> int:
    from api.audiences.models import Audience

    return await Audience.filter(office_id=office.id).count()


@dataclass
class Cast:
    """One contact of each kind the system audiences tell apart, named by what it is."""

    agent_active: Any
    agent_no_status: Any
    agent_inactive: Any
    other_at_risk: Any
    unassigned_no_status: Any
    unassigned_at_risk: Any
    agent_archived: Any
    unassigned_archived: Any

    def ids(self, *names: str) -> set[str]:
        return {gid("Contact", getattr(self, name).id) for name in names}


@pytest.fixture
async def cast(world: Any) -> Cast:
    from api.contacts.models import Contact, ContactStatus

    active, inactive = ContactStatus.ACTIVE, ContactStatus.INACTIVE
    made = Cast(
        agent_active=await world.contact(owner=world.agent, status=active),
        agent_no_status=await world.contact(owner=world.agent),
        agent_inactive=await world.contact(owner=world.agent, status=inactive),
        other_at_risk=await world.contact(owner=world.other_agent, status=active),
        unassigned_no_status=await world.contact(),
        unassigned_at_risk=await world.contact(status=active),
        agent_archived=await world.contact(owner=world.agent, status=active),
        unassigned_archived=await world.contact(),
    )
    # The audit sets atRiskSince and deleteContact archives; the rows are set as they leave them.
    at_risk = [made.other_at_risk.id, made.unassigned_at_risk.id]
    await Contact.filter(id__in=at_risk).update(at_risk_since=datetime.now(UTC))
    archived = [made.agent_archived.id, made.unassigned_archived.id]
    await Contact.filter(id__in=archived).update(archived=True, archived_at=datetime.now(UTC))
    return made


async def listed(gql: Any, user: Any, account: str | None = None) -> list[dict[str, Any]]:
    data = await gql.ok(AUDIENCES, {"account": account}, as_=user)
    return data["audiences"]


async def by_name(gql: Any, user: Any, account: str | None = None) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in await listed(gql, user, account)}


async def member_ids(gql: Any, user: Any, audience_id: str) -> tuple[int, set[str]]:
    data = await gql.ok(AUDIENCE, {"id": audience_id, "first": 100}, as_=user)
    audience = data["audience"]
    found = {edge["node"]["id"] for edge in audience["contacts"]["edges"]}
    assert audience["contacts"]["totalCount"] == audience["size"] == len(found)
    return audience["size"], found


async def create(gql: Any, user: Any, name: str, account: str, filter: dict[str, Any]) -> Any:
    input = {"name": name, "account": account, "filter": filter}
    return (await gql.ok(CREATE, {"input": input}, as_=user))["createAudience"]


# --- system audiences (R13) ------------------------------------------------------------------


async def test_system_audiences_exist_in_every_account_without_being_created(gql, world):
    """R13: an agent's own account has "My contacts"; the office-wide account, for admins and
    office-wide users, has the five office audiences, in a fixed order."""
    for user in (world.agent, world.admin, world.office_wide):
        own = await listed(gql, user)
        assert [(a["name"], a["kind"], a["account"]) for a in own] == [
            ("My contacts", "SYSTEM", "USER")
        ]
        assert own[0]["owner"] == {"id": gid("User", user.id)}
        assert await listed(gql, user, "USER") == own
    office = await listed(gql, world.admin, "OFFICE")
    assert [a["name"] for a in office] == OFFICE_SYSTEM
    assert {(a["kind"], a["account"]) for a in office} == {("SYSTEM", "OFFICE")}
    assert all(a["owner"] is None for a in office)
    assert await listed(gql, world.office_wide, "OFFICE") == office


async def test_listing_again_or_at_once_creates_no_duplicates(gql, world):
    """Listing an account's audiences, twice or by several requests at the same moment,
    leaves exactly one row per system audience and answers the same ids each time."""
    from api.audiences.models import Audience

    office_answers, agent_answers = await asyncio.gather(
        asyncio.gather(*(listed(gql, world.admin, "OFFICE") for _ in range(6))),
        asyncio.gather(*(listed(gql, world.agent) for _ in range(6))),
    )
    office_answers = [*office_answers, await listed(gql, world.admin, "OFFICE")]
    agent_answers = [*agent_answers, await listed(gql, world.agent)]
    assert all(a == office_answers[0] for a in office_answers)
    assert all(a == agent_answers[0] for a in agent_answers)
    assert [a["name"] for a in office_answers[0]] == OFFICE_SYSTEM
    rows = await Audience.filter(office_id=world.office.id).values_list("account_key", flat=True)
    assert sorted(rows) == sorted(["office"] * 5 + [f"user:{world.agent.id}"])


async def test_system_audience_sizes_and_members(gql, world, cast):
    """Each system audience holds exactly its contacts, archived ones never (R11); a user
    account's "My contacts" holds the holder's contacts only."""
    office = await by_name(gql, world.admin, "OFFICE")
    expected = {
        "All contacts": cast.ids(
            "agent_active",
            "agent_no_status",
            "agent_inactive",
            "other_at_risk",
            "unassigned_no_status",
            "unassigned_at_risk",
        ),
        "Unassigned contacts": cast.ids("unassigned_no_status", "unassigned_at_risk"),
        "Inactive contacts": cast.ids("agent_inactive"),
        "At risk": cast.ids("other_at_risk", "unassigned_at_risk"),
        "No status": cast.ids("agent_no_status", "unassigned_no_status"),
    }
    for name, contacts in expected.items():
        assert office[name]["size"] == len(contacts), name
        assert await member_ids(gql, world.admin, office[name]["id"]) == (
            len(contacts),
            contacts,
        ), name

    mine = {
        world.agent: cast.ids("agent_active", "agent_no_status", "agent_inactive"),
        world.other_agent: cast.ids("other_at_risk"),
        world.office_wide: set(),
        world.admin: set(),
    }
    for user, contacts in mine.items():
        audience = (await by_name(gql, user))["My contacts"]
        assert await member_ids(gql, user, audience["id"]) == (len(contacts), contacts)


async def test_user_account_audience_holds_only_the_holders_contacts(gql, world, cast):
    """R14's premise: whatever its filter says, a user account's audience holds only contacts
    the holder owns: another agent's and unassigned contacts never."""
    active = await create(gql, world.agent, "Active ones", "USER", {"status": ["ACTIVE"]})
    assert active["account"] == "USER"
    assert active["owner"] == {"id": gid("User", world.agent.id)}
    assert await member_ids(gql, world.agent, active["id"]) == (1, cast.ids("agent_active"))

    theirs = await create(
        gql, world.agent, "Theirs", "USER", {"ownerId": gid("User", world.other_agent.id)}
    )
    assert theirs["size"] == 0
    nobody = await create(gql, world.agent, "Nobody's", "USER", {"unassigned": True})
    assert nobody["size"] == 0


# --- custom audiences ------------------------------------------------------------------------


async def test_create_audience_from_a_filter(gql, world, cast):
    """createAudience: an office-wide audience from a filter, with its size, contacts, the
    filter it keeps and its members per owner (unassigned as owner null), largest first."""
    made = await create(
        gql, world.office_wide, "Has a status", "OFFICE", {"status": ["ACTIVE", "INACTIVE"]}
    )
    expected = cast.ids("agent_active", "agent_inactive", "other_at_risk", "unassigned_at_risk")
    assert (made["name"], made["kind"], made["account"], made["owner"]) == (
        "Has a status",
        "CUSTOM",
        "OFFICE",
        None,
    )
    assert made["size"] == made["contacts"]["totalCount"] == 4
    assert {edge["node"]["id"] for edge in made["contacts"]["edges"]} == expected
    assert made["filter"] == {
        "status": ["ACTIVE", "INACTIVE"],
        "noStatus": None,
        "ownerId": None,
        "unassigned": None,
        "atRisk": None,
        "search": None,
    }
    breakdown = made["ownerBreakdown"]
    assert breakdown[0] == {"owner": {"id": gid("User", world.agent.id)}, "count": 2}
    assert sorted(breakdown[1:], key=str) == sorted(
        [
            {"owner": {"id": gid("User", world.other_agent.id)}, "count": 1},
            {"owner": None, "count": 1},
        ],
        key=str,
    )
    office = await listed(gql, world.admin, "OFFICE")
    assert [a["name"] for a in office] == [*OFFICE_SYSTEM, "Has a status"]


async def test_custom_audiences_list_after_system_ones_by_name(gql, world):
    for name in ("zebra", "Alpha", "mango"):
        await create(gql, world.agent, name, "USER", {})
    assert [a["name"] for a in await listed(gql, world.agent)] == [
        "My contacts",
        "Alpha",
        "mango",
        "zebra",
    ]


async def test_size_and_members_are_live(gql, world, cast):
    """An audience is evaluated when read: a contact that starts or stops matching, is
    created or archived, changes its size and members at once."""
    from api.contacts.models import ContactStatus
    from api.contacts.service import archive_contact, set_status

    made = await create(gql, world.agent, "Active", "USER", {"status": ["ACTIVE"]})
    assert made["size"] == 1

    await set_status(world.agent, cast.agent_no_status.id, ContactStatus.ACTIVE, None)
    newcomer = await world.contact(owner=world.agent, status=ContactStatus.ACTIVE)
    size, members = await member_ids(gql, world.agent, made["id"])
    assert (size, members) == (
        3,
        cast.ids("agent_active", "agent_no_status") | {gid("Contact", newcomer.id)},
    )

    await archive_contact(world.admin, newcomer.id)
    assert (await gql.ok(SIZE, {"id": made["id"]}, as_=world.agent))["audience"]["size"] == 2
    office = await by_name(gql, world.admin, "OFFICE")
    assert office["No status"]["size"] == 1  # agent_no_status left it


async def test_update_and_delete_a_custom_audience(gql, world, cast):
    """updateAudience renames and refilters; deleteAudience removes it from lists and
    lookups, and its name is free again."""
    made = await create(gql, world.agent, "Mine", "USER", {"status": ["ACTIVE"]})
    renamed = await gql.ok(
        UPDATE, {"id": made["id"], "input": {"name": "  Renamed  "}}, as_=world.agent
    )
    assert renamed["updateAudience"] == {"id": made["id"], "name": "Renamed", "size": 1}

    refiltered = await gql.ok(
        UPDATE, {"id": made["id"], "input": {"filter": {"noStatus": True}}}, as_=world.agent
    )
    assert refiltered["updateAudience"] == {"id": made["id"], "name": "Renamed", "size": 1}
    assert await member_ids(gql, world.agent, made["id"]) == (1, cast.ids("agent_no_status"))

    both = await gql.ok(
        UPDATE,
        {"id": made["id"], "input": {"name": "Both", "filter": {}}},
        as_=world.agent,
    )
    assert both["updateAudience"] == {"id": made["id"], "name": "Both", "size": 3}

    deleted = await gql.ok(DELETE, {"id": made["id"]}, as_=world.agent)
    assert deleted["deleteAudience"] == {"id": made["id"], "name": "Both"}
    assert [a["name"] for a in await listed(gql, world.agent)] == ["My contacts"]
    for query, variables in (
        (SIZE, {"id": made["id"]}),
        (DELETE, {"id": made["id"]}),
        (UPDATE, {"id": made["id"], "input": {"name": "Back"}}),
    ):
        assert error_codes(await gql(query, variables, as_=world.agent)) == ["NOT_FOUND"]
    again = await create(gql, world.agent, "Both", "USER", {})
    assert again["id"] != made["id"]


async def test_names_are_unique_per_account_among_live_audiences(gql, world):
    """A second live audience of the same name (any case) in one account is a CONFLICT on
    `name`, for creating and renaming alike; other accounts may use the name."""
    first = await create(gql, world.agent, "Buyers", "USER", {})
    body = await gql(
        CREATE, {"input": {"name": "BUYERS", "account": "USER", "filter": {}}}, as_=world.agent
    )
    error = the_error(body)
    assert error["extensions"] == {"code": "CONFLICT", "field": "name"}
    second = await create(gql, world.agent, "Sellers", "USER", {})
    body = await gql(UPDATE, {"id": second["id"], "input": {"name": "buyers"}}, as_=world.agent)
    assert the_error(body)["extensions"] == {"code": "CONFLICT", "field": "name"}
    # Renaming to its own name changes nothing and is no conflict.
    same = await gql.ok(UPDATE, {"id": first["id"], "input": {"name": "Buyers"}}, as_=world.agent)
    assert same["updateAudience"]["name"] == "Buyers"
    await create(gql, world.other_agent, "Buyers", "USER", {})
    await create(gql, world.admin, "Buyers", "OFFICE", {})


async def test_system_audiences_cannot_be_changed_or_deleted(gql, world):
    for user, account in ((world.agent, "USER"), (world.admin, "OFFICE")):
        for audience in await listed(gql, user, account):
            body = await gql(UPDATE, {"id": audience["id"], "input": {"name": "X"}}, as_=user)
            assert error_codes(body) == ["CONFLICT"], body
            assert error_codes(await gql(DELETE, {"id": audience["id"]}, as_=user)) == ["CONFLICT"]
    assert [a["name"] for a in await listed(gql, world.admin, "OFFICE")] == OFFICE_SYSTEM


@pytest.mark.parametrize("state", ["SCHEDULED", "SENDING"])
async def test_audience_of_a_pending_campaign_cannot_be_deleted(gql, world, state):
    """A campaign the workers have yet to finish keeps its audience: CONFLICT; once it is
    sent, the audience may go (the row stays for the campaign)."""
    from api.audiences.models import Audience
    from api.campaigns.models import Campaign

    made = await create(gql, world.agent, "Campaign list", "USER", {})
    campaign = await Campaign.create(
        office_id=world.office.id,
        account="USER",
        sender_id=world.agent.id,
        audience_id=ids.decode("Audience", made["id"]),
        name="Spring",
        subject="Hello",
        body_html="<p>Hi</p>",
        state=state,
    )
    assert error_codes(await gql(DELETE, {"id": made["id"]}, as_=world.agent)) == ["CONFLICT"]
    assert [a["name"] for a in await listed(gql, world.agent)] == ["My contacts", "Campaign list"]

    await Campaign.filter(id=campaign.id).update(state="SENT")
    await gql.ok(DELETE, {"id": made["id"]}, as_=world.agent)
    row = await Audience.get(id=campaign.audience_id)
    assert row.deleted_at is not None


# --- who sees and changes what (R1–R3) -------------------------------------------------------


async def test_office_account_is_forbidden_to_a_plain_agent(gql, world):
    """R3: the office-wide account's audiences need admin or office-wide access."""
    before = await audience_rows(world.office)
    body = await gql(AUDIENCES, {"account": "OFFICE"}, as_=world.agent)
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql(
        CREATE, {"input": {"name": "Mine", "account": "OFFICE", "filter": {}}}, as_=world.agent
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert await audience_rows(world.office) == before


async def test_audiences_out_of_reach_answer_not_found(gql, world):
    """R1: another office's audience, another agent's, and an office audience for a plain
    agent all answer NOT_FOUND, exactly like an id nobody has."""
    agents = await create(gql, world.agent, "Agent's", "USER", {})
    office = await create(gql, world.admin, "Office's", "OFFICE", {})
    missing = gid("Audience", 2**62 + 7)
    not_found = {
        world.foreign_admin: [agents["id"], office["id"], missing],
        world.other_agent: [agents["id"], office["id"], missing],
        world.office_wide: [agents["id"], missing],
        world.agent: [office["id"], missing],
    }
    for user, audience_ids in not_found.items():
        for audience_id in audience_ids:
            body = await gql(SIZE, {"id": audience_id}, as_=user)
            error = the_error(body)
            assert error["extensions"] == {"code": "NOT_FOUND"}
            assert error["message"] == "Audience not found"
            assert body["data"] == {"audience": None}
            update = {"id": audience_id, "input": {"name": "Taken over"}}
            assert error_codes(await gql(UPDATE, update, as_=user)) == ["NOT_FOUND"]
            assert error_codes(await gql(DELETE, {"id": audience_id}, as_=user)) == ["NOT_FOUND"]
    # A well-formed id of another kind is no audience either.
    body = await gql(SIZE, {"id": gid("Contact", 1)}, as_=world.admin)
    assert error_codes(body) == ["NOT_FOUND"]


async def test_admin_reads_an_agents_audiences_but_does_not_change_them(gql, world, cast):
    made = await create(gql, world.agent, "Agent's", "USER", {})
    assert await member_ids(gql, world.admin, made["id"]) == (
        3,
        cast.ids("agent_active", "agent_no_status", "agent_inactive"),
    )
    body = await gql(UPDATE, {"id": made["id"], "input": {"name": "Admin's"}}, as_=world.admin)
    assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(await gql(DELETE, {"id": made["id"]}, as_=world.admin)) == ["FORBIDDEN"]
    assert [a["name"] for a in await listed(gql, world.agent)] == ["My contacts", "Agent's"]


async def test_office_wide_user_sees_others_contacts_masked_in_an_audience(gql, world, cast):
    """R3 through an audience: an office-wide (non-admin) user listing an office audience gets
    email null with FORBIDDEN on exactly the paths of contacts another agent owns."""
    mine = await world.contact(owner=world.office_wide)
    audience = (await by_name(gql, world.office_wide, "OFFICE"))["All contacts"]
    query = """
    query($id: ID!) { audience(id: $id) { contacts(first: 100) { edges { node { id email } } } } }
    """
    body = await gql(query, {"id": audience["id"]}, as_=world.office_wide)
    nodes = [edge["node"] for edge in body["data"]["audience"]["contacts"]["edges"]]
    position = {node["id"]: index for index, node in enumerate(nodes)}
    for contact in (cast.unassigned_no_status, cast.unassigned_at_risk, mine):
        assert nodes[position[gid("Contact", contact.id)]]["email"] == contact.email
    masked = [cast.agent_active, cast.agent_no_status, cast.agent_inactive, cast.other_at_risk]
    expected_paths = set()
    for contact in masked:
        index = position[gid("Contact", contact.id)]
        assert nodes[index]["email"] is None
        expected_paths.add(("audience", "contacts", "edges", index, "node", "email"))
    assert set(error_codes(body)) == {"FORBIDDEN"}
    assert {tuple(error["path"]) for error in body["errors"]} == expected_paths

    admin_view = await gql.ok(query, {"id": audience["id"]}, as_=world.admin)
    assert all(e["node"]["email"] for e in admin_view["audience"]["contacts"]["edges"])


# --- input (R20) -----------------------------------------------------------------------------


BAD_CREATES = [
    ({"name": "", "account": "USER", "filter": {}}, "name"),
    ({"name": "   ", "account": "USER", "filter": {}}, "name"),
    ({"name": "x" * 201, "account": "USER", "filter": {}}, "name"),
    ({"name": "Bell\x07", "account": "USER", "filter": {}}, "name"),
    (
        {"name": "All", "account": "USER", "filter": {"includeArchived": True}},
        "filter.includeArchived",
    ),
    ({"name": "Bad owner", "account": "USER", "filter": {"ownerId": "%%%"}}, "filter.ownerId"),
    (
        {
            "name": "Bad time",
            "account": "USER",
            "filter": {"lastActivityBefore": "2024-01-01T00:00:00"},
        },
        "filter.lastActivityBefore",
    ),
]


@pytest.mark.parametrize(("input", "field"), BAD_CREATES)
async def test_bad_create_input_is_refused_and_writes_nothing(gql, world, input, field):
    before = await audience_rows(world.office)
    body = await gql(CREATE, {"input": input}, as_=world.agent)
    assert_clean(body)
    error = the_error(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, body
    assert body["data"] is None
    assert await audience_rows(world.office) == before


async def test_longest_name_is_accepted(gql, world):
    made = await create(gql, world.agent, "x" * 200, "USER", {})
    assert made["name"] == "x" * 200


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"filter": {"includeArchived": True}}, "filter.includeArchived"),
        ({"name": "Fine", "filter": {"companyId": "not an id!"}}, "filter.companyId"),
    ],
)
async def test_bad_update_input_is_refused_and_changes_nothing(gql, world, cast, patch, field):
    made = await create(gql, world.agent, "Kept", "USER", {"status": ["ACTIVE"]})
    body = await gql(UPDATE, {"id": made["id"], "input": patch}, as_=world.agent)
    assert_clean(body)
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert [a["name"] for a in await listed(gql, world.agent)] == ["My contacts", "Kept"]
    assert await member_ids(gql, world.agent, made["id"]) == (1, cast.ids("agent_active"))


@pytest.mark.parametrize("bad_id", ["", "%%%", "x" * 65, "QXVkaWVuY2U6YWJj"])
@pytest.mark.parametrize("operation", ["audience", "update", "delete"])
async def test_malformed_ids_are_bad_input(gql, world, bad_id, operation):
    query, variables = {
        "audience": (SIZE, {"id": bad_id}),
        "update": (UPDATE, {"id": bad_id, "input": {"name": "N"}}),
        "delete": (DELETE, {"id": bad_id}),
    }[operation]
    before = await audience_rows(world.office)
    body = await gql(query, variables, as_=world.admin)
    assert_clean(body)
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
    assert await audience_rows(world.office) == before


@pytest.mark.parametrize(("first", "after"), [(0, None), (101, None), (5, "not a cursor")])
async def test_bad_page_arguments_are_bad_input(gql, world, first, after):
    audience = (await listed(gql, world.agent))[0]
    query = """
    query($id: ID!, $first: Int, $after: String) {
      audience(id: $id) { contacts(first: $first, after: $after) { totalCount } }
    }
    """
    body = await gql(query, {"id": audience["id"], "first": first, "after": after}, as_=world.agent)
    assert_clean(body)
    assert error_codes(body) == ["BAD_USER_INPUT"]


# --- pages ------------------------------------------------------------------------------------


async def test_audience_contacts_paginate_newest_first(gql, world, cast):
    audience = (await by_name(gql, world.admin, "OFFICE"))["All contacts"]
    query = """
    query($id: ID!, $after: String) {
      audience(id: $id) {
        contacts(first: 4, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
      }
    }
    """
    seen: list[str] = []
    after = None
    while True:
        page = (await gql.ok(query, {"id": audience["id"], "after": after}, as_=world.admin))[
            "audience"
        ]["contacts"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 6
    assert set(seen) == cast.ids(
        "agent_active",
        "agent_no_status",
        "agent_inactive",
        "other_at_risk",
        "unassigned_no_status",
        "unassigned_at_risk",
    )
    numbers = [ids.decode("Contact", i) for i in seen]
    assert numbers == sorted(numbers, reverse=True)


async def test_an_audience_page_costs_constant_sql(gql, world):
    """A page of an audience's contacts with owners and companies costs the same statements
    for 5 and 60 rows (no query per row); its owner breakdown, with every owner, costs three."""
    from api.contacts.models import Company, Contact

    owners = [world.agent, world.other_agent, world.office_wide, None]
    companies = [
        await Company.create(office_id=world.office.id, name=f"Co {n}", name_key=f"co {n}")
        for n in range(3)
    ]
    await Contact.bulk_create(
        [
            Contact(
                office_id=world.office.id,
                first_name="Bulk",
                last_name=f"Contact {n}",
                email=f"bulk{n}-{uuid.uuid4().hex[:6]}@client.example",
                owner_id=owners[n % len(owners)].id if owners[n % len(owners)] else None,
                company_id=companies[n % len(companies)].id,
            )
            for n in range(80)
        ]
    )
    audience = (await by_name(gql, world.admin, "OFFICE"))["All contacts"]
    page = """
    query($id: ID!, $n: Int) {
      audience(id: $id) {
        size
        contacts(first: $n) {
          totalCount edges { node { email owner { name } company { name } } }
        }
      }
    }
    """
    lookup = await baseline(gql, world.admin)
    counts = {}
    for size in (5, 60):
        with counting_sql() as statements:
            data = await gql.ok(page, {"id": audience["id"], "n": size}, as_=world.admin)
        found = data["audience"]
        assert len(found["contacts"]["edges"]) == size
        assert found["size"] == found["contacts"]["totalCount"] == 80
        counts[size] = len(statements) - lookup
    assert counts[5] == counts[60], counts
    # The audience, its size, the page, its count, the page's owners and companies.
    assert counts[5] <= 6, counts

    breakdown = "query($id: ID!) { audience(id: $id) { ownerBreakdown { owner { name } count } } }"
    with counting_sql() as statements:
        data = await gql.ok(breakdown, {"id": audience["id"]}, as_=world.admin)
    rows = data["audience"]["ownerBreakdown"]
    assert [row["count"] for row in rows] == [20, 20, 20, 20]
    assert sorted(str(row["owner"] and row["owner"]["name"]) for row in rows) == sorted(
        str(user and user.name) for user in owners
    )
    # The audience, one GROUP BY, one query for every owner.
    assert len(statements) - lookup == 3, statements
