"""What SPA and mobile clients lean on, over HTTP as they send it: automatic persisted
queries (Apollo's protocol, by POST and by GET), the CORS allow-list, gzip above a size,
and Cache-Control: no-store on every answer to an authenticated request."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.core import ids
from api.core.persisted_queries import LocalDocuments
from api.core.settings import get_settings
from api.transfers import exporter
from api.users.auth import issue_token
from tests.conftest import assert_clean, error_codes, the_error

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
SPA = "https://app.office.example"


def bearer(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user)}"}


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def hashed(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


def me_query() -> str:
    """A document no earlier test has stored: its operation name is new."""
    return f"query Me{uuid.uuid4().hex[:12]} {{ me {{ email }} }}"


async def post(client: httpx.AsyncClient, payload: dict[str, Any], user: Any) -> httpx.Response:
    return await client.post("/graphql", json=payload, headers=bearer(user))


async def get(
    client: httpx.AsyncClient, params: dict[str, Any], user: Any, **headers: str
) -> httpx.Response:
    """A GET as Apollo's `useGETForHashedQueries` sends it: JSON in the query string."""
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    return await client.get("/graphql", params=query, headers={**bearer(user), **headers})


# --- automatic persisted queries ----------------------------------------------------------


async def test_unknown_hash_is_not_found_then_registered_and_run_by_hash(client, world):
    """A hash alone that was never sent: PERSISTED_QUERY_NOT_FOUND with HTTP 200 and the
    message Apollo's clients look for. The client then sends the document with its hash,
    which runs and is stored; the hash alone runs it from then on, by POST and by GET."""
    document = me_query()
    expected = {"data": {"me": {"email": world.agent.email}}}

    miss = await post(client, {"extensions": hashed(document)}, world.agent)
    assert miss.status_code == 200
    body = miss.json()
    assert error_codes(body) == [NOT_FOUND]
    assert the_error(body)["message"] == "PersistedQueryNotFound"
    assert not body.get("data")
    assert "no-store" in miss.headers["cache-control"]

    registered = await post(
        client, {"query": document, "extensions": hashed(document)}, world.agent
    )
    assert registered.json() == expected

    by_post = await post(client, {"extensions": hashed(document)}, world.agent)
    assert by_post.json() == expected
    by_get = await get(client, {"extensions": hashed(document)}, world.agent)
    assert by_get.status_code == 200
    assert by_get.headers["content-type"].startswith("application/json")
    assert by_get.json() == expected
    # The same stored document answers each caller with their own data.
    other = await get(client, {"extensions": hashed(document)}, world.admin)
    assert other.json() == {"data": {"me": {"email": world.admin.email}}}


async def test_a_hashed_get_carries_variables_and_an_operation_name(client, world):
    contact = await world.contact(owner=world.agent, first_name="Hashed")
    document = (
        f"query Contact{uuid.uuid4().hex[:12]}($id: ID!) {{ contact(id: $id) {{ firstName }} }}"
    )
    variables = {"id": ids.encode("Contact", contact.id)}
    first = await post(
        client,
        {"query": document, "variables": variables, "extensions": hashed(document)},
        world.agent,
    )
    assert first.json() == {"data": {"contact": {"firstName": "Hashed"}}}
    name = document.split()[1].split("(")[0]
    answer = await get(
        client,
        {"extensions": hashed(document), "variables": variables, "operationName": name},
        world.agent,
    )
    assert answer.json() == {"data": {"contact": {"firstName": "Hashed"}}}


async def test_a_hash_that_is_not_the_documents_is_bad_input_and_stores_nothing(client, world):
    document = me_query()
    claimed = sha256(me_query())
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": claimed}}
    body = (await post(client, {"query": document, "extensions": extensions}, world.agent)).json()
    assert_clean(body)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert not body.get("data")
    for digest in (claimed, sha256(document)):
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        again = (await post(client, {"extensions": extensions}, world.agent)).json()
        assert error_codes(again) == [NOT_FOUND]


async def test_a_document_that_does_not_validate_is_not_stored(client, world):
    """Only documents that parse and validate are kept: a client sending junk with its hash
    gets the validation error, and the hash stays unknown."""
    for document in (
        f"query Broken{uuid.uuid4().hex[:8]} {{ me {{ email ",
        f"query Wrong{uuid.uuid4().hex[:8]} {{ me {{ noSuchField }} }}",
    ):
        body = (
            await post(client, {"query": document, "extensions": hashed(document)}, world.agent)
        ).json()
        assert_clean(body)
        assert error_codes(body) == ["BAD_USER_INPUT"]
        again = (await post(client, {"extensions": hashed(document)}, world.agent)).json()
        assert error_codes(again) == [NOT_FOUND]


@pytest.mark.parametrize(
    "persisted",
    [
        {"version": 2, "sha256Hash": "0" * 64},
        {"sha256Hash": "0" * 64},
        {"version": 1, "sha256Hash": "not-a-hash"},
        {"version": 1},
        "0" * 64,
    ],
    ids=["version-2", "no-version", "not-hex", "no-hash", "not-an-object"],
)
async def test_a_malformed_persisted_query_is_bad_input(client, world, persisted):
    body = (await post(client, {"extensions": {"persistedQuery": persisted}}, world.agent)).json()
    assert_clean(body)
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_an_absurdly_long_document_is_refused_unhashed_and_unstored(client, world):
    """A document past 64 KiB is BAD_USER_INPUT before it is hashed, parsed or stored; a
    long but reasonable one runs."""
    padding = "#" + "x" * (64 * 1024) + "\n"
    huge = padding + me_query()
    for payload in ({"query": huge}, {"query": huge, "extensions": hashed(huge)}):
        body = (await post(client, payload, world.agent)).json()
        assert_clean(body)
        assert error_codes(body) == ["BAD_USER_INPUT"]
    again = (await post(client, {"extensions": hashed(huge)}, world.agent)).json()
    assert error_codes(again) == [NOT_FOUND]
    reasonable = "#" + "x" * 30_000 + "\n" + me_query()
    ok = (await post(client, {"query": reasonable}, world.agent)).json()
    assert ok == {"data": {"me": {"email": world.agent.email}}}


async def test_a_stored_mutation_is_refused_by_get_and_never_runs(client, world):
    """Caches, prefetchers and crawlers replay GETs: a mutation stored by POST still runs
    by POST with its hash, and by GET answers 405 without running."""
    name = uuid.uuid4().hex[:12]
    document = (
        f"mutation Add{name}($last: String!) "
        '{ createContact(input: {firstName: "Get", lastName: $last}) { lastName } }'
    )
    count = f'{{ contacts(filter: {{search: "{name}"}}) {{ edges {{ node {{ id }} }} }} }}'

    async def contacts_named() -> int:
        body = (await post(client, {"query": count}, world.admin)).json()
        return len(body["data"]["contacts"]["edges"])

    payload = {"query": document, "variables": {"last": name}, "extensions": hashed(document)}
    created = (await post(client, payload, world.admin)).json()
    assert created == {"data": {"createContact": {"lastName": name}}}
    assert await contacts_named() == 1

    refused = await get(
        client, {"extensions": hashed(document), "variables": {"last": name}}, world.admin
    )
    assert refused.status_code == 405
    assert "no-store" in refused.headers["cache-control"]
    assert await contacts_named() == 1

    by_hash = await post(
        client, {"extensions": hashed(document), "variables": {"last": name}}, world.admin
    )
    assert by_hash.json() == {"data": {"createContact": {"lastName": name}}}
    assert await contacts_named() == 2


async def test_get_runs_stored_queries_only(client, world):
    """A document in the URL stays refused, hashed or not (GET takes stored queries only);
    GraphiQL still opens for a browser, and a hashed GET gets JSON whatever it accepts."""
    document = me_query()
    for params in ({"query": document}, {"query": document, "extensions": hashed(document)}):
        answer = await get(client, params, world.agent)
        assert answer.status_code == 400
        assert "no-store" in answer.headers["cache-control"]
    assert error_codes((await post(client, {"extensions": hashed(document)}, world.agent)).json())

    ide = await client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200
    assert ide.headers["content-type"].startswith("text/html")
    miss = await get(client, {"extensions": hashed(document)}, world.agent, Accept="*/*")
    assert miss.headers["content-type"].startswith("application/json")
    assert error_codes(miss.json()) == [NOT_FOUND]


def test_the_local_store_is_bounded_in_documents_and_characters():
    """The in-process store evicts the least recently used documents past either bound."""
    store = LocalDocuments(max_documents=3, max_chars=100)
    for key in "abc":
        store.put(key, key * 10)
    assert store.get("a") == "a" * 10  # a is now the most recently used
    store.put("d", "d" * 10)
    assert store.get("b") is None
    assert [store.get(k) is not None for k in "acd"] == [True, True, True]
    store.put("e", "e" * 90)  # 120 characters: the oldest go until 100 are left
    assert [store.get(k) is not None for k in "acde"] == [False, False, True, True]


# --- CORS ----------------------------------------------------------------------------------


@pytest.fixture
async def spa_client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app as started with CORS_ORIGINS naming the SPA's origin."""
    from api.app import create_app

    monkeypatch.setenv("CORS_ORIGINS", f"{SPA}, http://localhost:5173")
    get_settings.cache_clear()
    try:
        app = create_app(embedded_workers=False)
    finally:
        monkeypatch.delenv("CORS_ORIGINS")
        get_settings.cache_clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_preflight_from_an_allowed_origin_is_answered(spa_client):
    answer = await spa_client.options("/graphql", headers=preflight(SPA))
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SPA
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed
    assert {"GET", "POST"} <= set(answer.headers["access-control-allow-methods"].split(", "))
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in answer.headers


async def test_preflight_from_another_origin_gets_no_cors_headers(spa_client):
    for origin in ("https://evil.example", "https://app.office.example.evil.example", "null"):
        answer = await spa_client.options("/graphql", headers=preflight(origin))
        assert answer.status_code == 400
        assert "access-control-allow-origin" not in answer.headers


async def test_requests_from_origins_carry_cors_headers_only_when_allowed(spa_client, world):
    payload = {"query": "{ me { email } }"}
    allowed = await spa_client.post(
        "/graphql", json=payload, headers={**bearer(world.agent), "Origin": SPA}
    )
    assert allowed.json() == {"data": {"me": {"email": world.agent.email}}}
    assert allowed.headers["access-control-allow-origin"] == SPA
    assert "origin" in allowed.headers["vary"].lower()
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    other = await spa_client.post(
        "/graphql", json=payload, headers={**bearer(world.agent), "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_without_cors_origins_no_origin_is_allowed(client):
    """The default (CORS_ORIGINS empty): same origin only, no CORS headers at all."""
    assert get_settings().cors_origins == ()
    answer = await client.options("/graphql", headers=preflight(SPA))
    assert "access-control-allow-origin" not in answer.headers


# --- gzip ----------------------------------------------------------------------------------

INTROSPECTION = "{ __schema { types { name description fields { name description } } } }"


@pytest.fixture
def introspection_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The large answer here is the schema, by introspection: off by default with PostgreSQL."""
    monkeypatch.setattr(get_settings(), "graphql_introspection_value", True)


@pytest.mark.usefixtures("introspection_on")
async def test_a_large_response_is_gzipped_when_accepted_and_a_small_one_is_not(client, world):
    threshold = get_settings().gzip_min_bytes
    large = await client.post(
        "/graphql",
        json={"query": INTROSPECTION},
        headers={**bearer(world.agent), "Accept-Encoding": "gzip"},
    )
    assert large.headers["content-encoding"] == "gzip"
    assert len(large.content) > threshold  # decoded by the client
    assert int(large.headers["content-length"]) < len(large.content)
    assert "accept-encoding" in large.headers["vary"].lower()
    assert large.json()["data"]["__schema"]["types"]

    small = await client.post(
        "/graphql",
        json={"query": "{ me { email } }"},
        headers={**bearer(world.agent), "Accept-Encoding": "gzip"},
    )
    assert "content-encoding" not in small.headers
    assert len(small.content) < threshold

    identity = await client.post(
        "/graphql",
        json={"query": INTROSPECTION},
        headers={**bearer(world.agent), "Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in identity.headers
    assert identity.json() == large.json()


@pytest.mark.usefixtures("introspection_on")
async def test_gzip_bytes_on_the_wire_are_a_valid_gzip_stream(app, world):
    """What a browser inflates: the raw body is gzip, and inflates to the JSON answer."""
    transport = httpx.ASGITransport(app=app)
    request = httpx.Request(
        "POST",
        "http://testserver/graphql",
        json={"query": INTROSPECTION},
        headers={**bearer(world.agent), "Accept-Encoding": "gzip"},
    )
    raw = await transport.handle_async_request(request)
    body = b"".join([chunk async for chunk in raw.stream])
    assert raw.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["data"]["__schema"]["types"]


@pytest.fixture
def export_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports are carried out here with the service's `execute_export`, not by a worker."""
    from workers.exports import export_contacts

    monkeypatch.setattr(export_contacts, "send", lambda job_id: None)


async def test_export_download_stays_uncompressed_with_its_length(
    client, gql, world, export_queued
):
    """The CSV download is not gzipped: it keeps its Content-Length (download progress)
    and Range resumes, and it is never stored by a cache."""
    for _ in range(12):
        await world.contact(owner=world.agent, company_name="Compressible Lettings Ltd")
    job = (await gql.ok("mutation { exportContacts { id } }", as_=world.admin))["exportContacts"]
    await exporter.execute_export(ids.decode("ExportJob", job["id"]))
    shown = await gql.ok(
        "query($id: ID!) { exportJob(id: $id) { downloadUrl } }", {"id": job["id"]}, as_=world.admin
    )
    url = shown["exportJob"]["downloadUrl"]
    answer = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert len(answer.content) > get_settings().gzip_min_bytes
    assert "content-encoding" not in answer.headers
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.text.count("Compressible Lettings Ltd") == 12
    assert "no-store" in answer.headers["cache-control"]

    tail = await client.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=10-"})
    assert tail.status_code == 206
    assert tail.content == answer.content[10:]


async def test_the_tracking_pixel_is_still_a_plain_gif(client, world):
    from api.campaigns import links
    from tests.test_tracking import PIXEL_GIF, path, send_campaign

    contact = await world.contact(owner=world.agent)
    [delivery] = await send_campaign(world, [contact])
    pixel = await client.get(path(links.OPEN, delivery), headers={"Accept-Encoding": "gzip"})
    assert pixel.status_code == 200
    assert pixel.headers["content-type"] == "image/gif"
    assert "content-encoding" not in pixel.headers
    assert pixel.content.startswith(PIXEL_GIF)


# --- Cache-Control -------------------------------------------------------------------------


async def test_every_authenticated_answer_is_no_store(client, world):
    """Results, GraphQL errors, refusals before GraphQL runs (bad JSON, an unsupported body,
    a document by GET), multipart requests and persisted-query GETs alike."""
    auth = bearer(world.agent)
    document = me_query()
    answers = {
        "result": await client.post("/graphql", json={"query": "{ me { email } }"}, headers=auth),
        "graphql-error": await client.post(
            "/graphql", json={"query": '{ contact(id: "nope") { id } }'}, headers=auth
        ),
        "invalid-token": await client.post(
            "/graphql", json={"query": "{ me { email } }"}, headers={"Authorization": "Bearer x"}
        ),
        "bad-json": await client.post(
            "/graphql", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        ),
        "bad-content-type": await client.post(
            "/graphql", content=b"{ me { email } }", headers={**auth, "Content-Type": "text/plain"}
        ),
        "multipart": await client.post(
            "/graphql",
            data={"operations": json.dumps({"query": "{ me { email } }"}), "map": "{}"},
            files={"unused": ("a.csv", b"x", "text/csv")},
            headers=auth,
        ),
        "multipart-missing-file": await client.post(
            "/graphql",
            data={
                "operations": json.dumps({"query": "{ me { email } }", "variables": {"f": None}}),
                "map": json.dumps({"0": ["variables.f"]}),
            },
            files={"other": ("a.csv", b"x", "text/csv")},
            headers=auth,
        ),
        "get-document": await client.get(
            "/graphql", params={"query": "{ me { email } }"}, headers=auth
        ),
        "get-miss": await get(client, {"extensions": hashed(document)}, world.agent),
    }
    await post(client, {"query": document, "extensions": hashed(document)}, world.agent)
    answers["get-hit"] = await get(client, {"extensions": hashed(document)}, world.agent)
    assert answers["get-hit"].json() == {"data": {"me": {"email": world.agent.email}}}
    assert answers["multipart"].json() == {"data": {"me": {"email": world.agent.email}}}
    assert {answers[k].status_code for k in ("bad-json", "bad-content-type", "get-document")} == {
        400
    }
    for name, answer in answers.items():
        assert answer.headers.get("cache-control") == "no-store", (name, answer.headers)


async def test_a_login_answer_is_no_store_and_anonymous_gets_are_left_alone(client, world):
    """A login answers a token to a request without credentials: any answer to a POST is
    no-store. Anonymous GETs (health, GraphiQL) keep their own caching."""
    from tests.conftest import PASSWORD

    login = await client.post(
        "/graphql",
        json={
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": {"e": world.agent.email, "p": PASSWORD},
        },
    )
    assert login.json()["data"]["login"]["token"]
    assert login.headers["cache-control"] == "no-store"
    health = await client.get("/healthz")
    assert "no-store" not in health.headers.get("cache-control", "")
