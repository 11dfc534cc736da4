"""The plain baseline: one Starlette JSON route serving what `contacts(first: N)` serves, by
hand, from the same SQL statements the app's ORM sends (bearer token check included), on one
connection of an asyncpg pool sized like Tortoise's. Run under uvicorn:

    BENCH_PG_URL=postgresql://... SECRET_KEY=... uvicorn bench.plain_app:app
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.core import ids
from api.core.pagination import encode_cursor

# Written as the app writes them (api/core/database.py `by_id` for the caller, the owners and
# the companies; Tortoise for the page, whose columns it lists in an order of its own);
# bench.run compares them with the statements the app really sends and reports any drift.
USER_COLUMNS = (
    '"id", "email", "name", "password_hash", "role", "crm_agent_id", "office_wide_access", '
    '"can_export", "can_delete", "active", "token_version", "created_at", "office_id"'
)
CONTACT_COLUMNS = (
    '"id","office_id","external_id","first_name","last_name","email","phone","company_id",'
    '"crm_owner_id","owner_id","owner_source","status","status_source","status_updated_at",'
    '"last_activity_at","at_risk_since","unsubscribed","archived","archived_at","erased_at",'
    '"created_at","updated_at","search_text"'
)
AUTH_SQL = f'SELECT {USER_COLUMNS} FROM "app_user" WHERE "id" = ANY($1)'
PAGE_SQL = (
    f'SELECT {CONTACT_COLUMNS} FROM "contact" WHERE "office_id"=$1 AND "archived"=$2 '
    'ORDER BY "id" DESC LIMIT $3'
)
SEARCH_PAGE_SQL = (
    f'SELECT {CONTACT_COLUMNS} FROM "contact" WHERE "office_id"=$1 AND "archived"=$2 '
    """AND CAST("search_text" AS VARCHAR) LIKE $3 ESCAPE '\\' ORDER BY "id" DESC LIMIT $4"""
)
COUNT_UNASSIGNED_SQL = (
    'SELECT COUNT(*) FROM "contact" WHERE "office_id"=$1 AND "archived"=$2 AND "owner_id" IS NULL'
)


USERS_SQL = f'SELECT {USER_COLUMNS} FROM "app_user" WHERE "id" = ANY($1)'
COMPANIES_SQL = 'SELECT "id", "name", "name_key", "office_id" FROM "company" WHERE "id" = ANY($1)'


def like_pattern(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def fetch_page(
    conn: Any, office_id: int, first: int, search: str | None
) -> tuple[list[Any], dict[int, Any], dict[int, Any]]:
    """The page's rows, their owners and their companies: the statements the app sends."""
    if search:
        rows = await conn.fetch(SEARCH_PAGE_SQL, office_id, False, like_pattern(search), first + 1)
    else:
        rows = await conn.fetch(PAGE_SQL, office_id, False, first + 1)
    owner_ids = list(dict.fromkeys(r["owner_id"] for r in rows[:first] if r["owner_id"]))
    company_ids = list(dict.fromkeys(r["company_id"] for r in rows[:first] if r["company_id"]))
    owners = {u["id"]: u for u in await conn.fetch(USERS_SQL, owner_ids)} if owner_ids else {}
    companies = (
        {c["id"]: c for c in await conn.fetch(COMPANIES_SQL, company_ids)} if company_ids else {}
    )
    return rows, owners, companies


_pool: asyncpg.Pool | None = None


async def _keep_session(connection: Any) -> None:
    """Nothing to undo when a connection goes back to the pool: no session state is set."""


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global _pool
    # Sized like Tortoise's pool, and like the app's (api/core/database.py) without the reset
    # round trip asyncpg makes each time a connection goes back to the pool.
    _pool = await asyncpg.create_pool(
        os.environ["BENCH_PG_URL"], min_size=1, max_size=5, reset=_keep_session
    )
    try:
        yield
    finally:
        await _pool.close()


async def _user(request: Request, conn: Any) -> Any | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        claims = jwt.decode(
            token.strip(),
            os.environ["SECRET_KEY"],
            algorithms=["HS256"],
            audience="crm-api",
            options={"require": ["exp", "sub", "off"]},
        )
    except jwt.InvalidTokenError:
        return None
    user = await conn.fetchrow(AUTH_SQL, [int(claims["sub"])])
    if user is None or user["office_id"] != int(claims["off"]) or not user["active"]:
        return None
    return user


async def contacts(request: Request) -> JSONResponse:
    first = int(request.query_params.get("first", "50"))
    if not 1 <= first <= 100:
        return JSONResponse({"error": "BAD_USER_INPUT"}, status_code=400)
    assert _pool is not None
    async with _pool.acquire() as conn:
        user = await _user(request, conn)
        if user is None:
            return JSONResponse({"error": "UNAUTHENTICATED"}, status_code=401)
        rows, owners, companies = await fetch_page(
            conn, user["office_id"], first, request.query_params.get("search")
        )
    edges = []
    for row in rows[:first]:
        owner = owners.get(row["owner_id"])
        company = companies.get(row["company_id"])
        edges.append(
            {
                "cursor": encode_cursor(row["id"]),
                "node": {
                    "id": ids.encode("Contact", row["id"]),
                    "firstName": row["first_name"],
                    "lastName": row["last_name"],
                    "email": row["email"],
                    "status": row["status"],
                    "owner": {"id": ids.encode("User", owner["id"]), "name": owner["name"]}
                    if owner
                    else None,
                    "company": {
                        "id": ids.encode("Company", company["id"]),
                        "name": company["name"],
                    }
                    if company
                    else None,
                },
            }
        )
    page_info = {
        "hasNextPage": len(rows) > first,
        "endCursor": edges[-1]["cursor"] if edges else None,
    }
    return JSONResponse({"data": {"contacts": {"edges": edges, "pageInfo": page_info}}})


async def count(request: Request) -> JSONResponse:
    """`contacts(filter: {unassigned: true}) { totalCount }` by hand: the caller, the count."""
    assert _pool is not None
    async with _pool.acquire() as conn:
        user = await _user(request, conn)
        if user is None:
            return JSONResponse({"error": "UNAUTHENTICATED"}, status_code=401)
        total = await conn.fetchval(COUNT_UNASSIGNED_SQL, user["office_id"], False)
    return JSONResponse({"data": {"contacts": {"totalCount": total}}})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/contacts", contacts),
        Route("/contacts/unassigned/count", count),
        Route("/healthz", healthz),
    ],
    lifespan=lifespan,
)
