"""Test set-up: one database per run (SQLite by default, PostgreSQL with
CRM_TEST_DATABASE=postgres), migrated once; every test makes its own offices, so tests
never see each other's rows (the tenancy the product itself promises)."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

BACKEND = os.environ.get("CRM_TEST_DATABASE", "sqlite")
PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
_tmp = tempfile.mkdtemp(prefix="crm-test-")
os.environ["DATA_DIR"] = _tmp
os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)
os.environ.setdefault("LOG_LEVEL", "WARNING")
if BACKEND == "postgres":
    _PG_DB = f"crm_test_{uuid.uuid4().hex[:10]}"
    os.environ["DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{_PG_DB}"
else:
    os.environ.pop("DATABASE_URL", None)

from argon2 import PasswordHasher  # noqa: E402

import api.users.auth as auth  # noqa: E402
from api.core.settings import get_settings  # noqa: E402

get_settings.cache_clear()
# Production-strength hashing costs ~50 ms a user; tests make hundreds of users.
auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
auth._DUMMY_HASH = auth._hasher.hash("not a password anyone has")

PASSWORD = "correct-horse-battery"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
async def database() -> AsyncIterator[None]:
    from api.core.database import close_db, init_db, migrate_db

    if BACKEND == "postgres":
        await _pg_admin(f'CREATE DATABASE "{_PG_DB}"')
    if os.environ.get("REDIS_URL"):
        # The test run's own Redis database: no message or counter of an earlier run.
        import redis.asyncio as redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        await client.flushdb()
        await client.aclose()
    await migrate_db()
    await close_db()
    await init_db()
    yield
    await close_db()
    if BACKEND == "postgres":
        await _pg_admin(f'DROP DATABASE IF EXISTS "{_PG_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def app() -> Any:
    from api.app import create_app

    # No lifespan under ASGITransport: the session fixture owns the database connection.
    return create_app(embedded_workers=False)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=app, client=(f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}", 1234)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Gql:
    """Posts GraphQL documents over HTTP, as a client would."""

    client: httpx.AsyncClient

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_: Any = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        headers = {}
        if as_ is not None:
            token = auth.issue_token(as_)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code in (200, 400), response.text
        return response.json()

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: Any = None
    ) -> dict[str, Any]:
        body = await self(query, variables, as_=as_)
        assert not body.get("errors"), body["errors"]
        return body["data"]


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Gql:
    return Gql(client)


LEAKS = re.compile(
    r"traceback|file \"|sqlite|asyncpg|psycopg|tortoise|integrityerror|operationalerror"
    r"|unicodeencodeerror|internal server error",
    re.IGNORECASE,
)
_SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \"|WHERE|FROM \")")


def assert_clean(body: dict[str, Any]) -> None:
    """Every error has a code, none is internal, no message shows internals (R20)."""
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code, f"error without extensions.code: {error}"
        assert code != "INTERNAL_SERVER_ERROR", error
        message = error.get("message", "")
        assert not LEAKS.search(message), error
        assert not _SQL.search(message), error


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def the_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    return errors[0]


@dataclass
class World:
    """An office with the cast of R1–R4: an admin, two agents with CRM ids, an
    office-wide agent, and a second office with its own admin."""

    office: Any
    admin: Any
    agent: Any
    other_agent: Any
    office_wide: Any
    foreign_office: Any
    foreign_admin: Any
    extra: dict[str, Any] = field(default_factory=dict)

    async def contact(self, *, owner: Any = None, by: Any = None, **fields: Any) -> Any:
        """A contact; with `owner`, owned through that user's CRM id."""
        from api.contacts.service import ContactFields, create_contact

        raw = ContactFields(
            first_name=fields.pop("first_name", "Pat"),
            last_name=fields.pop("last_name", uuid.uuid4().hex[:6]),
            email=fields.pop("email", f"{uuid.uuid4().hex[:8]}@client.example"),
            phone=fields.pop("phone", "+44 20 7946 0000"),
            company_name=fields.pop("company_name", None),
        )
        crm_owner_id = fields.pop("crm_owner_id", owner.crm_agent_id if owner else None)
        return await create_contact(by or self.admin, raw, crm_owner_id=crm_owner_id, **fields)


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@office.example"


async def make_user(office: Any, role: str = "AGENT", **kwargs: Any) -> Any:
    from api.users.models import Role
    from api.users.service import create_user

    return await create_user(
        None,
        office_id=office.id,
        email=kwargs.pop("email", unique_email(role.lower())),
        name=kwargs.pop("name", f"{role.title()} {uuid.uuid4().hex[:4]}"),
        password=kwargs.pop("password", PASSWORD),
        role=Role(role),
        **kwargs,
    )


async def make_office(name: str | None = None, **settings: Any) -> Any:
    from api.offices.models import Office

    return await Office.create(name=name or f"Office {uuid.uuid4().hex[:8]}", **settings)


@pytest.fixture
async def world() -> World:
    office = await make_office()
    foreign = await make_office()
    suffix = uuid.uuid4().hex[:6]
    return World(
        office=office,
        admin=await make_user(office, "ADMIN"),
        agent=await make_user(office, crm_agent_id=f"A-{suffix}"),
        other_agent=await make_user(office, crm_agent_id=f"B-{suffix}"),
        office_wide=await make_user(office, office_wide_access=True, crm_agent_id=f"W-{suffix}"),
        foreign_office=foreign,
        foreign_admin=await make_user(foreign, "ADMIN"),
    )
