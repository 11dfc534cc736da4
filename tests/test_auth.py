"""R20: logging in, bearer tokens and login throttling, as a client sees them over HTTP.

Throttling counts failures in Redis when REDIS_URL is set and in memory otherwise; every
test uses fresh accounts and fresh client addresses, so runs never share a counter.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

import api.users.auth as auth
from api.core import ids
from api.core.ratelimit import failure_counter
from api.core.settings import get_settings
from tests.conftest import PASSWORD, Gql, error_codes, make_user, the_error, unique_email

LOGIN = """mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) { token user { id email name role } } }"""
ME = "{ me { id email } }"


def fresh_address() -> str:
    """A client address no other test or earlier run has used (a random IPv6 one)."""
    groups = ":".join(secrets.token_hex(2) for _ in range(4))
    return f"fd00:{groups}::1"


@pytest.fixture
async def gql_from(app: Any) -> AsyncIterator[Callable[[str], Gql]]:
    """Gql clients calling from a chosen client address."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str) -> Gql:
        transport = httpx.ASGITransport(app=app, client=(address, 4321))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return Gql(client)

    yield make
    for client in clients:
        await client.aclose()


async def login(gql: Gql, email: str, password: str) -> dict[str, Any]:
    return await gql(LOGIN, {"email": email, "password": password})


def login_error(body: dict[str, Any]) -> dict[str, Any]:
    error = the_error(body)
    assert error["path"] == ["login"]
    assert body["data"] is None
    return error


def claims_for(user: Any, **changes: Any) -> dict[str, Any]:
    """The claims api/users/auth.py issues, with `changes` applied."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "off": str(user.office_id),
        "ver": user.token_version,
        "aud": "crm-api",
        "iat": now,
        "exp": now + timedelta(minutes=30),
    }
    claims.update(changes)
    return claims


def sign(claims: dict[str, Any], key: str | None = None) -> str:
    return jwt.encode(claims, key or get_settings().secret_key, algorithm="HS256")


# ---------------------------------------------------------------------------------------------
# Login


async def test_login_returns_a_working_bearer_token_and_the_user(world, gql_from):
    """R20: login answers a token and its user; the token works as a Bearer token."""
    gql = gql_from(fresh_address())
    data = await gql.ok(LOGIN, {"email": world.agent.email, "password": PASSWORD})
    payload = data["login"]
    assert payload["user"] == {
        "id": ids.encode("User", world.agent.id),
        "email": world.agent.email,
        "name": world.agent.name,
        "role": "AGENT",
    }
    me = await gql(ME, token=payload["token"])
    assert not me.get("errors"), me["errors"]
    assert me["data"]["me"] == {"id": payload["user"]["id"], "email": world.agent.email}


async def test_login_email_is_case_and_space_insensitive(world, gql_from):
    """R20: an email typed with capitals and spaces still logs in."""
    gql = gql_from(fresh_address())
    typed = f"  {world.agent.email.upper()} "
    data = await gql.ok(LOGIN, {"email": typed, "password": PASSWORD})
    assert data["login"]["user"]["id"] == ids.encode("User", world.agent.id)


async def test_wrong_password_and_unknown_email_answer_alike(world, gql_from):
    """R20: a wrong password and an unknown email are both UNAUTHENTICATED, with the same
    message, so logins cannot probe which emails have accounts."""
    gql = gql_from(fresh_address())
    user = await make_user(world.office, email=unique_email("known"))
    wrong_password = login_error(await login(gql, user.email, PASSWORD + "-wrong"))
    unknown_email = login_error(await login(gql, unique_email("nobody"), PASSWORD))
    assert wrong_password["extensions"]["code"] == "UNAUTHENTICATED"
    assert wrong_password == unknown_email


MALFORMED_CREDENTIALS = {
    # name: (email, password), `{u}` made unique per run so no counter is shared
    "empty-email": ("", PASSWORD),
    "empty-password": ("someone-{u}@office.example", ""),
    "not-an-email": ("not-an-email-{u}", PASSWORD),
    "overlong-email": ("x" * 400 + "{u}@office.example", PASSWORD),
    "huge-password": ("someone-{u}@office.example", "p" * 100_000),
    "nul-in-email": ("some\u0000one-{u}@office.example", PASSWORD),
    "nul-in-password": ("someone-{u}@office.example", "pass\u0000word"),
}


@pytest.mark.parametrize("case", list(MALFORMED_CREDENTIALS))
async def test_malformed_credentials_are_unauthenticated(gql_from, case):
    """R20: malformed credentials answer UNAUTHENTICATED, never an internal error."""
    email, password = MALFORMED_CREDENTIALS[case]
    email = email.format(u=uuid.uuid4().hex)
    if not email:
        # The one account key every run shares: start it from zero.
        await failure_counter().reset(auth._account_key(email))
    gql = gql_from(fresh_address())
    error = login_error(await login(gql, email, password))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------------------------------------
# Deactivation


async def test_deactivated_user_is_locked_out_at_once(world, gql_from):
    """R20 (with R4): deactivating a user makes their existing token UNAUTHENTICATED at once,
    and they cannot log in again; the answer is the one a wrong password gets."""
    gql = gql_from(fresh_address())
    user = await make_user(world.office, email=unique_email("leaver"))
    token = (await gql.ok(LOGIN, {"email": user.email, "password": PASSWORD}))["login"]["token"]
    assert not (await gql(ME, token=token)).get("errors")

    await gql.ok(
        "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id active } }",
        {"id": ids.encode("User", user.id)},
        as_=world.admin,
    )

    body = await gql(ME, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    refused = login_error(await login(gql, user.email, PASSWORD))
    assert refused["extensions"]["code"] == "UNAUTHENTICATED"
    wrong_password = login_error(await login(gql, world.agent.email, PASSWORD + "-wrong"))
    assert refused["message"] == wrong_password["message"]


# ---------------------------------------------------------------------------------------------
# Tokens


async def test_hand_built_token_with_the_right_claims_works(world, gql):
    """Control for the token tests below: the claims they forge are the ones the API issues."""
    body = await gql(ME, token=sign(claims_for(world.agent)))
    assert not body.get("errors"), body["errors"]
    assert body["data"]["me"]["id"] == ids.encode("User", world.agent.id)


async def test_expired_token_is_unauthenticated(world, gql):
    """R20: a token past its `exp` is refused."""
    past = datetime.now(UTC) - timedelta(hours=1)
    token = sign(claims_for(world.agent, iat=past - timedelta(hours=1), exp=past))
    body = await gql(ME, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


@pytest.mark.parametrize(
    "forge",
    [
        "other-key",
        "wrong-audience",
        "no-exp",
        "other-office",
        "unknown-user",
        "alg-none",
    ],
)
async def test_forged_tokens_are_unauthenticated(world, gql, forge):
    """R20: a token signed with another key, for another audience, without expiry, naming
    a user in an office that is not theirs, naming nobody, or unsigned is refused."""
    if forge == "other-key":
        token = sign(claims_for(world.agent), key=secrets.token_urlsafe(32))
    elif forge == "wrong-audience":
        token = sign(claims_for(world.agent, aud="another-api"))
    elif forge == "no-exp":
        claims = claims_for(world.agent)
        del claims["exp"]
        token = sign(claims)
    elif forge == "other-office":
        token = sign(claims_for(world.agent, off=str(world.foreign_office.id)))
    elif forge == "unknown-user":
        token = sign(claims_for(world.agent, sub=str(world.agent.id + 10**9)))
    else:
        token = jwt.encode(claims_for(world.agent), key="", algorithm="none")
    body = await gql(ME, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Token {token}",
        "Basic dXNlcjpwYXNzd29yZA==",
        "{token}",
        "Bearer {token}x",
    ],
    ids=[
        "bearer-without-token",
        "bearer-blank",
        "not-a-jwt",
        "three-garbage-parts",
        "wrong-scheme",
        "basic-auth",
        "token-without-scheme",
        "tampered-token",
    ],
)
async def test_malformed_authorization_header_is_unauthenticated(world, client, header):
    """R20: an Authorization header that is not `Bearer <valid token>` is UNAUTHENTICATED
    with a message, not treated as an anonymous call."""
    value = header.format(token=sign(claims_for(world.agent)))
    response = await client.post("/graphql", json={"query": ME}, headers={"Authorization": value})
    assert response.status_code in (200, 400)
    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


async def test_bearer_scheme_is_case_insensitive(world, client):
    """RFC 6750 schemes are case-insensitive: `bearer <token>` works."""
    response = await client.post(
        "/graphql",
        json={"query": ME},
        headers={"Authorization": f"bearer {sign(claims_for(world.agent))}"},
    )
    body = response.json()
    assert not body.get("errors"), body["errors"]
    assert body["data"]["me"]["id"] == ids.encode("User", world.agent.id)


# ---------------------------------------------------------------------------------------------
# Throttling


async def test_repeated_failures_lock_the_account(world, gql_from):
    """R20: after LOGIN_MAX_FAILURES_PER_ACCOUNT failures one account answers RATE_LIMITED,
    even to the right password and from another address; another account still logs in,
    from that address and from another."""
    settings = get_settings()
    locked = await make_user(world.office, email=unique_email("locked"))
    bystander = await make_user(world.office, email=unique_email("bystander"))
    attacker = gql_from(fresh_address())

    for _ in range(settings.login_max_failures_per_account):
        error = login_error(await login(attacker, locked.email, PASSWORD + "-guess"))
        assert error["extensions"]["code"] == "UNAUTHENTICATED"

    limited = login_error(await login(attacker, locked.email, PASSWORD))
    assert limited["extensions"]["code"] == "RATE_LIMITED"
    elsewhere = gql_from(fresh_address())
    limited = login_error(await login(elsewhere, locked.email, PASSWORD))
    assert limited["extensions"]["code"] == "RATE_LIMITED"

    data = await elsewhere.ok(LOGIN, {"email": bystander.email, "password": PASSWORD})
    assert data["login"]["user"]["id"] == ids.encode("User", bystander.id)
    data = await attacker.ok(LOGIN, {"email": world.agent.email, "password": PASSWORD})
    assert data["login"]["user"]["id"] == ids.encode("User", world.agent.id)


async def test_failures_below_the_account_limit_do_not_lock(world, gql_from):
    """R20: fewer failures than the limit leave the right password working."""
    settings = get_settings()
    user = await make_user(world.office, email=unique_email("typo"))
    gql = gql_from(fresh_address())
    for _ in range(settings.login_max_failures_per_account - 1):
        login_error(await login(gql, user.email, PASSWORD + "-typo"))
    data = await gql.ok(LOGIN, {"email": user.email, "password": PASSWORD})
    assert data["login"]["user"]["id"] == ids.encode("User", user.id)


async def test_repeated_failures_from_one_address_lock_that_address(world, gql_from):
    """R20: LOGIN_MAX_FAILURES_PER_ADDRESS failures from one address, spread over many
    accounts (none reaching its own limit), make that address RATE_LIMITED for every
    account; the same account still logs in from another address."""
    settings = get_settings()
    per_address = settings.login_max_failures_per_address
    per_account = settings.login_max_failures_per_account
    assert per_address > 1
    spray = gql_from(fresh_address())
    # Mostly real accounts, a few unknown emails (they count too); one failure each, so no
    # account reaches its own limit.
    unknown = [unique_email("unknown") for _ in range(min(3, per_address - 1))]
    real = [
        await make_user(world.office, email=unique_email("sprayed"))
        for _ in range(per_address - len(unknown))
    ]
    targets = [user.email for user in real] + unknown
    assert len(set(targets)) == per_address
    assert per_account > 1

    for email in targets:
        error = login_error(await login(spray, email, PASSWORD + "-spray"))
        assert error["extensions"]["code"] == "UNAUTHENTICATED"

    untouched = await make_user(world.office, email=unique_email("untouched"))
    for email in (untouched.email, real[0].email):
        limited = login_error(await login(spray, email, PASSWORD))
        assert limited["extensions"]["code"] == "RATE_LIMITED"

    elsewhere = gql_from(fresh_address())
    for user in (untouched, real[0]):
        data = await elsewhere.ok(LOGIN, {"email": user.email, "password": PASSWORD})
        assert data["login"]["user"]["id"] == ids.encode("User", user.id)
