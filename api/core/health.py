"""Readiness: /readyz answers 200 when what the process needs answers too (the database and,
when REDIS_URL is set, Redis), each check bounded by a short timeout; /healthz (api.app)
only says the process is alive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.core.database import fetch
from api.core.settings import get_settings

log = logging.getLogger("api.health")

CHECK_TIMEOUT_SECONDS = 2.0
_HEADERS = {"Cache-Control": "no-store"}


async def check_database() -> None:
    await fetch("SELECT 1")


async def check_redis(url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _outcome(name: str, check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        # The class only: messages of connection errors may carry hosts or credentials.
        log.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return "error"
    return "ok"


async def readyz(request: Request) -> JSONResponse:
    """GET /readyz: 200 when every check passes, else 503; `checks` names each one's
    result ("ok" or "error"), and nothing of the configuration."""
    checks: dict[str, Awaitable[None]] = {"database": check_database()}
    url = get_settings().redis_url
    if url:
        checks["redis"] = check_redis(url)
    names = list(checks)
    results = await asyncio.gather(*(_outcome(n, checks[n]) for n in names))
    outcome = dict(zip(names, results, strict=True))
    ready = all(result == "ok" for result in results)
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": outcome},
        status_code=200 if ready else 503,
        headers=_HEADERS,
    )
