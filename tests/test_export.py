"""CSV exports (R12) over HTTP: `exportContacts` and `exportJob` through GraphQL, the file
through its signed download link, the export audit log (`auditLog`), and the actor carried
out by the service, by the in-process worker and by a `crm worker` process.

Visibility follows R1–R3 exactly as `contacts` does: an agent exports their own contacts,
an office-wide exporter every contact but without other agents' email and phone, an admin
everything. Links are signed, expire, and fetch nothing but their own office's job."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from api.contacts.models import Contact, ContactStatus
from api.core import ids
from api.core.jobs import JobState
from api.core.settings import get_settings
from api.transfers import exporter, links
from api.transfers.models import AuditLogEntry, ExportJob
from api.users.models import User
from tests.conftest import assert_clean, error_codes, make_user, the_error
from tests.workers_for_tests import crm_worker, drain_in_process, wait_until_finished

EXPORT = """
mutation($filter: ContactFilter) {
  exportContacts(filter: $filter) { id state rowCount downloadUrl createdAt }
}"""
JOB = """
query($id: ID!) {
  exportJob(id: $id) { id state rowCount downloadUrl createdAt startedAt finishedAt }
}"""
AUDIT_LOG = """
query($first: Int, $after: String) {
  auditLog(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id action actor { id name } at filter rowCount } }
  }
}"""
CONTACTS = """
query($filter: ContactFilter) {
  contacts(filter: $filter, first: 100) {
    totalCount
    edges { node { externalId email phone } }
  }
}"""
CONTACT = """
query($id: ID!) {
  contact(id: $id) {
    externalId firstName lastName email phone company { name } owner { name crmAgentId }
    crmOwnerId status statusUpdatedAt lastActivityAt atRiskSince unsubscribed archived
  }
}"""
LOG = "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }"
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { id } }"

HEADERS = [
    "External ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Company",
    "Owner ID",
    "Owner Name",
    "Owner Email",
    "Status",
    "Status Updated At",
    "Last Activity At",
    "At Risk Since",
    "Unsubscribed",
    "Archived",
    "Created At",
]


# --- helpers ---------------------------------------------------------------------------


def gid(kind: str, pk: int) -> str:
    return ids.encode(kind, pk)


def xid() -> str:
    return f"X-{uuid.uuid4().hex[:10]}"


async def exporter_user(world: Any, **flags: Any) -> Any:
    """An agent of the world's office with canExport and a CRM id of their own."""
    return await make_user(
        world.office, can_export=True, crm_agent_id=f"E-{uuid.uuid4().hex[:6]}", **flags
    )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records what is sent to the export actor instead of sending it: tests carry jobs out
    with the service's `execute_export`, as the actor would."""
    from workers.exports import export_contacts

    calls: list[int] = []
    monkeypatch.setattr(export_contacts, "send", lambda job_id: calls.append(job_id))
    return calls


async def request(gql: Any, user: Any, filter: dict[str, Any] | None = None) -> dict[str, Any]:
    job = (await gql.ok(EXPORT, {"filter": filter}, as_=user))["exportContacts"]
    assert job["state"] == "QUEUED" and job["downloadUrl"] is None
    return job


async def job_of(gql: Any, user: Any, job_id: str) -> dict[str, Any]:
    return (await gql.ok(JOB, {"id": job_id}, as_=user))["exportJob"]


def pk(job: dict[str, Any]) -> int:
    return ids.decode("ExportJob", job["id"])


async def download(client: Any, url: str) -> Any:
    return await client.get(url)


def parse(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


async def export(
    gql: Any, client: Any, user: Any, filter: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """exportContacts as `user`, carried out, and the CSV behind its link, parsed."""
    job = await request(gql, user, filter)
    await exporter.execute_export(pk(job))
    done = await job_of(gql, user, job["id"])
    assert done["state"] == "DONE", done
    response = await download(client, done["downloadUrl"])
    assert response.status_code == 200, response.text
    header, rows = parse(response.text)
    assert header == HEADERS
    assert done["rowCount"] == len(rows)
    return done, rows


def by_xid(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    out = {row["External ID"]: row for row in rows}
    assert len(out) == len(rows), "an External ID appears twice"
    return out


def office_files(office: Any) -> list[str]:
    folder = get_settings().data_dir / "exports" / str(office.id)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def with_token(url: str, token: str) -> str:
    return url.split("?", 1)[0] + "?token=" + token


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def audit_entries(gql: Any, admin: Any, first: int = 20) -> list[dict[str, Any]]:
    """Every entry of the admin's office's audit log, page by page, newest first."""
    found: list[dict[str, Any]] = []
    after = None
    for _ in range(100):
        page = (await gql.ok(AUDIT_LOG, {"first": first, "after": after}, as_=admin))["auditLog"]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            assert page["totalCount"] == len(found)
            return found
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("auditLog never ended")


# --- who may export, and what each one gets ----------------------------------------------


async def test_export_without_the_right_is_forbidden_and_records_nothing(gql, world, sent):
    """R12: exportContacts needs canExport (office-wide access is not enough); refused,
    nothing is queued, recorded or written. Without a login: UNAUTHENTICATED."""
    await world.contact(owner=world.agent)
    for user in (world.agent, world.office_wide):
        body = await gql(EXPORT, {"filter": None}, as_=user)
        assert error_codes(body) == ["FORBIDDEN"]
        assert body["data"] is None
        assert_clean(body)
    body = await gql(EXPORT, {"filter": None})
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert sent == []
    assert await ExportJob.filter(office_id=world.office.id).count() == 0
    assert await audit_entries(gql, world.admin) == []
    assert office_files(world.office) == []


async def test_agent_with_can_export_exports_only_own_contacts(gql, client, world, sent):
    """R2, R12: an agent with canExport (no office-wide access) exports exactly the
    contacts they own, email and phone included; archived ones are left out."""
    agent = await exporter_user(world)
    mine = [await world.contact(owner=agent, external_id=xid()) for _ in range(2)]
    archived = await world.contact(owner=agent, external_id=xid())
    await gql.ok(DELETE, {"id": gid("Contact", archived.id)}, as_=world.admin)
    await world.contact(owner=world.other_agent, external_id=xid())
    await world.contact(owner=None, external_id=xid())
    await world.contact(owner=world.office_wide, external_id=xid())

    job, rows = await export(gql, client, agent)
    got = by_xid(rows)
    assert set(got) == {c.external_id for c in mine}
    assert job["rowCount"] == 2
    for contact in mine:
        row = got[contact.external_id]
        assert (row["Email"], row["Phone"]) == (contact.email, "'" + contact.phone)
        assert row["Owner Name"] == agent.name and row["Owner Email"] == agent.email
        assert row["Owner ID"] == agent.crm_agent_id
    assert sent == [pk(job)]


async def test_office_wide_exporter_gets_other_agents_contacts_without_email_or_phone(
    gql, client, world, sent
):
    """R2, R3, R12: an office-wide agent with canExport exports every contact of the
    office; those another agent owns come without email and phone (and without that
    agent's email), exactly the cells `contacts` masks for them; their own and unassigned
    contacts come whole."""
    exporter_ = await exporter_user(world, office_wide_access=True)
    own = await world.contact(owner=exporter_, external_id=xid())
    nobodys = await world.contact(owner=None, external_id=xid())
    others = await world.contact(owner=world.agent, external_id=xid())
    await world.contact(owner=None, external_id=xid(), by=world.foreign_admin)

    _, rows = await export(gql, client, exporter_)
    got = by_xid(rows)
    assert set(got) == {own.external_id, nobodys.external_id, others.external_id}
    assert (got[own.external_id]["Email"], got[nobodys.external_id]["Email"]) == (
        own.email,
        nobodys.email,
    )
    assert got[nobodys.external_id]["Phone"] == "'" + nobodys.phone
    masked = got[others.external_id]
    assert (masked["Email"], masked["Phone"], masked["Owner Email"]) == ("", "", "")
    assert masked["Owner Name"] == world.agent.name
    assert got[own.external_id]["Owner Email"] == exporter_.email

    # The same cells the API itself masks for this user (R3).
    listed = await gql(CONTACTS, {"filter": None}, as_=exporter_)
    emails = {
        e["node"]["externalId"]: e["node"]["email"] for e in listed["data"]["contacts"]["edges"]
    }
    assert {k: v or "" for k, v in emails.items()} == {k: r["Email"] for k, r in got.items()}


async def test_admin_export_with_a_filter_matches_contacts(gql, client, world, sent):
    """R12: the export applies the filter exactly as `contacts` does (here status and
    owner), over every contact of the office for an admin, email and phone included."""
    wanted = [
        await world.contact(owner=world.agent, status=ContactStatus.ACTIVE, external_id=xid())
        for _ in range(3)
    ]
    await world.contact(owner=world.agent, status=ContactStatus.INACTIVE, external_id=xid())
    await world.contact(owner=world.agent, external_id=xid())
    await world.contact(owner=world.other_agent, status=ContactStatus.ACTIVE, external_id=xid())
    filter = {"status": ["ACTIVE"], "ownerId": gid("User", world.agent.id)}

    job, rows = await export(gql, client, world.admin, filter)
    got = by_xid(rows)
    assert set(got) == {c.external_id for c in wanted}
    listed = (await gql.ok(CONTACTS, {"filter": filter}, as_=world.admin))["contacts"]
    assert {e["node"]["externalId"] for e in listed["edges"]} == set(got)
    assert all(got[c.external_id]["Email"] == c.email for c in wanted)
    assert all(row["Status"] == "ACTIVE" for row in rows)

    [entry] = await audit_entries(gql, world.admin)
    assert json.loads(entry["filter"]) == filter
    assert entry["rowCount"] == job["rowCount"] == 3


async def test_a_filter_that_is_bad_input_records_nothing(gql, world, sent):
    """R20, R12: a malformed filter is BAD_USER_INPUT naming the field; nothing recorded."""
    body = await gql(EXPORT, {"filter": {"ownerId": "not an id"}}, as_=world.admin)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert the_error(body)["extensions"]["field"] == "filter.ownerId"
    assert_clean(body)
    assert sent == []
    assert await audit_entries(gql, world.admin) == []


# --- the file ---------------------------------------------------------------------------


async def test_csv_columns_carry_each_contact_as_the_api_shows_it(gql, client, world, sent):
    """R12: one header row a CRM import reads, one row per contact, each cell the value
    the API shows (times in UTC, ISO 8601, to the second)."""
    contact = await world.contact(
        owner=world.agent,
        external_id=xid(),
        first_name="Zoë",
        last_name="O'Brien\rJr.",
        company_name='Acme "Homes",\r\nEast',
        status=ContactStatus.ACTIVE,
    )
    await gql.ok(
        LOG,
        {"input": {"contactId": gid("Contact", contact.id), "kind": "CALL"}},
        as_=world.admin,
    )
    unassigned = await world.contact(owner=None, external_id=xid(), crm_owner_id="GONE-1")

    _, rows = await export(gql, client, world.admin)
    got = by_xid(rows)
    shown = (await gql.ok(CONTACT, {"id": gid("Contact", contact.id)}, as_=world.admin))["contact"]

    def second(value: str | None) -> str:
        if value is None:
            return ""
        return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="seconds")

    created = (await Contact.get(id=contact.id)).created_at
    assert got[contact.external_id] == {
        "External ID": shown["externalId"],
        "First Name": "Zoë",
        "Last Name": "O'Brien\rJr.",
        "Email": shown["email"],
        "Phone": "'" + shown["phone"],  # "+44 …" starts like a formula (see below)
        "Company": 'Acme "Homes",\r\nEast',
        "Owner ID": world.agent.crm_agent_id,
        "Owner Name": shown["owner"]["name"],
        "Owner Email": world.agent.email,
        "Status": "ACTIVE",
        "Status Updated At": second(shown["statusUpdatedAt"]),
        "Last Activity At": second(shown["lastActivityAt"]),
        "At Risk Since": "",
        "Unsubscribed": "false",
        "Archived": "false",
        "Created At": created.astimezone(UTC).isoformat(timespec="seconds"),
    }
    # Unassigned: no owner here; the CRM owner it came with stays, for a re-import.
    row = got[unassigned.external_id]
    assert (row["Owner ID"], row["Owner Name"], row["Owner Email"]) == ("GONE-1", "", "")
    assert row["Status"] == "" and row["Company"] == ""


async def test_the_import_reads_the_exports_columns(gql, client, world, sent):
    """R12, R21: the file is CRM-shaped: the import's CSV reader maps every column it can
    take back (external id, names, email, phone, company, CRM owner, status) from the
    export's own headers, and reports the rest as unknown."""
    from api.transfers import csv_format

    await world.contact(owner=world.agent, external_id=xid())
    job = await request(gql, world.admin)
    await exporter.execute_export(pk(job))
    url = (await job_of(gql, world.admin, job["id"]))["downloadUrl"]
    parsed = csv_format.parse((await download(client, url)).content, max_rows=10)
    assert parsed.columns == {
        "external_id": "External ID",
        "first_name": "First Name",
        "last_name": "Last Name",
        "email": "Email",
        "phone": "Phone",
        "company_name": "Company",
        "crm_owner_id": "Owner ID",
        "status": "Status",
    }
    assert set(parsed.unknown_columns) == set(HEADERS) - set(parsed.columns.values())
    assert len(parsed.rows) == 1


async def test_cells_that_start_like_formulas_are_defused(gql, client, world, sent):
    """R12 (CSV injection, as OWASP advises): a cell starting with = + - @ gets a leading
    apostrophe, so a spreadsheet shows it as text instead of running it."""
    payloads = {
        "first_name": '=HYPERLINK("http://evil.example","x")',
        "last_name": "@SUM(1+1)",
        "company_name": "+cmd|' /C calc'!A0",
        "external_id": f"-{uuid.uuid4().hex[:8]}",
    }
    await world.contact(owner=None, **payloads)
    _, [row] = await export(gql, client, world.admin, {"search": "hyperlink"})
    assert row["First Name"] == "'" + payloads["first_name"]
    assert row["Last Name"] == "'" + payloads["last_name"]
    assert row["Company"] == "'" + payloads["company_name"]
    assert row["External ID"] == "'" + payloads["external_id"]


async def test_batches_cover_every_row_once_and_show_progress(
    gql, client, world, sent, monkeypatch
):
    """R12, job progress: the job reads keyset batches (here of 2 rows) and exportJob shows
    RUNNING with the running rowCount while it works, then DONE with every row once."""
    monkeypatch.setattr(exporter, "BATCH_SIZE", 2)
    made = [await world.contact(owner=world.agent, external_id=xid()) for _ in range(5)]
    job = await request(gql, world.admin)
    seen: list[tuple[str, int | None, str | None]] = []
    report = exporter._progress

    async def watched(job_id: int, count: int) -> None:
        await report(job_id, count)
        shown = await job_of(gql, world.admin, job["id"])
        seen.append((shown["state"], shown["rowCount"], shown["downloadUrl"]))

    monkeypatch.setattr(exporter, "_progress", watched)
    await exporter.execute_export(pk(job))
    assert seen == [("RUNNING", 2, None), ("RUNNING", 4, None), ("RUNNING", 5, None)]
    done = await job_of(gql, world.admin, job["id"])
    assert done["state"] == "DONE" and done["rowCount"] == 5
    assert done["startedAt"] is not None and done["finishedAt"] is not None
    _, rows = parse((await download(client, done["downloadUrl"])).text)
    assert set(by_xid(rows)) == {c.external_id for c in made}


# --- exportJob -------------------------------------------------------------------------


async def test_export_job_is_for_its_requester_and_admins_only(gql, world, sent):
    """R1, R12: the requester and the office's admins read a job; another exporter of the
    office, and anyone of another office, get NOT_FOUND as for an unknown id; a user
    without canExport is FORBIDDEN."""
    agent = await exporter_user(world)
    colleague = await exporter_user(world, office_wide_access=True)
    job = await request(gql, agent)
    assert (await job_of(gql, agent, job["id"]))["state"] == "QUEUED"
    assert (await job_of(gql, world.admin, job["id"]))["id"] == job["id"]
    unknown = gid("ExportJob", 2**62 + 7)
    for user, job_id in (
        (colleague, job["id"]),
        (world.foreign_admin, job["id"]),
        (world.admin, unknown),
    ):
        body = await gql(JOB, {"id": job_id}, as_=user)
        assert error_codes(body) == ["NOT_FOUND"]
        assert body["data"]["exportJob"] is None
    body = await gql(JOB, {"id": job["id"]}, as_=world.other_agent)
    assert error_codes(body) == ["FORBIDDEN"]


async def test_a_requester_who_lost_the_right_gets_no_file(gql, world, sent):
    """R12: canExport taken away before the job runs: the job FAILS and writes nothing."""
    agent = await exporter_user(world)
    await world.contact(owner=agent)
    job = await request(gql, agent)
    await User.filter(id=agent.id).update(can_export=False)
    await exporter.execute_export(pk(job))
    shown = await job_of(gql, world.admin, job["id"])
    assert (shown["state"], shown["downloadUrl"]) == ("FAILED", None)
    assert office_files(world.office) == []


# --- the download link ------------------------------------------------------------------


async def test_download_link_serves_the_file_as_an_attachment(gql, client, world, sent):
    """R12: the link works without a login, as a CSV attachment no cache keeps, and a
    fresh one is valid EXPORT_LINK_TTL_MINUTES (15 by default) from when it is read."""
    await world.contact(owner=world.agent)
    job = await request(gql, world.admin)
    await exporter.execute_export(pk(job))
    before = datetime.now(UTC)
    url = (await job_of(gql, world.admin, job["id"]))["downloadUrl"]
    assert url.startswith(get_settings().public_base_url + "/exports/")
    response = await download(client, url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "no-store" in response.headers["cache-control"]
    assert parse(response.text)[0] == HEADERS
    expires = int(token_of(url).split(".")[1])
    lifetime = expires - before.timestamp()
    assert 14 * 60 < lifetime <= 15 * 60 + 1


async def test_forged_altered_and_expired_links_are_not_found(gql, client, world, sent):
    """R12: a forged token, one with any part altered, one past its expiry, and none at
    all each answer the same 404, saying nothing of what was wrong."""
    await world.contact(owner=world.agent)
    job = await request(gql, world.admin)
    await exporter.execute_export(pk(job))
    url = (await job_of(gql, world.admin, job["id"]))["downloadUrl"]
    token = token_of(url)
    office, expires, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    past = datetime.now(UTC) - timedelta(seconds=5)
    bad = {
        "forged": f"{office}.{expires}.{'x' * 43}",
        "altered signature": f"{office}.{expires}.{flipped}",
        "altered expiry": f"{office}.{int(expires) + 3600}.{signature}",
        "altered office": f"{world.foreign_office.id}.{expires}.{signature}",
        "expired": links.make_token(pk(job), world.office.id, past),
        "truncated": token[:-1],
        "empty": "",
    }
    answers = set()
    for name, forged in bad.items():
        response = await download(client, with_token(url, forged))
        assert response.status_code == 404, name
        answers.add(response.text)
    response = await download(client, url.split("?", 1)[0])
    assert response.status_code == 404
    answers.add(response.text)
    assert len(answers) == 1
    assert (await download(client, url)).status_code == 200  # the genuine link still works


async def test_a_token_of_one_offices_job_fetches_no_other_job(gql, client, world, sent):
    """R1, R12: a genuine token names its own office's job alone: on another office's job
    (or another job at all), on an unknown job, and once the file is gone, it is 404."""
    await world.contact(owner=world.agent)
    await world.contact(owner=None, by=world.foreign_admin)
    mine = await request(gql, world.admin)
    theirs = await request(gql, world.foreign_admin)
    for job in (mine, theirs):
        await exporter.execute_export(pk(job))
    my_url = (await job_of(gql, world.admin, mine["id"]))["downloadUrl"]
    their_url = (await job_of(gql, world.foreign_admin, theirs["id"]))["downloadUrl"]

    assert (await download(client, with_token(their_url, token_of(my_url)))).status_code == 404
    assert (await download(client, with_token(my_url, token_of(their_url)))).status_code == 404
    # A token signed for the other job but claiming this office: still bound to its job.
    claimed = links.make_token(
        pk(theirs), world.office.id, datetime.now(UTC) + timedelta(minutes=5)
    )
    assert (await download(client, with_token(my_url, claimed))).status_code == 404
    # Signed for this very job but naming the other office: the job's office must match.
    other_office = links.make_token(
        pk(mine), world.foreign_office.id, datetime.now(UTC) + timedelta(minutes=5)
    )
    assert (await download(client, with_token(my_url, other_office))).status_code == 404
    unknown = gid("ExportJob", 2**62 + 11)
    fake = links.make_token(2**62 + 11, world.office.id, datetime.now(UTC) + timedelta(minutes=5))
    base = get_settings().public_base_url
    assert (
        await download(client, f"{base}/exports/{unknown}/download?token={fake}")
    ).status_code == 404
    assert (
        await download(client, f"{base}/exports/nonsense/download?token={fake}")
    ).status_code == 404

    assert (await download(client, my_url)).status_code == 200
    job_row = await ExportJob.get(id=pk(mine))
    (get_settings().data_dir / job_row.file_path).unlink()
    assert (await download(client, my_url)).status_code == 404


# --- the audit log ----------------------------------------------------------------------


async def test_audit_log_records_every_export_newest_first(gql, world, sent):
    """R12: each export is recorded when asked for (who, when, filter) and its row count
    filled in when done; admins page through the log newest first; other offices' entries
    never show."""
    agent = await exporter_user(world)
    await world.contact(owner=agent)
    await world.contact(owner=world.agent)
    first = await request(gql, agent)
    second = await request(gql, world.admin, {"unassigned": False})
    await request(gql, world.admin, {"search": "pat"})
    await request(gql, world.foreign_admin)
    await exporter.execute_export(pk(first))
    await exporter.execute_export(pk(second))

    entries = await audit_entries(gql, world.admin, first=2)  # two pages and one more
    assert [e["action"] for e in entries] == ["EXPORT"] * 3
    assert [e["actor"]["id"] for e in entries] == [
        gid("User", world.admin.id),
        gid("User", world.admin.id),
        gid("User", agent.id),
    ]
    assert entries[2]["actor"]["name"] == agent.name
    assert [json.loads(e["filter"]) for e in entries] == [
        {"search": "pat"},
        {"unassigned": False},
        {},
    ]
    assert [e["rowCount"] for e in entries] == [None, 2, 1]
    times = [datetime.fromisoformat(e["at"]) for e in entries]
    assert times == sorted(times, reverse=True)
    assert len({e["id"] for e in entries}) == 3

    foreign = await audit_entries(gql, world.foreign_admin)
    assert len(foreign) == 1 and foreign[0]["actor"]["id"] == gid("User", world.foreign_admin.id)


async def test_only_admins_read_the_audit_log(gql, world, sent):
    """R12: the audit log is for admins; exporters and office-wide agents are FORBIDDEN;
    paging arguments out of range are BAD_USER_INPUT."""
    for user in (await exporter_user(world, office_wide_access=True), world.agent):
        body = await gql(AUDIT_LOG, {"first": 5}, as_=user)
        assert error_codes(body) == ["FORBIDDEN"]
        assert_clean(body)
    assert error_codes(await gql(AUDIT_LOG, {})) == ["UNAUTHENTICATED"]
    for variables in ({"first": 0}, {"first": 101}, {"after": "!!"}, {"after": "WyJ4Il0="}):
        body = await gql(AUDIT_LOG, variables, as_=world.admin)
        assert error_codes(body) == ["BAD_USER_INPUT"], variables
        assert_clean(body)


# --- delivered twice, lost, and the actor -------------------------------------------------


class WorkerKilled(BaseException):
    """What a worker's death looks like from inside the job (dramatiq's time limit raises
    a BaseException too)."""


async def test_a_job_delivered_twice_at_once_writes_one_file(gql, client, world, sent):
    """R12 (at-least-once delivery): one job carried out twice at once leaves one file,
    one row count and one audit log entry."""
    for _ in range(3):
        await world.contact(owner=world.agent)
    job = await request(gql, world.admin)
    await asyncio.gather(exporter.execute_export(pk(job)), exporter.execute_export(pk(job)))
    done = await job_of(gql, world.admin, job["id"])
    assert (done["state"], done["rowCount"]) == ("DONE", 3)
    assert len(office_files(world.office)) == 1
    [entry] = await audit_entries(gql, world.admin)
    assert entry["rowCount"] == 3
    _, rows = parse((await download(client, done["downloadUrl"])).text)
    assert len(rows) == 3


async def test_a_job_redelivered_after_a_crash_exports_once(gql, client, world, sent, monkeypatch):
    """R12: a worker that dies mid-export leaves no file and an unfinished job; the
    broker's redelivery writes the one file, and a third delivery changes nothing."""
    monkeypatch.setattr(exporter, "BATCH_SIZE", 2)
    for _ in range(5):
        await world.contact(owner=world.agent)
    job = await request(gql, world.admin)
    report = exporter._progress

    async def dies(job_id: int, count: int) -> None:
        await report(job_id, count)
        raise WorkerKilled

    monkeypatch.setattr(exporter, "_progress", dies)
    with pytest.raises(WorkerKilled):
        await exporter.execute_export(pk(job))
    shown = await job_of(gql, world.admin, job["id"])
    assert (shown["state"], shown["rowCount"], shown["downloadUrl"]) == ("RUNNING", 2, None)
    assert office_files(world.office) == []
    monkeypatch.setattr(exporter, "_progress", report)

    await exporter.execute_export(pk(job))  # the redelivery
    done = await job_of(gql, world.admin, job["id"])
    files = office_files(world.office)
    await exporter.execute_export(pk(job))  # delivered once more: already DONE
    assert (done["state"], done["rowCount"]) == ("DONE", 5)
    assert office_files(world.office) == files and len(files) == 1
    [entry] = await audit_entries(gql, world.admin)
    assert entry["rowCount"] == 5
    _, rows = parse((await download(client, done["downloadUrl"])).text)
    assert len(rows) == 5


async def test_a_job_whose_message_was_lost_is_sent_again(gql, world, monkeypatch):
    """R12: with the broker down the request is still recorded (QUEUED); the clock's
    resend sends it once its message is overdue, and not before."""
    from workers.exports import export_contacts

    def broker_down(job_id: int) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(export_contacts, "send", broker_down)
    job = await request(gql, world.admin)
    calls: list[int] = []
    monkeypatch.setattr(export_contacts, "send", lambda job_id: calls.append(job_id))
    await exporter.resend_lost()
    assert pk(job) not in calls
    await exporter.resend_lost(datetime.now(UTC) + exporter.RESEND_AFTER + timedelta(minutes=1))
    assert pk(job) in calls
    assert (await ExportJob.get(id=pk(job))).enqueued_at is not None


async def check_worker_result(gql: Any, client: Any, world: Any, job: dict[str, Any]) -> None:
    done = await job_of(gql, world.admin, job["id"])
    assert (done["state"], done["rowCount"]) == ("DONE", 2)
    response = await download(client, done["downloadUrl"])
    assert response.status_code == 200
    assert len(parse(response.text)[1]) == 2
    [entry] = [
        e
        for e in await audit_entries(gql, world.admin)
        if e["actor"]["id"] == gid("User", world.admin.id)
    ]
    assert entry["rowCount"] == 2


@pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode (no REDIS_URL) only")
async def test_embedded_worker_carries_out_a_requested_export(gql, client, world):
    """R12, embedded default: exportContacts reaches the in-process worker, which runs the
    actor on the app's own event loop."""
    await world.contact(owner=world.agent)
    await world.contact(owner=None)
    job = await request(gql, world.admin)
    await drain_in_process("exports")
    await check_worker_result(gql, client, world, job)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
async def test_crm_worker_carries_out_a_requested_export(gql, client, world, tmp_path):
    """R12 with REDIS_URL: exportContacts reaches a separate `crm worker` process through
    Redis; the file it writes is served by the API's link."""
    await world.contact(owner=world.agent)
    await world.contact(owner=None)
    log_path = tmp_path / "worker.log"
    async with crm_worker(log_path) as proc:
        job = await request(gql, world.admin)
        state = await wait_until_finished(ExportJob, pk(job), proc)
        assert state == JobState.DONE, log_path.read_text()
    await check_worker_result(gql, client, world, job)
    assert await AuditLogEntry.filter(export_job_id=pk(job)).count() == 1
