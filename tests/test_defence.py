"""Defences of the GraphQL endpoint (R20 and the spec's 1M-row scale): depth and cost limits
refuse a document before any SQL runs, a page of contacts costs a constant number of SQL
statements, errors never leak internals, and `first` stays within 1..100."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from api.core import ids
from tests.conftest import LEAKS, assert_clean, make_office, make_user

BAD = "BAD_USER_INPUT"


def refused(body: dict[str, Any], field: str | None = None) -> dict[str, Any]:
    """Exactly one BAD_USER_INPUT error and no data."""
    assert_clean(body)
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    assert errors[0]["extensions"]["code"] == BAD, body
    if field is not None:
        assert errors[0]["extensions"].get("field") == field, body
    assert not body.get("data"), body
    return errors[0]


# --- counting SQL statements -----------------------------------------------------------------


class _StatementCounter(logging.Handler):
    """Tortoise's clients log each statement they execute once, at DEBUG, on
    "tortoise.db_client" (execute_query, execute_query_dict, execute_insert, execute_many,
    execute_script); connection set-up and tear-down messages are not statements."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Created connection", "Closed connection")):
            return
        self.statements.append(message)


@contextlib.contextmanager
def counting_sql() -> Iterator[list[str]]:
    logger = logging.getLogger("tortoise.db_client")
    handler = _StatementCounter()
    level, disabled = logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled


async def sql_of(gql: Any, query: str, variables: dict[str, Any] | None = None, *, as_: Any):
    """(response body, SQL statements the request ran)."""
    with counting_sql() as statements:
        body = await gql(query, variables, as_=as_)
    return body, list(statements)


async def baseline(gql: Any, user: Any) -> int:
    """Statements of a request that needs no data: the caller's lookup from the token. It is
    more than zero, so a counter that silently counts nothing fails here."""
    body, statements = await sql_of(gql, "{ __typename }", as_=user)
    assert body == {"data": {"__typename": "Query"}}, body
    assert len(statements) > 0, "the SQL counter counted nothing"
    assert any("SELECT" in s.upper() for s in statements), statements
    return len(statements)


# --- (1) depth limit -------------------------------------------------------------------------

# `name` sits at depth 11 (the top-level field is depth 0); the limit is 10. Pages of one
# keep the cost limit out of the way: these documents are cheap, only deep.
TOO_DEEP = """
{ campaigns(first: 1) { edges { node { audience { contacts(first: 1) { edges { node {
  activities(first: 1) { edges { node { user { name } } } } } } } } } } } }
"""
TOO_DEEP_VIA_FRAGMENTS = """
fragment Act on Activity { user { name } }
fragment C on Contact { activities(first: 1) { edges { node { ...Act } } } }
{ campaigns(first: 1) { edges { node { audience { contacts(first: 1) { edges { node { ...C } } } } } } } }
"""
# The same path ending one level higher: depth 10, allowed.
DEEPEST_ALLOWED = """
{ campaigns(first: 1) { edges { node { audience { contacts(first: 1) { edges { node {
  activities(first: 1) { edges { node { id } } } } } } } } } } }
"""


@pytest.mark.parametrize("query", [TOO_DEEP, TOO_DEEP_VIA_FRAGMENTS], ids=["inline", "fragments"])
async def test_too_deep_query_is_refused_before_it_runs(gql, world, query):
    """R20: a query nested deeper than the limit is BAD_USER_INPUT, and no SQL runs for it."""
    lookup = await baseline(gql, world.admin)
    body, statements = await sql_of(gql, query, as_=world.admin)
    refused(body)
    assert len(statements) == lookup, statements


async def test_query_at_the_depth_limit_passes_validation(gql, world):
    """The depth limit is a limit, not a blanket refusal: depth 10 is not BAD_USER_INPUT."""
    body = await gql(DEEPEST_ALLOWED, as_=world.admin)
    assert_clean(body)
    assert BAD not in [e["extensions"]["code"] for e in body.get("errors") or []], body


# --- (2) cost limit --------------------------------------------------------------------------


def aliased_pages(count: int, first: str | None, inner: str | None) -> str:
    contacts = f"contacts(first: {first})" if first else "contacts"
    activities = f"activities(first: {inner})" if inner else "activities"
    one = f"{contacts} {{ edges {{ node {{ id firstName {activities} {{ edges {{ node {{ id kind note }} }} }} }} }} }}"
    return "{ " + " ".join(f"c{i}: {one}" for i in range(count)) + " }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (aliased_pages(5, "100", "100"), None),
        (aliased_pages(25, "100", "100"), None),
        ("query($n: Int) " + aliased_pages(5, "$n", "$n"), {"n": 100}),
        (
            "fragment P on Contact { id activities(first: 100) { edges { node { id kind } } } }\n"
            "{ "
            + " ".join(
                f"c{i}: contacts(first: 100) {{ edges {{ node {{ ...P }} }} }}" for i in range(5)
            )
            + " }",
            None,
        ),
    ],
    ids=["5-aliases", "25-aliases", "variables", "fragments"],
)
async def test_expensive_query_is_refused_before_it_runs(gql, world, query, variables):
    """Hundreds of large nested lists are refused as BAD_USER_INPUT before any SQL runs."""
    await world.contact(owner=world.agent)
    lookup = await baseline(gql, world.admin)
    body, statements = await sql_of(gql, query, variables, as_=world.admin)
    refused(body)
    assert len(statements) == lookup, statements


async def test_default_page_sizes_count_towards_the_cost(gql, world):
    """Leaving `first` out asks for its default (50 contacts, 20 activities each): twenty such
    aliases ask for 1000 activity lists and 20000 activities, and must be refused as well."""
    await world.contact(owner=world.agent)
    lookup = await baseline(gql, world.admin)
    body, statements = await sql_of(gql, aliased_pages(20, None, None), as_=world.admin)
    refused(body)
    assert len(statements) == lookup, statements


async def test_same_shape_with_small_pages_runs(gql, world):
    """The cost limit is about size: the same five aliases with pages of 2 are answered."""
    await world.contact(owner=world.agent)
    data = await gql.ok(aliased_pages(5, "2", "2"), as_=world.admin)
    assert all(len(data[f"c{i}"]["edges"]) == 1 for i in range(5)), data


@pytest.mark.parametrize(
    "query",
    [
        "{ " + " ".join(f"a{i}: __typename" for i in range(200)) + " }",
        "{ me { " + "id " * 6000 + "} }",
    ],
    ids=["too-many-aliases", "too-many-tokens"],
)
async def test_oversized_documents_are_refused(gql, world, query):
    """R20: documents past the alias or token limits are BAD_USER_INPUT, never run."""
    lookup = await baseline(gql, world.admin)
    body, statements = await sql_of(gql, query, as_=world.admin)
    refused(body)
    assert len(statements) == lookup, statements


# --- (3) SQL statements per page -------------------------------------------------------------

PAGE = """
query($n: Int) {
  contacts(first: $n) { edges { node { email status owner { name } company { name } } } }
}
"""


RELATIONS = """
query($id: ID!) {
  contact(id: $id) { owner { name } company { name } statusHistory { actor { name } } }
  contacts(first: 5) { edges { node { id owner { name } } } }
}
"""


async def test_relations_are_read_afresh_by_each_request(gql, world):
    """Owners, companies and actors come through loaders that live as long as one request:
    what one request loaded never answers the next, whether a page prefetched the row or a
    single contact loaded it."""
    contact = await world.contact(owner=world.agent, company_name="Acme Lettings")
    contact_id = ids.encode("Contact", contact.id)
    await gql.ok(
        "mutation($id: ID!) { setContactStatus(id: $id, status: ACTIVE) { id } }",
        {"id": contact_id},
        as_=world.admin,
    )
    for name in ("First Name", "Second Name"):
        await gql.ok(
            "mutation($id: ID!, $input: UserPatch!) { updateUser(id: $id, input: $input) { id } }",
            {"id": ids.encode("User", world.agent.id), "input": {"name": name}},
            as_=world.admin,
        )
        await gql.ok(
            "mutation($id: ID!, $input: UserPatch!) { updateUser(id: $id, input: $input) { id } }",
            {"id": ids.encode("User", world.admin.id), "input": {"name": f"Admin {name}"}},
            as_=world.admin,
        )
        data = await gql.ok(RELATIONS, {"id": contact_id}, as_=world.admin)
        assert data["contact"]["owner"]["name"] == name
        assert data["contact"]["company"]["name"] == "Acme Lettings"
        assert [c["actor"]["name"] for c in data["contact"]["statusHistory"]] == [f"Admin {name}"]
        listed = {e["node"]["id"]: e["node"] for e in data["contacts"]["edges"]}
        assert listed[contact_id]["owner"]["name"] == name


async def test_contact_page_costs_constant_sql(gql):
    """A page of contacts with owner and company names costs the same statements for 10 and
    100 rows, and at most 4: the caller's lookup, the page, the owners, the companies."""
    from api.contacts.models import Company, Contact, ContactStatus

    office = await make_office()
    admin = await make_user(office, "ADMIN")
    owners = [await make_user(office, name=f"Owner {n} {uuid.uuid4().hex[:4]}") for n in range(4)]
    companies = [
        await Company.create(office_id=office.id, name=f"Co {n}", name_key=f"co {n}")
        for n in range(3)
    ]
    statuses = [ContactStatus.ACTIVE, ContactStatus.INACTIVE, None]
    await Contact.bulk_create(
        [
            Contact(
                office_id=office.id,
                first_name="Bulk",
                last_name=f"Contact {n}",
                email=f"bulk{n}-{uuid.uuid4().hex[:6]}@client.example",
                owner_id=owners[n % len(owners)].id,
                company_id=companies[n % len(companies)].id,
                status=statuses[n % len(statuses)],
            )
            for n in range(120)
        ]
    )
    owner_names = {u.name for u in owners}
    company_names = {c.name for c in companies}

    lookup = await baseline(gql, admin)
    counts = {}
    for size in (10, 100):
        with counting_sql() as statements:
            data = await gql.ok(PAGE, {"n": size}, as_=admin)
        nodes = [edge["node"] for edge in data["contacts"]["edges"]]
        assert len(nodes) == size
        assert {n["owner"]["name"] for n in nodes} == owner_names
        assert {n["company"]["name"] for n in nodes} == company_names
        assert all(n["email"].startswith("bulk") for n in nodes)
        assert {n["status"] for n in nodes} == {"ACTIVE", "INACTIVE", None}
        counts[size] = len(statements)
        assert lookup < len(statements) <= 4, statements
    assert counts[10] == counts[100], counts


# --- (4) errors never leak -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ me { shoeSize } }", None),
        ("{ nothing }", None),
        ("{ me { name ", None),
        ("query {", None),
        ("}}}", None),
        ('mutation { login(email: "a", password: ) { token } }', None),
        ("{ contacts(limit: 5) { totalCount } }", None),
        ('{ contacts(first: "ten") { totalCount } }', None),
        ("{ contacts(first: 9999999999999) { totalCount } }", None),
        ("{ contact { id } }", None),
        ("{ me }", None),
        ("{ me { name } } { me { name } }", None),
        ("query($x: Int) { contacts(first: $y) { totalCount } }", None),
        ("query($id: ID!) { contact(id: $id) { id } }", None),
        ("query($id: ID!) { contact(id: $id) { id } }", {"id": None}),
        ("query($n: Int) { contacts(first: $n) { totalCount } }", {"n": "ten"}),
        ("{ me { ...Missing } }", None),
        ("fragment F on User { ...F } { me { ...F } }", None),
        ("subscription { me { id } }", None),
        ("{ me { name @skip } }", None),
        ("{ me { name @nope } }", None),
        ("{ contacts(filter: {status: [DORMANT]}) { totalCount } }", None),
        ('{ contact(id: "\\ud800") { id } }', None),
    ],
)
async def test_malformed_documents_are_bad_user_input(gql, world, query, variables):
    """R20: unknown fields, syntax errors and other document mistakes are BAD_USER_INPUT,
    with a code on every error and nothing internal in any message."""
    body = await gql(query, variables, as_=world.admin)
    errors = body.get("errors") or []
    assert errors, body
    assert_clean(body)
    assert {e["extensions"]["code"] for e in errors} == {BAD}, body
    assert not body.get("data"), body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "bad-token", "wrong-scheme"],
)
async def test_unauthenticated_errors_carry_a_code(client, headers):
    """R20: a caller without a valid token gets UNAUTHENTICATED, nothing else."""
    response = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
    body = response.json()
    assert_clean(body)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], body


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"query": 5}', b'{"query": "{ me { id } }", "variables": "x"}', b"[]"],
    ids=["not-json", "query-not-string", "variables-not-object", "json-array"],
)
async def test_malformed_requests_never_leak(client, world, content):
    """R20: a request that is not GraphQL over JSON at all is refused with 400 and no internals."""
    from api.users import auth

    response = await client.post(
        "/graphql",
        content=content,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {auth.issue_token(world.admin)}",
        },
    )
    assert response.status_code == 400, response.text
    assert not LEAKS.search(response.text), response.text


# --- (5) `first` bounds ----------------------------------------------------------------------

CONTACTS_FIRST = (
    "query($n: Int) { contacts(first: $n) { edges { node { id } } pageInfo { hasNextPage } } }"
)
ACTIVITIES_FIRST = (
    "query($id: ID!, $n: Int) { contact(id: $id) "
    "{ activities(first: $n) { edges { node { id } } pageInfo { hasNextPage } } } }"
)


@pytest.fixture
async def busy_contact(world: Any) -> Any:
    from api.contacts.models import ActivityKind
    from api.contacts.service import log_activity

    contact = await world.contact(owner=world.agent)
    await world.contact(owner=world.agent)
    for kind in (ActivityKind.CALL, ActivityKind.TASK):
        await log_activity(world.admin, contact.id, kind)
    return contact


@pytest.mark.parametrize("n", [0, -1, 101, 1000])
async def test_contacts_first_out_of_range(gql, world, busy_contact, n):
    """`first` is 1..100 on contacts: anything else is BAD_USER_INPUT on `first`."""
    refused(await gql(CONTACTS_FIRST, {"n": n}, as_=world.admin), "first")
    inline = CONTACTS_FIRST.replace("query($n: Int) ", "").replace("$n", str(n))
    refused(await gql(inline, as_=world.admin), "first")


@pytest.mark.parametrize("n", [0, -1, 101, 1000])
async def test_activities_first_out_of_range(gql, world, busy_contact, n):
    """`first` is 1..100 on a contact's activities too."""
    variables = {"id": ids.encode("Contact", busy_contact.id), "n": n}
    body = await gql(ACTIVITIES_FIRST, variables, as_=world.admin)
    assert_clean(body)
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    assert errors[0]["extensions"] == {"code": BAD, "field": "first"}, body
    assert errors[0]["path"] == ["contact", "activities"], body


@pytest.mark.parametrize(("n", "rows", "more"), [(1, 1, True), (100, 2, False)])
async def test_first_at_the_bounds_is_answered(gql, world, busy_contact, n, rows, more):
    """1 and 100 are valid page sizes for contacts and activities."""
    contacts = (await gql.ok(CONTACTS_FIRST, {"n": n}, as_=world.admin))["contacts"]
    assert (len(contacts["edges"]), contacts["pageInfo"]["hasNextPage"]) == (rows, more)
    variables = {"id": ids.encode("Contact", busy_contact.id), "n": n}
    activities = (await gql.ok(ACTIVITIES_FIRST, variables, as_=world.admin))["contact"][
        "activities"
    ]
    assert (len(activities["edges"]), activities["pageInfo"]["hasNextPage"]) == (rows, more)
