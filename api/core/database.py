"""Tortoise ORM set-up: one app ("models") over every domain's models, migrations in api.migrations."""

from __future__ import annotations

import re
from typing import Any

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

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
