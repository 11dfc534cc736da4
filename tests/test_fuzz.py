"""R20 under fuzzing: schemathesis (GraphQL mode) generates queries and mutations of every root
field from the schema the running app publishes, sent by an admin, a plain agent and an
office-wide agent. Whatever comes, the app answers data or errors with a known
`extensions.code`: never an internal error, a 5xx or a message showing internals.

The app runs in process on the suite's event loop (httpx's ASGI transport): the test database
belongs to that loop. Schemathesis' own ASGI client would start the app's lifespan on a loop
of its own, connecting the ORM a second time there, so its schema is loaded from the
introspection answer this client gets, and its cases are sent through the same client.

IDs are drawn from the real objects of both offices (so tenancy and permissions are fuzzed,
not only id parsing), forged ids of every kind, and junk. Mutations that end the fuzzer's own
sessions (logout, changePassword) are left out; a user the fuzz changes is put back between
examples. FUZZ_SCALE runs more (`make fuzz`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.graphql import nodes

from api.core import ids
from api.core.settings import get_settings
from api.users import auth
from tests.conftest import World, make_user
from tests.fuzzing import check_answer, hypothesis_settings, model_named

# Ending the caller's own sessions would turn the rest of the run into UNAUTHENTICATED.
SESSION_ENDING = ["Mutation.logout", "Mutation.changePassword"]
ID_KINDS = [
    "Contact",
    "User",
    "Office",
    "Audience",
    "Campaign",
    "Company",
    "Activity",
    "ImportJob",
    "ExportJob",
    "AuditRun",
    "AuditLogEntry",
]
ROLES = ["admin", "agent", "office_wide"]

# Global ids of the current test's objects, both offices; filled by `fuzz_world`. A strategy
# reads it when drawing, so the schema (and its strategies) are built once per module.
ID_POOL: list[str] = []


def _pooled(index: int) -> str:
    return ID_POOL[index % len(ID_POOL)] if ID_POOL else ""


def _forged(kind: str, pk: int) -> str:
    return ids.encode(kind, pk)


IDS = st.one_of(
    st.integers(min_value=0, max_value=255).map(_pooled),
    st.integers(min_value=0, max_value=255).map(_pooled),
    st.builds(_forged, st.sampled_from(ID_KINDS), st.integers(min_value=-2, max_value=2**64)),
    st.text(max_size=70),
)
DATES = st.dates().map(str)
DATETIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(lambda d: f"{d}T25:61:00", DATES),
    st.text(max_size=30),
)
schemathesis.graphql.scalar("ID", IDS.map(nodes.String))
schemathesis.graphql.scalar("DateTime", DATETIMES.map(nodes.String))
schemathesis.graphql.scalar("Date", st.one_of(DATES, st.text(max_size=12)).map(nodes.String))
# Files come as multipart parts; in a JSON body an Upload is whatever string the client sends.
schemathesis.graphql.scalar("Upload", st.text(max_size=20).map(nodes.String))


@pytest.fixture(scope="module", autouse=True)
def introspection_on() -> Iterator[None]:
    """The schema is read by introspection, off by default with PostgreSQL
    (GRAPHQL_INTROSPECTION)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(get_settings(), "graphql_introspection_value", True)
        yield


@pytest.fixture(scope="module")
async def fuzz_schema(app: Any) -> Any:
    """The schema the app publishes, as schemathesis sees it (introspection over HTTP)."""
    from graphql import get_introspection_query

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/graphql", json={"query": get_introspection_query()})
    response.raise_for_status()
    schema = schemathesis.graphql.from_dict(response.json()["data"])
    schema = schema.exclude(name=SESSION_ENDING)
    # Mostly documents the schema accepts, to reach the resolvers; some it refuses.
    return st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.NEGATIVE),
    )


async def fuzz_world(world: World) -> None:
    """Objects of every kind in both offices, their ids in ID_POOL: contacts owned by each
    role and unassigned, a company, an activity, custom audiences and campaigns in user and
    office-wide accounts, an import, an export (and its audit log entry) and an audit run."""
    from api.audiences import service as audiences
    from api.audiences.models import SendAccount
    from api.audit import service as audit
    from api.campaigns import service as campaigns
    from api.contacts.filters import ContactFilterSpec
    from api.contacts.models import ActivityKind
    from api.contacts.service import log_activity
    from api.transfers import exporter, importer
    from api.transfers.models import ImportSource

    foreign_agent = await make_user(world.foreign_office, crm_agent_id=world.agent.crm_agent_id)
    pool: list[str] = []
    for office_admin, owners in (
        (world.admin, [world.agent, world.other_agent, world.office_wide, None]),
        (world.foreign_admin, [foreign_agent, None]),
    ):
        for owner in owners:
            contact = await world.contact(owner=owner, by=office_admin, company_name="Fuzz & Sons")
            activity = await log_activity(office_admin, contact.id, ActivityKind.CALL)
            pool += [ids.encode("Contact", contact.id), ids.encode("Activity", activity.id)]
            if contact.company_id:
                pool.append(ids.encode("Company", contact.company_id))
        for account in (SendAccount.USER, SendAccount.OFFICE):
            audience = await audiences.create_audience(
                office_admin, f"Fuzz {account}", account, ContactFilterSpec()
            )
            campaign = await campaigns.create_campaign(
                office_admin,
                account,
                campaigns.CampaignDraft(
                    name="Fuzz",
                    subject="Hello {{first_name}}",
                    body_html="<p>Hi {{first_name}}</p>",
                    audience_id=audience.id,
                ),
            )
            pool += [ids.encode("Audience", audience.id), ids.encode("Campaign", campaign.id)]
        # Jobs as their mutations record them; what they queue goes with the module.
        imported = await importer.request_import(
            office_admin,
            [{"external_id": f"fuzz-{office_admin.id}", "first_name": "Fuzz"}],
            source=ImportSource.GRAPHQL,
        )
        exported = await exporter.request_export(office_admin, ContactFilterSpec())
        audit_run = await audit.request_audit(office_admin, dry_run=True)
        pool += [
            ids.encode("ImportJob", imported.id),
            ids.encode("ExportJob", exported.id),
            ids.encode("AuditRun", audit_run.id),
        ]
        logged = model_named("AuditLogEntry").filter(office_id=office_admin.office_id)
        pool += [
            ids.encode("AuditLogEntry", pk) for pk in await logged.values_list("id", flat=True)
        ]
    users = [world.admin, world.agent, world.other_agent, world.office_wide]
    users += [world.foreign_admin, foreign_agent]
    pool += [ids.encode("User", u.id) for u in users]
    pool += [ids.encode("Office", o.id) for o in (world.office, world.foreign_office)]
    ID_POOL[:] = pool


async def fresh_token(user: Any) -> str:
    """A token for `user` as the world made them: whatever an admin's fuzzed updateUser did to
    the role, flags, active state or password (which revokes tokens) is undone first."""
    from api.users.models import User

    as_made = {
        "role": user.role,
        "active": True,
        "office_wide_access": user.office_wide_access,
        "can_export": user.can_export,
        "can_delete": user.can_delete,
        "crm_agent_id": user.crm_agent_id,
    }
    now = await User.get(id=user.id)
    if any(getattr(now, name) != value for name, value in as_made.items()):
        await User.filter(id=user.id).update(**as_made)
        now = await User.get(id=user.id)
    return auth.issue_token(now)


@pytest.fixture(scope="module", autouse=True)
def no_jobs_left_behind() -> Iterator[None]:
    """The imports, exports and sends the fuzz got queued go with the module: later tests
    drain their queues, or run a worker over them, and meet only their own jobs."""
    yield
    from workers.broker import setup_broker

    setup_broker().flush_all()


@pytest.fixture
async def fuzzed_world(world: World) -> World:
    await fuzz_world(world)
    return world


@pytest.mark.parametrize("role", ROLES)
@hypothesis_settings(ci_examples=300)
@given(data=st.data())
async def test_no_answer_is_a_server_error(
    role: str, fuzz_schema: Any, fuzzed_world: World, client: httpx.AsyncClient, data: Any
) -> None:
    user = getattr(fuzzed_world, role)
    case = data.draw(fuzz_schema, label="case")
    headers = {"Authorization": f"Bearer {await fresh_token(user)}"}
    response = await client.post("/graphql", json={"query": case.body}, headers=headers)
    check_answer(response, case.body)


async def test_the_standard_introspection_query_is_answered(client: httpx.AsyncClient) -> None:
    """What GraphiQL, code generators and schemathesis ask first: its lists are the schema's
    own, not pages of rows, so the cost limit leaves them be (the depth limit always did)."""
    from graphql import build_client_schema, get_introspection_query

    response = await client.post("/graphql", json={"query": get_introspection_query()})
    body = check_answer(response, "the introspection query")
    assert not body.get("errors"), body
    assert "Contact" in build_client_schema(body["data"]).type_map
