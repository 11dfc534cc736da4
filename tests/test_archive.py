"""Archiving contacts (R11), through GraphQL over HTTP: deleteContact archives, the contact
leaves every list but keeps its history, restoreContact brings it back; both need canDelete."""

from __future__ import annotations

from typing import Any

import pytest

from api.core import ids
from tests.conftest import error_codes, make_user

DETAIL = """
  id archived firstName status
  statusHistory { from to source reason at }
  activities(first: 10) { totalCount edges { node { id kind at } } }
"""
READ = f"query($id: ID!) {{ contact(id: $id) {{ {DETAIL} }} }}"
DELETE = f"mutation($id: ID!) {{ deleteContact(id: $id) {{ {DETAIL} }} }}"
RESTORE = f"mutation($id: ID!) {{ restoreContact(id: $id) {{ {DETAIL} }} }}"
LIST = """
query($filter: ContactFilter) {
  contacts(filter: $filter, first: 100) { totalCount edges { node { id archived } } }
}"""
COUNTS = "query { office { unassignedCount } users { id contactCount } }"
SET_STATUS = """
mutation($id: ID!, $status: ContactStatus!, $reason: String) {
  setContactStatus(id: $id, status: $status, reason: $reason) { id }
}"""
LOG = "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }"


def cid(contact: Any) -> str:
    return ids.encode("Contact", contact.id)


def uid(user: Any) -> str:
    return ids.encode("User", user.id)


async def listed(gql: Any, as_: Any, filter: dict[str, Any] | None = None) -> list[str]:
    conn = (await gql.ok(LIST, {"filter": filter}, as_=as_))["contacts"]
    found = [e["node"]["id"] for e in conn["edges"]]
    assert conn["totalCount"] == len(found)
    return found


async def counts(gql: Any, admin: Any) -> tuple[int, dict[str, int]]:
    data = await gql.ok(COUNTS, as_=admin)
    return data["office"]["unassignedCount"], {u["id"]: u["contactCount"] for u in data["users"]}


async def with_history(gql: Any, world: Any, owner: Any) -> Any:
    """A contact of `owner` with a status change and an activity behind it."""
    contact = await world.contact(owner=owner)
    await gql.ok(
        SET_STATUS, {"id": cid(contact), "status": "ACTIVE", "reason": "met"}, as_=world.admin
    )
    await gql.ok(LOG, {"input": {"contactId": cid(contact), "kind": "CALL"}}, as_=world.admin)
    return contact


@pytest.fixture
async def deleter(world: Any) -> Any:
    """An agent with canDelete and a CRM id of their own."""
    return await make_user(world.office, can_delete=True, crm_agent_id=f"D-{world.office.id}")


async def test_delete_archives_and_keeps_history(gql, world):
    """R11: deleteContact archives; the contact leaves the list, totalCount and counts, yet
    stays readable by id with its status history and activities."""
    contact = await with_history(gql, world, world.agent)
    keep = await world.contact(owner=world.agent)
    loose = await with_history(gql, world, None)
    before = (await gql.ok(READ, {"id": cid(contact)}, as_=world.admin))["contact"]
    assert before["archived"] is False
    assert sorted(await listed(gql, world.admin)) == sorted([cid(contact), cid(keep), cid(loose)])
    unassigned_before, per_user_before = await counts(gql, world.admin)

    archived = (await gql.ok(DELETE, {"id": cid(contact)}, as_=world.admin))["deleteContact"]
    assert archived["archived"] is True
    assert {k: v for k, v in archived.items() if k != "archived"} == {
        k: v for k, v in before.items() if k != "archived"
    }
    await gql.ok(DELETE, {"id": cid(loose)}, as_=world.admin)

    assert await listed(gql, world.admin) == [cid(keep)]
    assert await listed(gql, world.agent) == [cid(keep)]
    assert await listed(gql, world.admin, {"status": ["ACTIVE"]}) == []
    unassigned, per_user = await counts(gql, world.admin)
    assert unassigned == unassigned_before - 1
    assert per_user[uid(world.agent)] == per_user_before[uid(world.agent)] - 1

    for viewer in (world.admin, world.agent):
        again = (await gql.ok(READ, {"id": cid(contact)}, as_=viewer))["contact"]
        assert again == archived
    assert len(archived["statusHistory"]) == 1
    assert archived["activities"]["totalCount"] == 1

    shown = await listed(gql, world.admin, {"includeArchived": True})
    assert sorted(shown) == sorted([cid(contact), cid(keep), cid(loose)])
    data = await gql.ok(LIST, {"filter": {"includeArchived": True}}, as_=world.admin)
    flags = {e["node"]["id"]: e["node"]["archived"] for e in data["contacts"]["edges"]}
    assert flags == {cid(contact): True, cid(keep): False, cid(loose): True}


async def test_restore_brings_contact_back(gql, world):
    """R11: restoreContact puts an archived contact back into lists, history intact."""
    contact = await with_history(gql, world, world.agent)
    before = (await gql.ok(READ, {"id": cid(contact)}, as_=world.admin))["contact"]
    await gql.ok(DELETE, {"id": cid(contact)}, as_=world.admin)
    assert await listed(gql, world.agent) == []

    restored = (await gql.ok(RESTORE, {"id": cid(contact)}, as_=world.admin))["restoreContact"]
    assert restored == before
    assert await listed(gql, world.agent) == [cid(contact)]
    assert await listed(gql, world.admin, {"status": ["ACTIVE"]}) == [cid(contact)]
    _, per_user = await counts(gql, world.admin)
    assert per_user[uid(world.agent)] == 1
    assert (await gql.ok(READ, {"id": cid(contact)}, as_=world.agent))["contact"] == before


@pytest.mark.parametrize("who", ["agent", "office_wide"])
async def test_delete_and_restore_need_can_delete(gql, world, who):
    """R11: without canDelete, deleteContact and restoreContact are FORBIDDEN, even for the
    contact's owner or an office-wide user, and nothing changes."""
    actor = getattr(world, who)
    live = await world.contact(owner=actor)
    gone = await world.contact(owner=actor)
    await gql.ok(DELETE, {"id": cid(gone)}, as_=world.admin)

    body = await gql(DELETE, {"id": cid(live)}, as_=actor)
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql(RESTORE, {"id": cid(gone)}, as_=actor)
    assert error_codes(body) == ["FORBIDDEN"]

    assert await listed(gql, world.admin) == [cid(live)]
    assert (await gql.ok(READ, {"id": cid(gone)}, as_=world.admin))["contact"]["archived"] is True


async def test_agent_with_can_delete_archives_and_restores(gql, world, deleter):
    """R11: an agent granted canDelete archives and restores their own contact."""
    contact = await world.contact(owner=deleter)
    data = await gql.ok(DELETE, {"id": cid(contact)}, as_=deleter)
    assert data["deleteContact"]["archived"] is True
    assert await listed(gql, deleter) == []
    assert await listed(gql, deleter, {"includeArchived": True}) == [cid(contact)]
    data = await gql.ok(RESTORE, {"id": cid(contact)}, as_=deleter)
    assert data["restoreContact"]["archived"] is False
    assert await listed(gql, deleter) == [cid(contact)]


async def test_delete_of_invisible_contact_is_not_found(gql, world, deleter):
    """R11/R1: canDelete does not reach contacts one cannot see: NOT_FOUND, nothing changes."""
    others = await world.contact(owner=world.agent)
    for actor in (deleter, world.foreign_admin):
        for mutation in (DELETE, RESTORE):
            body = await gql(mutation, {"id": cid(others)}, as_=actor)
            assert error_codes(body) == ["NOT_FOUND"]
    assert await listed(gql, world.admin) == [cid(others)]
