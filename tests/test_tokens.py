"""Tokens and passwords: logout and a password change revoke every token issued before at
once, admins reset other users' passwords, the password policy refuses common and
guessable passwords, and SECRET_KEY must be strong in production (PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from api.core.settings import MIN_SECRET_LENGTH, require_strong_secret
from api.users import auth
from api.users.passwords import common_passwords
from tests.conftest import PASSWORD, error_codes, the_error, unique_email

ME = "{ me { email } }"
LOGIN = """
mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }"""
CHANGE = """
mutation($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new) { token user { email } }
}"""


async def login(gql: Any, email: str, password: str = PASSWORD) -> str:
    return (await gql.ok(LOGIN, {"email": email, "password": password}))["login"]["token"]


async def test_logout_revokes_every_token_of_the_user_at_once(gql: Any, world: Any) -> None:
    first = await login(gql, world.agent.email)
    second = await login(gql, world.agent.email)
    other = await login(gql, world.other_agent.email)
    assert (await gql("mutation { logout }", token=first))["data"] == {"logout": True}
    for token in (first, second):
        assert error_codes(await gql(ME, token=token)) == ["UNAUTHENTICATED"]
    assert not (await gql(ME, token=other)).get("errors")  # others are untouched
    assert not (await gql(ME, token=await login(gql, world.agent.email))).get("errors")


async def test_a_password_change_revokes_old_tokens_and_returns_a_fresh_one(
    gql: Any, world: Any
) -> None:
    old = await login(gql, world.agent.email)
    new_password = "a-much-better-passphrase"
    body = await gql(CHANGE, {"current": PASSWORD, "new": new_password}, token=old)
    assert not body.get("errors"), body
    fresh = body["data"]["changePassword"]["token"]
    assert error_codes(await gql(ME, token=old)) == ["UNAUTHENTICATED"]
    assert not (await gql(ME, token=fresh)).get("errors")
    assert error_codes(await gql(LOGIN, {"email": world.agent.email, "password": PASSWORD})) == [
        "UNAUTHENTICATED"
    ]
    assert await login(gql, world.agent.email, new_password)


async def test_a_wrong_current_password_changes_nothing(gql: Any, world: Any) -> None:
    token = await login(gql, world.agent.email)
    body = await gql(
        CHANGE, {"current": "not-my-password", "new": "another-passphrase"}, token=token
    )
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": "currentPassword"}
    assert not (await gql(ME, token=token)).get("errors")
    assert await login(gql, world.agent.email)


async def test_admins_reset_other_users_passwords_but_not_their_own_this_way(
    gql: Any, world: Any
) -> None:
    from api.core import ids

    token = await login(gql, world.agent.email)
    update = "mutation($id: ID!, $p: String!) { updateUser(id: $id, input: {password: $p}) { id } }"
    agent_id = ids.encode("User", world.agent.id)
    await gql.ok(update, {"id": agent_id, "p": "reset-by-the-admin-1"}, as_=world.admin)
    assert error_codes(await gql(ME, token=token)) == ["UNAUTHENTICATED"]
    assert await login(gql, world.agent.email, "reset-by-the-admin-1")
    admin_id = ids.encode("User", world.admin.id)
    body = await gql(update, {"id": admin_id, "p": "my-own-new-password"}, as_=world.admin)
    assert error_codes(body) == ["FORBIDDEN"]
    body = await gql(update, {"id": agent_id, "p": "agents-cannot-do-this"}, as_=world.other_agent)
    assert error_codes(body) == ["FORBIDDEN"]


@pytest.mark.parametrize(
    "password",
    ["short", "qwertyuiop", "1234567890", "Password2024!", "!!sunshine99", "Iloveyou12345"],
)
async def test_common_and_guessable_passwords_are_refused(
    gql: Any, world: Any, password: str
) -> None:
    create = """
    mutation($input: UserInput!) { createUser(input: $input) { id } }"""
    body = await gql(
        create,
        {"input": {"email": unique_email("p"), "name": "P", "password": password, "role": "AGENT"}},
        as_=world.admin,
    )
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": "password"}


async def test_a_password_containing_the_email_is_refused(gql: Any, world: Any) -> None:
    token = await login(gql, world.agent.email)
    local = world.agent.email.split("@")[0]
    body = await gql(CHANGE, {"current": PASSWORD, "new": f"{local}-2026-x"}, token=token)
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": "newPassword"}


def test_the_common_password_list_ships_with_the_code() -> None:
    common = common_passwords()
    assert len(common) == 10_000 and "password" in common and "qwertyuiop" in common


async def test_tokens_expire(world: Any) -> None:
    from datetime import UTC, datetime, timedelta

    import jwt

    from api.core.errors import Unauthenticated
    from api.core.settings import get_settings

    claims = {
        "sub": str(world.agent.id),
        "off": str(world.agent.office_id),
        "ver": 0,
        "aud": "crm-api",
        "exp": datetime.now(UTC) - timedelta(seconds=1),
    }
    token = jwt.encode(claims, get_settings().secret_key, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="expired"):
        await auth.user_for_token(token)


@pytest.mark.parametrize("secret", ["", "short", "a" * 64, "changeme" * 8])
def test_weak_secret_keys_are_refused(secret: str) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY is too weak"):
        require_strong_secret(secret)


def test_a_strong_secret_key_is_accepted() -> None:
    import secrets

    require_strong_secret(secrets.token_urlsafe(MIN_SECRET_LENGTH))


def test_crm_serve_refuses_to_start_with_a_weak_key_on_postgresql(tmp_path: Any) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/none",
        "SECRET_KEY": "changeme",
        "DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SECRET_KEY is too weak" in result.stderr
    assert "changeme" not in result.stderr
