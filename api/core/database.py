"""Tortoise ORM set-up: one app ("models") over every domain's models, migrations in
api.migrations; raw queries on either backend; and telling an unreachable database from a
query that failed."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.models import Model

from api.core.settings import get_settings

MODEL_MODULES = [
    "api.offices.models",
    "api.users.models",
    "api.contacts.models",
    "api.audit.models",
    "api.transfers.models",
    "api.audiences.models",
    "api.campaigns.models",
    "api.auditlog.models",
]


def tortoise_config(db_url: str | None = None) -> dict[str, Any]:
    settings = get_settings()
    url = db_url or settings.db_url
    if url.startswith("sqlite://"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if "?" not in url:
            # Several processes (web, worker, clock) share the file: wait rather than fail.
            url += "?busy_timeout=10000"
    connection: str | dict[str, Any] = url
    if url.startswith(("postgres://", "asyncpg://")):
        connection = expand_db_url(url)
        # asyncpg's pool runs RESET ALL & co. on every release, a round trip per statement
        # (Tortoise takes a pooled connection per statement). The app keeps no session state:
        # no SET, LISTEN, cursors or session advisory locks, so there is nothing to reset.
        connection["credentials"]["reset"] = _keep_session
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "api.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def _keep_session(connection: Any) -> None:
    """asyncpg pool `reset` hook: nothing to undo (transactions are always closed by then)."""


# The module path the `tortoise` CLI takes (`tortoise -c api.core.database.TORTOISE_ORM ...`).
TORTOISE_ORM = tortoise_config()


async def init_db(db_url: str | None = None) -> None:
    """Connect the ORM. The global fallback lets workers, the CLI and tests share it."""
    await Tortoise.init(config=tortoise_config(db_url), _enable_global_fallback=True)


async def migrate_db(db_url: str | None = None) -> None:
    """Apply pending migrations (idempotent)."""
    await tortoise_migrate(config=tortoise_config(db_url))


async def close_db() -> None:
    await Tortoise.close_connections()


# What a query raises while the server cannot be reached: refused or reset connections
# (OSError), a server shutting down or starting up (57P01-57P03), a connection lost mid-query,
# and a pooled connection the server ended while it sat idle (asyncpg's protocol then refuses
# the next query with an InternalClientError).
_UNREACHABLE = (
    OSError,
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from or while handling, says the database could
    not be reached (rather than that a query was wrong): the request may succeed once it is
    back. asyncpg's pool reconnects by itself, so nothing else needs doing."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNREACHABLE):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def dialect() -> str:
    return connections.get("default").capabilities.dialect


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _for_dialect(sql: str, args: tuple[Any, ...]) -> tuple[str, list[Any]]:
    """Queries are written with asyncpg's $n placeholders; SQLite takes positional `?`,
    so the arguments are laid out in the order the placeholders appear."""
    if dialect() != "sqlite":
        return sql, list(args)
    order = [int(n) - 1 for n in _PLACEHOLDER.findall(sql)]
    return _PLACEHOLDER.sub("?", sql), [args[i] for i in order]


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run a read-only raw query written with $n placeholders on either backend."""
    query, values = _for_dialect(sql, args)
    return await connections.get("default").execute_query_dict(query, values)


async def execute(sql: str, *args: Any) -> int:
    """Run a raw statement written with $n placeholders; returns the rows affected."""
    query, values = _for_dialect(sql, args)
    count, _ = await connections.get("default").execute_query(query, values)
    return count


M = TypeVar("M", bound=Model)


@lru_cache(maxsize=256)
def _select_by_id(model: type[Model], n: int | None) -> str:
    """The statement reading rows of `model` by primary key: one array parameter (n None)
    on PostgreSQL, n placeholders on SQLite, which has no arrays."""
    meta = model._meta
    columns = ", ".join(f'"{c}"' for c in meta.fields_db_projection.values())
    marks = ", ".join(f"${i}" for i in range(1, (n or 0) + 1))
    keys = "= ANY($1)" if n is None else f"IN ({marks})"
    # Names from the model's metadata, values as parameters.
    return f'SELECT {columns} FROM "{meta.db_table}" WHERE "{meta.db_pk_column}" {keys}'  # noqa: S608


async def by_id(model: type[M], keys: list[int]) -> list[M]:
    """The rows of `model` with these primary keys (in no order), as the ORM builds them.
    What every request does (its caller's row, a page's owners and companies) is read
    this way: a fixed statement skips the query builder, which costs more here than the
    round trip, and on PostgreSQL it is one statement whatever the number of keys, so
    pages of every size share one prepared statement."""
    if not keys:
        return []
    if dialect() == "sqlite":
        found = await fetch(_select_by_id(model, len(keys)), *keys)
    else:
        found = await fetch(_select_by_id(model, None), list(keys))
    return [model._init_from_db(**row) for row in found]
