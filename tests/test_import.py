"""CRM imports (R21, with R5–R9 on every row): the three doors (importContacts, the
multipart CSV upload, `crm import`), the job's progress and errors (importJob), the upsert
by externalId, ownership on import, status history, inactive and archived contacts, CSV
quirks, permissions, redelivery, and both actor paths (in-process worker, `crm worker`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from api.contacts.models import Contact, StatusChange
from api.core import ids
from api.core.jobs import JobState
from api.transfers import importer
from api.transfers.models import ImportJob, ImportRowError, ImportSource
from api.users.auth import issue_token
from tests.conftest import assert_clean, error_codes, make_user
from tests.workers_for_tests import crm_worker, drain_in_process, wait_until_finished

ROOT = Path(__file__).resolve().parent.parent
CRM = [sys.executable, "-m", "api.cli"]

JOB_FIELDS = """
  id state total processed created updated unassigned errorCount unknownColumns source
  fileName createdAt startedAt finishedAt
  errors { row field message }
"""
IMPORT = f"""
mutation($rows: [ContactImportRow!]!) {{ importContacts(rows: $rows) {{ {JOB_FIELDS} }} }}"""
UPLOAD = f"mutation($file: Upload!) {{ importContactsCsv(file: $file) {{ {JOB_FIELDS} }} }}"
JOB = f"query($id: ID!) {{ importJob(id: $id) {{ {JOB_FIELDS} }} }}"
ERRORS = """
query($id: ID!, $first: Int, $after: Int) {
  importJob(id: $id) { errorCount errors(first: $first, afterRow: $after) { row field message } }
}"""
CONTACTS = """
query($search: String) {
  contacts(first: 30, filter: {search: $search, includeArchived: true}) {
    totalCount
    edges { node {
      id externalId firstName lastName email phone crmOwnerId status statusUpdatedAt archived
      unassigned owner { id } company { id name }
      statusHistory { from to source actor { id } }
    } }
  }
}"""
COUNT = "query { contacts(first: 1) { totalCount } }"
ASSIGN = "mutation($ids: [ID!]!, $owner: ID) { assignContacts(contactIds: $ids, ownerId: $owner) }"
SET_STATUS = """
mutation($id: ID!, $status: ContactStatus!) { setContactStatus(id: $id, status: $status) { id } }
"""
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { id archived } }"
DEACTIVATE = "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }"


# --- helpers ---------------------------------------------------------------------------


def uid(user: Any) -> str:
    return ids.encode("User", user.id)


def ext() -> str:
    return f"crm-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records what is sent to the import actor instead of sending it: tests carry jobs out
    themselves with `execute_import`, as a worker would."""
    from workers.imports import run_import

    calls: list[int] = []
    monkeypatch.setattr(run_import, "send", lambda job_id: calls.append(job_id))
    return calls


async def request(gql: Any, user: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return (await gql.ok(IMPORT, {"rows": rows}, as_=user))["importContacts"]


async def finish(gql: Any, user: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Carry the job out as the worker does, then read it back through importJob."""
    await importer.execute_import(ids.decode("ImportJob", job["id"]))
    return await read_job(gql, user, job["id"])


async def read_job(gql: Any, user: Any, job_id: str) -> dict[str, Any]:
    return (await gql.ok(JOB, {"id": job_id}, as_=user))["importJob"]


async def run(gql: Any, user: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """importContacts, carried out; the finished job."""
    job = await request(gql, user, rows)
    assert job["state"] == "QUEUED"
    done = await finish(gql, user, job)
    assert done["state"] == "DONE", done
    return done


async def contacts(gql: Any, user: Any, search: str | None = None) -> dict[str, dict[str, Any]]:
    """The contacts `user` sees (at most 30), by externalId."""
    data = await gql.ok(CONTACTS, {"search": search}, as_=user)
    return {e["node"]["externalId"]: e["node"] for e in data["contacts"]["edges"]}


def counts(job: dict[str, Any]) -> tuple[int, ...]:
    return (job["created"], job["updated"], job["unassigned"], job["errorCount"])


def errors_of(job: dict[str, Any]) -> list[tuple[int, str | None]]:
    return [(e["row"], e["field"]) for e in job["errors"]]


async def raw_gql(
    client: Any, query: str, variables: dict[str, Any], *, as_: Any
) -> dict[str, Any]:
    """Posts a body encoded here, so any JSON a client can send (lone UTF-16 surrogates
    included, as `\\ud800` escapes) reaches the server."""
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {issue_token(as_)}",
        },
    )
    body = response.json()
    assert_clean(body)
    return body


async def upload(
    client: Any, user: Any, content: bytes, name: str = "contacts.csv"
) -> dict[str, Any]:
    """importContactsCsv as an SPA upload widget sends it: the GraphQL multipart request
    spec (an `operations` part, a `map` part, then the file parts)."""
    response = await client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": (name, content, "text/csv")},
        headers={"Authorization": f"Bearer {issue_token(user)}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_clean(body)
    return body


def csv_bytes(lines: list[str], *, bom: bool = False, sep: str = ",") -> bytes:
    text = "\r\n".join(line.replace("|", sep) for line in lines) + "\r\n"
    return ("\ufeff" if bom else "").encode() + text.encode()


# --- importContacts, importJob ----------------------------------------------------------


async def test_import_contacts_queues_a_job_that_import_job_follows(gql, world, sent):
    """R21: importContacts (admins) records a QUEUED job with the rows and sends it to the
    workers; importJob shows its state and counts, running while it works and final when
    DONE; the rows land with names, email, phone, company and status."""
    a, b = ext(), ext()
    rows = [
        {
            "externalId": a,
            "firstName": "Émile",
            "lastName": "Zola",
            "email": "Emile.Zola@Example.com",
            "phone": "+33 1 23 45 67 89",
            "companyName": "Rougon Holdings",
            "crmOwnerId": world.agent.crm_agent_id,
            "status": "ACTIVE",
        },
        {"externalId": b, "firstName": "Nana", "lastName": "Coupeau"},
    ]
    job = await request(gql, world.admin, rows)
    assert (job["state"], job["total"], job["processed"], job["source"]) == (
        "QUEUED",
        2,
        0,
        "GRAPHQL",
    )
    assert counts(job) == (0, 0, 0, 0) and job["errors"] == [] and job["startedAt"] is None
    assert sent == [ids.decode("ImportJob", job["id"])]

    done = await finish(gql, world.admin, job)
    assert (done["state"], done["processed"]) == ("DONE", 2)
    assert counts(done) == (2, 0, 1, 0)
    # Once DONE the job no longer keeps the rows (the contacts hold them).
    assert (await ImportJob.get(id=sent[0])).payload == "[]"
    assert done["startedAt"] <= done["finishedAt"]

    seen = await contacts(gql, world.admin)
    assert set(seen) == {a, b}
    emile = seen[a]
    assert (emile["firstName"], emile["lastName"], emile["email"], emile["phone"]) == (
        "Émile",
        "Zola",
        "emile.zola@example.com",
        "+33 1 23 45 67 89",
    )
    assert emile["company"]["name"] == "Rougon Holdings"
    assert emile["owner"] == {"id": uid(world.agent)} and emile["status"] == "ACTIVE"
    assert seen[b]["unassigned"] and seen[b]["status"] is None and seen[b]["company"] is None
    # search_text is filled as contacts created any other way have it (non-ASCII included).
    assert set(await contacts(gql, world.admin, search="ÉMILE ZOLA")) == {a}
    assert set(await contacts(gql, world.admin, search="rougon")) == {a}


async def test_an_empty_import_is_done_at_once(gql, client, world, sent):
    """R21: no rows (or a CSV with only its header) makes a job that is DONE with nothing
    counted; a file sent as a plain string instead of an upload is BAD_USER_INPUT."""
    done = await run(gql, world.admin, [])
    assert (done["total"], done["processed"]) == (0, 0) and counts(done) == (0, 0, 0, 0)
    body = await upload(client, world.admin, b"External ID,First Name\r\n")
    done = await finish(gql, world.admin, body["data"]["importContactsCsv"])
    assert (done["state"], done["total"]) == ("DONE", 0)
    body = await gql(UPLOAD, {"file": "External ID\n1"}, as_=world.admin)
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_bad_rows_of_each_kind_are_reported_and_land_nowhere(gql, world, sent):
    """R21/R20: each refused row is reported once, with its row number (from 1), the field
    and a message; valid rows land, refused ones land nowhere."""
    good_a, good_b = ext(), ext()
    taken = ext()
    rows = [
        {"externalId": good_a, "firstName": "Ok", "lastName": "One"},  # 1
        {"externalId": "   ", "firstName": "No", "lastName": "Id"},  # 2
        {"externalId": "x" * 101, "firstName": "Long", "lastName": "Id"},  # 3
        {"externalId": ext(), "firstName": "Bad", "lastName": "Mail", "email": "a@@b"},  # 4
        {"externalId": ext(), "firstName": "Bad", "lastName": "Phone", "phone": "call me"},  # 5
        {"externalId": ext(), "firstName": "Ctl\x07", "lastName": "Char"},  # 6
        {"externalId": ext(), "firstName": "Big", "lastName": "Co", "companyName": "c" * 201},  # 7
        {"externalId": ext(), "lastName": "Nofirst"},  # 8
        {"externalId": ext(), "firstName": "Nolast", "lastName": "  "},  # 9
        {"externalId": ext(), "firstName": "Owner", "lastName": "Long", "crmOwnerId": "o" * 101},
        {"externalId": taken, "firstName": "Early", "lastName": "Dup"},  # 11
        {"externalId": good_b, "firstName": "Ok", "lastName": "Two", "email": "two@ok.example"},
        {"externalId": taken, "firstName": "Late", "lastName": "Dup"},  # 13
        {"externalId": ext(), "firstName": "Lone\ud800", "lastName": "Surrogate"},  # 14
    ]
    job = (await raw_gql(gql.client, IMPORT, {"rows": rows}, as_=world.admin))["data"]
    done = await finish(gql, world.admin, job["importContacts"])
    assert errors_of(done) == [
        (2, "externalId"),
        (3, "externalId"),
        (4, "email"),
        (5, "phone"),
        (6, "firstName"),
        (7, "companyName"),
        (8, "firstName"),
        (9, "lastName"),
        (10, "crmOwnerId"),
        (11, "externalId"),
        (14, "firstName"),
    ]
    messages = {e["row"]: e["message"] for e in done["errors"]}
    assert "valid email" in messages[4] and "phone" in messages[5]
    assert "required for a new contact" in messages[8]
    assert "row 13" in messages[11]
    assert "not valid Unicode" in messages[14]
    assert counts(done) == (3, 0, 3, 11) and done["processed"] == 14
    seen = await contacts(gql, world.admin)
    assert set(seen) == {good_a, good_b, taken}
    assert seen[taken]["firstName"] == "Late"


async def test_status_values_outside_the_enum_are_refused_per_row(gql, world, sent):
    """R21: a CSV status other than active/inactive/empty (any case) refuses the row only."""
    body = await upload(
        gql.client,
        world.admin,
        csv_bytes(["ID|First Name|Last Name|Status", "s1|A|B|Active", "s2|C|D|gone", "s3|E|F|"]),
    )
    done = await finish(gql, world.admin, body["data"]["importContactsCsv"])
    assert errors_of(done) == [(2, "status")]
    assert "ACTIVE, INACTIVE" in done["errors"][0]["message"]
    seen = await contacts(gql, world.admin)
    assert (seen["s1"]["status"], seen["s3"]["status"]) == ("ACTIVE", None)
    assert "s2" not in seen


async def test_duplicates_in_one_file_the_last_row_wins(gql, world, sent):
    """R21: several rows with one externalId: the last one lands, the earlier ones are each
    reported (naming the row that replaces them)."""
    dup = ext()
    rows = [
        {"externalId": dup, "firstName": "First", "lastName": "Version", "email": "v1@x.example"},
        {"externalId": ext(), "firstName": "Other", "lastName": "Row"},
        {"externalId": dup, "firstName": "Second", "lastName": "Version"},
        {"externalId": dup, "firstName": "Third", "lastName": "Version", "phone": "+1 555 0100"},
    ]
    done = await run(gql, world.admin, rows)
    assert errors_of(done) == [(1, "externalId"), (3, "externalId")]
    assert all("row 4 replaces" in e["message"] for e in done["errors"])
    assert counts(done) == (2, 0, 2, 2)
    landed = (await contacts(gql, world.admin))[dup]
    assert (landed["firstName"], landed["email"], landed["phone"]) == ("Third", None, "+1 555 0100")


async def test_a_re_run_changes_nothing(gql, world, sent):
    """R21: importing the same rows again creates 0 and updates 0, writes no history and
    leaves every column of every contact as it was."""
    rows = [
        {
            "externalId": ext(),
            "firstName": f"Name{i}",
            "lastName": "Same",
            "email": f"same{i}@rerun.example",
            "companyName": "Rerun Ltd" if i % 2 else "RERUN LTD",
            "crmOwnerId": [world.agent.crm_agent_id, "nobody-here", None][i % 3],
            "status": ["ACTIVE", "INACTIVE", None][i % 3],
        }
        for i in range(9)
    ]
    first = await run(gql, world.admin, rows)
    assert counts(first) == (9, 0, 6, 0)
    before = await Contact.filter(office_id=world.office.id).order_by("id").values()
    history = await StatusChange.filter(office_id=world.office.id).count()
    assert history == 6

    again = await run(gql, world.admin, rows)
    assert counts(again) == (0, 0, 0, 0)
    assert await Contact.filter(office_id=world.office.id).order_by("id").values() == before
    assert await StatusChange.filter(office_id=world.office.id).count() == history
    companies = {c["company"]["id"] for c in (await contacts(gql, world.admin)).values()}
    assert len(companies) == 1  # "Rerun Ltd" and "RERUN LTD" are one company


async def test_left_out_fields_keep_stored_values_and_updates_bump_updated_at(gql, world, sent):
    """R21: a row that leaves a field out (or empty) keeps the stored value; what it gives
    replaces the stored one; search and updatedAt follow the change."""
    key = ext()
    await run(
        gql,
        world.admin,
        [
            {
                "externalId": key,
                "firstName": "Ada",
                "lastName": "Lovelace",
                "email": "ada@engine.example",
                "phone": "+44 20 0000 0000",
                "companyName": "Analytical Engines",
            }
        ],
    )
    stamp = (await Contact.get(office_id=world.office.id, external_id=key)).updated_at
    done = await run(
        gql,
        world.admin,
        [{"externalId": key, "lastName": "King", "email": "", "phone": None}],
    )
    assert counts(done) == (0, 1, 1, 0)
    seen = (await contacts(gql, world.admin))[key]
    assert (seen["firstName"], seen["lastName"], seen["email"], seen["phone"]) == (
        "Ada",
        "King",
        "ada@engine.example",
        "+44 20 0000 0000",
    )
    assert seen["company"]["name"] == "Analytical Engines"
    assert set(await contacts(gql, world.admin, search="ada king ada@engine")) == {key}
    assert not await contacts(gql, world.admin, search="lovelace")
    assert (await Contact.get(office_id=world.office.id, external_id=key)).updated_at > stamp


async def test_company_changes_create_missing_companies_once(gql, world, sent):
    """R21: missing companies are created (one per name, whatever the case), existing ones
    are reused."""
    a, b, c = ext(), ext(), ext()
    await run(
        gql,
        world.admin,
        [
            {"externalId": a, "firstName": "A", "lastName": "A", "companyName": "Zeta"},
            {"externalId": b, "firstName": "B", "lastName": "B", "companyName": "zeta"},
            {"externalId": c, "firstName": "C", "lastName": "C"},
        ],
    )
    done = await run(gql, world.admin, [{"externalId": c, "companyName": "ZETA"}])
    assert counts(done) == (0, 1, 1, 0)
    seen = await contacts(gql, world.admin)
    assert len({seen[k]["company"]["id"] for k in (a, b, c)}) == 1
    assert seen[a]["company"]["name"] == "Zeta"


# --- ownership (R5–R7) ---------------------------------------------------------------------


async def test_an_import_derives_owners(gql, world, sent):
    """R5–R7 on import: a CRM owner that maps to an active user wins, even over a manual
    owner; one that maps to nobody keeps a manual owner, and so does a row that names no
    owner; otherwise the contact is unassigned (and counted so); a deactivated user receives
    nothing."""
    by_hand_won, by_hand_kept, plain, gone, moved, quiet = (ext() for _ in range(6))
    leaver = await make_user(world.office, crm_agent_id=f"L-{uuid.uuid4().hex[:6]}")
    await gql.ok(DEACTIVATE, {"id": uid(leaver)}, as_=world.admin)
    first = await run(
        gql,
        world.admin,
        [
            {"externalId": by_hand_won, "firstName": "A", "lastName": "A", "crmOwnerId": "x-1"},
            {"externalId": by_hand_kept, "firstName": "B", "lastName": "B", "crmOwnerId": "x-2"},
            {"externalId": plain, "firstName": "C", "lastName": "C", "crmOwnerId": "x-3"},
            {
                "externalId": gone,
                "firstName": "D",
                "lastName": "D",
                "crmOwnerId": leaver.crm_agent_id,
            },
            {
                "externalId": moved,
                "firstName": "E",
                "lastName": "E",
                "crmOwnerId": world.agent.crm_agent_id,
            },
            {
                "externalId": quiet,
                "firstName": "Q",
                "lastName": "Q",
                "crmOwnerId": world.agent.crm_agent_id,
            },
        ],
    )
    assert counts(first) == (6, 0, 4, 0)
    seen = await contacts(gql, world.admin)
    manual = [seen[by_hand_won]["id"], seen[by_hand_kept]["id"], seen[quiet]["id"]]
    await gql.ok(ASSIGN, {"ids": manual, "owner": uid(world.other_agent)}, as_=world.admin)

    done = await run(
        gql,
        world.admin,
        [
            # maps to an active user: beats the manual owner
            {"externalId": by_hand_won, "crmOwnerId": world.agent.crm_agent_id},
            # maps to nobody: the manual owner holds
            {"externalId": by_hand_kept, "crmOwnerId": "still-nobody"},
            {"externalId": plain, "crmOwnerId": world.office_wide.crm_agent_id},
            {"externalId": gone, "firstName": "Dee"},
            {"externalId": moved, "crmOwnerId": world.other_agent.crm_agent_id},
            # no owner in the row: the manual owner holds though the stored one maps
            {"externalId": quiet, "firstName": "Quiet"},
        ],
    )
    assert counts(done) == (0, 6, 1, 0)
    seen = await contacts(gql, world.admin)
    assert seen[by_hand_won]["owner"] == {"id": uid(world.agent)}
    assert seen[by_hand_kept]["owner"] == {"id": uid(world.other_agent)}
    assert seen[by_hand_kept]["crmOwnerId"] == "still-nobody"
    assert seen[plain]["owner"] == {"id": uid(world.office_wide)}
    assert seen[gone]["unassigned"] and seen[gone]["firstName"] == "Dee"
    assert seen[moved]["owner"] == {"id": uid(world.other_agent)}
    assert seen[quiet]["owner"] == {"id": uid(world.other_agent)}
    assert seen[quiet]["firstName"] == "Quiet"
    # What each agent now sees (R2).
    assert set(await contacts(gql, world.agent)) == {by_hand_won}
    assert set(await contacts(gql, world.other_agent)) == {by_hand_kept, moved, quiet}


# --- status (R8–R11) -----------------------------------------------------------------------


async def test_status_changes_are_recorded_with_source_import(gql, world, sent):
    """R8: a row that sets or changes a status appends a StatusChange (source IMPORT, the
    importing admin as actor) and sets statusUpdatedAt; a row that leaves it alone does not."""
    fresh, flipped, kept = ext(), ext(), ext()
    await run(
        gql,
        world.admin,
        [
            {"externalId": flipped, "firstName": "F", "lastName": "F", "status": "ACTIVE"},
            {"externalId": kept, "firstName": "K", "lastName": "K", "status": "ACTIVE"},
        ],
    )
    before = await contacts(gql, world.admin)
    done = await run(
        gql,
        world.admin,
        [
            {"externalId": fresh, "firstName": "N", "lastName": "N", "status": "INACTIVE"},
            {"externalId": flipped, "status": "INACTIVE"},
            {"externalId": kept, "status": "ACTIVE", "phone": "+1 555 0199"},
        ],
    )
    assert counts(done) == (1, 2, 3, 0)
    seen = await contacts(gql, world.admin)
    admin = {"id": uid(world.admin)}
    assert seen[fresh]["statusHistory"] == [
        {"from": None, "to": "INACTIVE", "source": "IMPORT", "actor": admin}
    ]
    assert seen[flipped]["statusHistory"] == [
        {"from": None, "to": "ACTIVE", "source": "IMPORT", "actor": admin},
        {"from": "ACTIVE", "to": "INACTIVE", "source": "IMPORT", "actor": admin},
    ]
    assert seen[flipped]["statusUpdatedAt"] > before[flipped]["statusUpdatedAt"]
    assert len(seen[kept]["statusHistory"]) == 1
    assert seen[kept]["statusUpdatedAt"] == before[kept]["statusUpdatedAt"]


async def test_rows_changing_an_inactive_contact_are_refused(gql, world, sent):
    """R9: a row that would change an INACTIVE contact's fields or owner is refused (its
    row, the first field it changes); a row that changes nothing passes quietly; a row that
    only sets it ACTIVE again reactivates it (imports are an admin's)."""
    frozen, assigned, revived = ext(), ext(), ext()
    await run(
        gql,
        world.admin,
        [
            {"externalId": k, "firstName": "I", "lastName": "N", "email": f"{k}@x.example"}
            for k in (frozen, assigned, revived)
        ],
    )
    seen = await contacts(gql, world.admin)
    for key in (frozen, assigned, revived):
        await gql.ok(SET_STATUS, {"id": seen[key]["id"], "status": "INACTIVE"}, as_=world.admin)
    snapshot = await Contact.filter(external_id=frozen, office_id=world.office.id).values()

    done = await run(
        gql,
        world.admin,
        [
            {"externalId": frozen, "email": "new@x.example", "phone": "+1 555 0101"},
            {"externalId": frozen, "firstName": "I", "lastName": "N"},  # unchanged: passes
            {"externalId": assigned, "crmOwnerId": world.agent.crm_agent_id},
            {"externalId": revived, "status": "ACTIVE"},
        ],
    )
    assert errors_of(done) == [(1, "externalId"), (3, "crmOwnerId")]
    assert "inactive" in done["errors"][1]["message"]
    assert counts(done) == (0, 1, 1, 2)
    assert await Contact.filter(external_id=frozen, office_id=world.office.id).values() == snapshot

    done = await run(gql, world.admin, [{"externalId": frozen, "email": "new@x.example"}])
    assert errors_of(done) == [(1, "email")]
    seen = await contacts(gql, world.admin)
    assert seen[assigned]["unassigned"] and seen[assigned]["status"] == "INACTIVE"
    assert seen[revived]["status"] == "ACTIVE"
    assert seen[revived]["statusHistory"][-1] == {
        "from": "INACTIVE",
        "to": "ACTIVE",
        "source": "IMPORT",
        "actor": {"id": uid(world.admin)},
    }


async def test_archived_contacts_take_fields_but_not_a_status(gql, world, sent):
    """R11: an import updates an archived contact's fields (it stays archived); a row that
    would change its status is refused, as setContactStatus refuses it."""
    key = ext()
    await run(gql, world.admin, [{"externalId": key, "firstName": "Ar", "lastName": "Chived"}])
    contact_id = (await contacts(gql, world.admin))[key]["id"]
    await gql.ok(DELETE, {"id": contact_id}, as_=world.admin)
    done = await run(gql, world.admin, [{"externalId": key, "firstName": "Still"}])
    assert counts(done) == (0, 1, 1, 0)
    done = await run(gql, world.admin, [{"externalId": key, "status": "ACTIVE"}])
    assert errors_of(done) == [(1, "status")]
    seen = (await contacts(gql, world.admin))[key]
    assert (seen["firstName"], seen["archived"], seen["status"]) == ("Still", True, None)


# --- the CSV door ------------------------------------------------------------------------


async def test_csv_upload_over_http_multipart(gql, client, world, sent):
    """R21: importContactsCsv takes a GraphQL multipart request (operations, map, file
    part) and makes the same job as importContacts, with the file's name."""
    a, b = ext(), ext()
    content = csv_bytes(
        [
            "External ID|First Name|Last Name|Email|Owner|Company",
            f"{a}|Ann|Archer|ann@csv.example|{world.agent.crm_agent_id}|Csv Co",
            f"{b}|Bo|Brown||nobody|",
        ]
    )
    body = await upload(client, world.admin, content, name="export 2024.csv")
    job = body["data"]["importContactsCsv"]
    assert (job["state"], job["total"], job["source"], job["fileName"]) == (
        "QUEUED",
        2,
        "CSV",
        "export 2024.csv",
    )
    assert sent == [ids.decode("ImportJob", job["id"])]
    done = await finish(gql, world.admin, job)
    assert counts(done) == (2, 0, 1, 0)
    seen = await contacts(gql, world.admin)
    assert seen[a]["owner"] == {"id": uid(world.agent)}
    assert seen[a]["company"]["name"] == "Csv Co" and seen[b]["email"] is None


async def test_csv_quirks_bom_semicolons_aliases_and_unknown_columns(gql, client, world, sent):
    """R21: UTF-8 with a byte-order mark, semicolons, CRM header aliases in any case,
    quoted cells holding separators and line breaks, blank lines, case-insensitive status;
    columns no field matches are reported on the job, not fatal."""
    a, b = ext(), ext()
    content = csv_bytes(
        [
            "Record ID|Given Name|SURNAME|E-mail Address|Mobile|Contact Owner|Organisation"
            "|Contact Status|Lead Score|Notes|E-mail",
            f'{a}|Zoë|"O\'Brien; Jr"|zoe@csv.example|+353 1 234 5678'
            f'|{world.agent.crm_agent_id}|"Acme; Ltd"|InActive|12|"two\nlines"|other@x.example',
            "",
            f"{b}|Åsa|Öberg||||||||",
        ],
        bom=True,
        sep=";",
    )
    body = await upload(client, world.admin, content)
    job = body["data"]["importContactsCsv"]
    assert job["total"] == 2
    assert job["unknownColumns"] == ["Lead Score", "Notes", "E-mail"]
    done = await finish(gql, world.admin, job)
    assert counts(done) == (2, 0, 1, 0)
    seen = await contacts(gql, world.admin)
    zoe = seen[a]
    assert (zoe["firstName"], zoe["lastName"], zoe["email"], zoe["phone"]) == (
        "Zoë",
        "O'Brien; Jr",
        "zoe@csv.example",
        "+353 1 234 5678",
    )
    assert (zoe["company"]["name"], zoe["status"]) == ("Acme; Ltd", "INACTIVE")
    assert zoe["owner"] == {"id": uid(world.agent)}
    assert seen[b]["firstName"] == "Åsa" and seen[b]["unassigned"]
    assert set(await contacts(gql, world.admin, search="åsa öberg")) == {b}


async def test_cells_an_export_guarded_against_formulas_come_back_as_they_were(
    gql, client, world, sent
):
    """R21 with R12: an exported phone such as `'+44 …` (the apostrophe that keeps a
    spreadsheet from running it) imports as the number itself."""
    a = ext()
    content = csv_bytes(
        ["External ID|First Name|Last Name|Phone", f"{a}|Ann|'-Lee|'+44 20 7946 0000"], sep=","
    )
    job = (await upload(client, world.admin, content))["data"]["importContactsCsv"]
    assert counts(await finish(gql, world.admin, job)) == (1, 0, 1, 0)
    seen = await contacts(gql, world.admin)
    assert (seen[a]["lastName"], seen[a]["phone"]) == ("-Lee", "+44 20 7946 0000")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a CSV"),
        (b"Name,Email\nAnn,ann@x.example\n", "externalId"),
        ("ID,First Name\n1,Zo\xeb\n".encode("latin-1"), "UTF-8"),
        (b"", "empty"),
        (b'ID,First Name\n1,"unterminated\n', None),
    ],
    ids=["binary", "no-external-id", "latin-1", "empty", "ragged"],
)
async def test_files_that_are_no_usable_csv_are_bad_user_input(
    gql, client, world, sent, content, message
):
    """R20/R21: a file that is not a CSV, not UTF-8, empty, or without an externalId column
    is BAD_USER_INPUT on the `file` argument, and records no job."""
    body = await upload(client, world.admin, content)
    if message is None:  # the csv module reads an unterminated quote to the end: one row
        assert body["data"]["importContactsCsv"]["total"] == 1
        return
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "file"
    assert message in body["errors"][0]["message"]
    assert body["data"] is None
    assert sent == []
    assert not await ImportJob.filter(office_id=world.office.id).exists()


# --- permissions (R1, R4) -----------------------------------------------------------------


async def test_only_admins_import_and_read_import_jobs(gql, client, world, sent):
    """R4/R1: agents (office-wide ones too) may not import or read imports (FORBIDDEN);
    another office's job, an unknown id or an id of another type is NOT_FOUND."""
    rows = [{"externalId": ext(), "firstName": "A", "lastName": "B"}]
    job = await request(gql, world.admin, rows)
    for user in (world.agent, world.office_wide):
        body = await gql(IMPORT, {"rows": rows}, as_=user)
        assert error_codes(body) == ["FORBIDDEN"] and body["data"] is None
        body = await gql(JOB, {"id": job["id"]}, as_=user)
        assert error_codes(body) == ["FORBIDDEN"]
        body = await upload(client, user, csv_bytes(["ID|First Name|Last Name", "1|A|B"]))
        assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(await gql(IMPORT, {"rows": rows})) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(JOB, {"id": job["id"]}, as_=world.foreign_admin)) == ["NOT_FOUND"]
    missing = ids.encode("ImportJob", 2**62)
    assert error_codes(await gql(JOB, {"id": missing}, as_=world.admin)) == ["NOT_FOUND"]
    other_kind = ids.encode("Contact", ids.decode("ImportJob", job["id"]))
    assert error_codes(await gql(JOB, {"id": other_kind}, as_=world.admin)) == ["NOT_FOUND"]
    body = await gql(JOB, {"id": "not an id"}, as_=world.admin)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert len(sent) == 1
    assert await ImportJob.filter(office_id=world.office.id).count() == 1


async def test_an_import_touches_only_its_own_office(gql, world, sent):
    """R1: the same externalId in another office is another contact; an import never
    reaches across offices, nor does the CRM id of another office's user."""
    key = ext()
    foreign_agent = await make_user(world.foreign_office, crm_agent_id=f"F-{uuid.uuid4().hex[:6]}")
    await run(
        gql, world.foreign_admin, [{"externalId": key, "firstName": "Theirs", "lastName": "T"}]
    )
    done = await run(
        gql,
        world.admin,
        [
            {
                "externalId": key,
                "firstName": "Ours",
                "lastName": "O",
                "crmOwnerId": foreign_agent.crm_agent_id,
            }
        ],
    )
    assert counts(done) == (1, 0, 1, 0)
    assert (await contacts(gql, world.foreign_admin))[key]["firstName"] == "Theirs"
    assert (await contacts(gql, world.admin))[key]["unassigned"]


# --- errors paging, progress, redelivery ----------------------------------------------------


async def test_errors_page_by_row(gql, world, sent):
    """R21: importJob.errors lists refused rows in row order, `first` at a time, `afterRow`
    going on; errorCount counts them all."""
    rows = [{"externalId": ext(), "firstName": "A", "lastName": "B", "email": "bad"}] * 1
    rows = [{**rows[0], "externalId": ext()} for _ in range(7)]
    done = await run(gql, world.admin, rows)
    assert done["errorCount"] == 7
    page = (await gql.ok(ERRORS, {"id": done["id"], "first": 3}, as_=world.admin))["importJob"]
    assert [e["row"] for e in page["errors"]] == [1, 2, 3]
    page = (await gql.ok(ERRORS, {"id": done["id"], "first": 3, "after": 3}, as_=world.admin))[
        "importJob"
    ]
    assert [e["row"] for e in page["errors"]] == [4, 5, 6]
    body = await gql(ERRORS, {"id": done["id"], "first": 0}, as_=world.admin)
    assert error_codes(body) == ["BAD_USER_INPUT"]


class WorkerKilled(Exception):
    """Stands for a worker dying in the middle of a job."""


async def test_progress_counts_batches_and_a_redelivery_resumes(gql, world, sent, monkeypatch):
    """R21, progress and redelivery: counters grow batch by batch (importJob shows them
    while the job runs); a worker dying mid-job leaves the committed batches counted once,
    and the redelivered message goes on from there: nothing is done or counted twice."""
    monkeypatch.setattr(importer, "BATCH_SIZE", 3)
    rows = [
        {"externalId": ext(), "firstName": f"P{i}", "lastName": "Q", "status": "ACTIVE"}
        for i in range(8)
    ]
    rows[4]["email"] = "broken@"
    job = await request(gql, world.admin, rows)
    pk = ids.decode("ImportJob", job["id"])
    seen: list[tuple[int, int, int]] = []
    original = importer._run_batch

    async def dies_on_the_second_batch(job_id: int, plan: Any) -> bool:
        if len(seen) == 1:
            raise WorkerKilled
        return await original(job_id, plan)

    def progress(current: ImportJob) -> None:
        seen.append((current.processed, current.created, current.error_count))

    monkeypatch.setattr(importer, "_run_batch", dies_on_the_second_batch)
    with pytest.raises(WorkerKilled):
        await importer.execute_import(pk, progress=progress)
    halfway = await read_job(gql, world.admin, job["id"])
    assert (halfway["state"], halfway["processed"], halfway["created"]) == ("FAILED", 3, 3)
    monkeypatch.setattr(importer, "_run_batch", original)

    await importer.execute_import(pk, progress=progress)  # the broker's redelivery
    assert seen == [(3, 3, 0), (6, 5, 1), (8, 7, 1)]
    done = await read_job(gql, world.admin, job["id"])
    assert (done["state"], done["processed"]) == ("DONE", 8)
    assert counts(done) == (7, 0, 7, 1) and errors_of(done) == [(5, "email")]
    assert await StatusChange.filter(office_id=world.office.id).count() == 7
    await importer.execute_import(pk)  # a late duplicate delivery: nothing to do
    assert counts(await read_job(gql, world.admin, job["id"])) == (7, 0, 7, 1)


async def test_two_deliveries_at_once_do_the_work_once(gql, world, sent, monkeypatch):
    """R21: a message delivered twice at the same time: the job's row lock makes the two
    take turns, batch by batch, and every batch is done once."""
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    rows = [{"externalId": ext(), "firstName": f"C{i}", "lastName": "D"} for i in range(9)]
    job = await request(gql, world.admin, rows)
    pk = ids.decode("ImportJob", job["id"])
    await asyncio.gather(importer.execute_import(pk), importer.execute_import(pk))
    done = await read_job(gql, world.admin, job["id"])
    assert (done["state"], done["processed"]) == ("DONE", 9)
    assert counts(done) == (9, 0, 9, 0)
    assert await ImportRowError.filter(job_id=pk).count() == 0
    assert (await gql.ok(COUNT, as_=world.admin))["contacts"]["totalCount"] == 9


async def test_the_clock_resends_jobs_whose_message_was_lost(world, sent):
    """R21: a job still QUEUED long after it was sent (a broker outage) is sent again; a
    fresh one, a finished one and a recently sent running one are left alone."""
    from datetime import UTC, datetime, timedelta

    lost = await importer.create_job(world.office.id, [], source=ImportSource.GRAPHQL)
    fresh = await importer.create_job(world.office.id, [], source=ImportSource.GRAPHQL)
    done = await importer.create_job(world.office.id, [], source=ImportSource.GRAPHQL)
    stuck = await importer.create_job(world.office.id, [], source=ImportSource.GRAPHQL)
    now = datetime.now(UTC)
    await ImportJob.filter(id=lost.id).update(enqueued_at=now - timedelta(minutes=11))
    await ImportJob.filter(id=fresh.id).update(enqueued_at=now - timedelta(minutes=1))
    await ImportJob.filter(id=done.id).update(
        state=JobState.DONE, enqueued_at=now - timedelta(hours=5)
    )
    await ImportJob.filter(id=stuck.id).update(
        state=JobState.RUNNING, enqueued_at=now - timedelta(hours=3)
    )
    await importer.resend_lost(now)
    assert set(sent) >= {lost.id, stuck.id}
    assert not {fresh.id, done.id} & set(sent)
    await importer.resend_lost(now)  # sent again just now: not again
    assert sorted(sent).count(lost.id) == 1


# --- size ---------------------------------------------------------------------------------


async def test_an_import_of_50000_rows(gql, client, world, sent):
    """R21 at size: 50,000 CSV rows land in one job (set-based batches), counted right."""
    agent = world.agent.crm_agent_id
    lines = ["External ID,First Name,Last Name,Email,Phone,Company,Owner,Status"]
    lines += [
        f"big-{i},First{i % 97},Last{i},user{i}@big.example,+1 555 {i % 10000:04d},"
        f"Company {i % 500},{agent if i % 4 == 0 else 'nobody'},{'active' if i % 3 else ''}"
        for i in range(50_000)
    ]
    started = time.monotonic()
    body = await upload(client, world.admin, ("\n".join(lines) + "\n").encode())
    job = body["data"]["importContactsCsv"]
    assert job["total"] == 50_000
    done = await finish(gql, world.admin, job)
    elapsed = time.monotonic() - started
    assert counts(done) == (50_000, 0, 37_500, 0) and done["processed"] == 50_000
    assert (await gql.ok(COUNT, as_=world.admin))["contacts"]["totalCount"] == 50_000
    seen = await contacts(gql, world.admin, search="user49999@big")
    assert seen["big-49999"]["company"]["name"] == "Company 499"
    assert seen["big-49999"]["status"] == "ACTIVE"
    assert elapsed < 20, f"50,000 rows took {elapsed:.1f} s"


# --- the CLI door and the workers ---------------------------------------------------------


async def crm(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`crm ARGS` as a subprocess: its exit code and output (given a minute at most)."""
    proc = await asyncio.create_subprocess_exec(
        *CRM,
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, output.decode()


def cli_file(tmp_path: Path, world: Any, count: int) -> tuple[Path, list[str]]:
    keys = [ext() for _ in range(count)]
    path = tmp_path / "crm export.csv"
    lines = ["Contact ID;Given Name;Family Name;Agent ID;Extra"]
    lines += [f"{k};Cli{i};User;{world.agent.crm_agent_id};x" for i, k in enumerate(keys)]
    lines.append(f"{ext()};;NoFirstName;;")
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return path, keys


async def test_crm_import_carries_the_job_out_with_a_progress_bar(gql, world, tmp_path):
    """R21, the CLI door without REDIS_URL: `crm import FILE --office NAME` records a job
    and carries it out in the process, showing progress, the refused rows and a summary."""
    path, keys = cli_file(tmp_path, world, 5)
    code, output = await crm(
        "import", str(path), "--office", world.office.name, env={"REDIS_URL": ""}
    )
    assert code == 0, output
    assert "6 rows from crm export.csv" in output
    assert "ignored columns: Extra" in output
    assert "100% 6/6 rows" in output
    assert "row 6, firstName: `firstName` is required for a new contact" in output
    assert "DONE: created 5, updated 0, unassigned 0, refused 1" in output
    assert set(await contacts(gql, world.agent)) == set(keys)
    [job] = await ImportJob.filter(office_id=world.office.id).values("source", "file_name")
    assert job == {"source": "CLI", "file_name": "crm export.csv"}

    code, output = await crm(
        "import", str(path), "--office", "No Such Office", env={"REDIS_URL": ""}
    )
    assert code == 2 and "no office named" in output
    code, output = await crm(
        "import",
        str(tmp_path / "missing.csv"),
        "--office",
        world.office.name,
        env={"REDIS_URL": ""},
    )
    assert code == 2 and "cannot read" in output
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"Name,Email\nA,b@c.example\n")
    code, output = await crm(
        "import", str(bad), "--office", world.office.name, env={"REDIS_URL": ""}
    )
    assert code == 2 and "externalId" in output


@pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode (no REDIS_URL) only")
async def test_embedded_worker_carries_out_an_import(gql, world):
    """R21, embedded default: importContacts reaches the in-process worker, which carries
    the job out on the app's own event loop."""
    keys = [ext() for _ in range(3)]
    job = await request(
        gql, world.admin, [{"externalId": k, "firstName": "E", "lastName": "W"} for k in keys]
    )
    await drain_in_process("imports")
    done = await read_job(gql, world.admin, job["id"])
    assert done["state"] == "DONE" and counts(done) == (3, 0, 3, 0)
    assert set(await contacts(gql, world.admin)) == set(keys)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
async def test_crm_worker_carries_out_imports_from_graphql_and_the_cli(gql, world, tmp_path):
    """R21 with REDIS_URL: importContacts reaches a separate `crm worker` process through
    Redis; `crm import` enqueues its job too and follows its progress until the worker is
    done."""
    log_path = tmp_path / "worker.log"
    async with crm_worker(log_path) as proc:
        keys = [ext() for _ in range(4)]
        job = await request(
            gql, world.admin, [{"externalId": k, "firstName": "R", "lastName": "W"} for k in keys]
        )
        pk = ids.decode("ImportJob", job["id"])
        state = await wait_until_finished(ImportJob, pk, proc)
        assert state == JobState.DONE, log_path.read_text()
        assert counts(await read_job(gql, world.admin, job["id"])) == (4, 0, 4, 0)

        path, cli_keys = cli_file(tmp_path, world, 3)
        code, output = await crm("import", str(path), "--office", world.office.name)
        assert code == 0, output + log_path.read_text()
        assert "DONE: created 3, updated 0, unassigned 0, refused 1" in output
        assert set(await contacts(gql, world.agent)) == set(cli_keys)
