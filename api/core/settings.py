"""Runtime settings, read from the environment (names as in the spec's operating table)."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./var"), alias="DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    smtp_url: str | None = Field(default=None, alias="SMTP_URL")
    public_base_url: str = Field(default="http://localhost:8000", alias="PUBLIC_BASE_URL")
    secret_key_value: str | None = Field(default=None, alias="SECRET_KEY", repr=False)
    token_ttl_minutes: int = Field(default=12 * 60, alias="TOKEN_TTL_MINUTES", ge=5)
    export_link_ttl_minutes: int = Field(default=15, alias="EXPORT_LINK_TTL_MINUTES", ge=1)
    login_max_failures_per_account: int = Field(default=5, alias="LOGIN_MAX_FAILURES_PER_ACCOUNT")
    login_max_failures_per_address: int = Field(default=20, alias="LOGIN_MAX_FAILURES_PER_ADDRESS")
    login_failure_window_seconds: int = Field(default=900, alias="LOGIN_FAILURE_WINDOW_SECONDS")
    max_query_depth: int = Field(default=10, alias="MAX_QUERY_DEPTH")
    max_query_cost: int = Field(default=5000, alias="MAX_QUERY_COST")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # "json" (one object per line) or "text"; unset: json with PostgreSQL, text with SQLite.
    log_format_value: Literal["json", "text"] | None = Field(default=None, alias="LOG_FORMAT")
    # Where `crm serve` and `crm worker` keep Prometheus' multiprocess files (DATA_DIR/metrics
    # when unset): one directory per machine, shared by its web and worker processes.
    metrics_dir_value: Path | None = Field(default=None, alias="METRICS_DIR")
    # `crm worker` serves its processes' metrics on this port too (workers on other machines).
    worker_metrics_port: int | None = Field(default=None, alias="WORKER_METRICS_PORT", gt=0)
    # The office's address for OFFICE campaigns when it has not set its own.
    mail_from: str | None = Field(default=None, alias="MAIL_FROM")
    campaign_batch_size: int = Field(default=250, alias="CAMPAIGN_BATCH_SIZE", ge=1, le=5000)
    # How long a worker owns a batch it is sending without renewing its claim; a batch of a
    # worker that died is taken over after this.
    campaign_lease_seconds: int = Field(default=60, alias="CAMPAIGN_LEASE_SECONDS", ge=2)
    # How often a live-progress subscription re-reads its object when no event came (events
    # are hints; this is the safety net for a lost one).
    subscription_poll_seconds: float = Field(
        default=2.0, alias="SUBSCRIPTION_POLL_SECONDS", gt=0, le=3600
    )
    # Origins of SPAs allowed to call the API from a browser (comma-separated, exact, like
    # "https://app.example.com"); empty: no CORS headers, same origin only.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(default=(), alias="CORS_ORIGINS")
    # Responses from this size on are gzip-compressed for clients that accept it; 0: never.
    gzip_min_bytes: int = Field(default=1024, alias="GZIP_MIN_BYTES", ge=0)
    # How long an automatic persisted query stays in Redis after it was last fetched from there.
    persisted_query_ttl_seconds: int = Field(
        default=7 * 24 * 3600, alias="PERSISTED_QUERY_TTL_SECONDS", ge=60
    )
    # Whether GraphQL answers introspection (__schema, __type: what GraphiQL and code
    # generators read); unset: on with SQLite (development), off with PostgreSQL (production).
    graphql_introspection_value: bool | None = Field(default=None, alias="GRAPHQL_INTROSPECTION")

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("log_format_value", "graphql_introspection_value", mode="before")
    @classmethod
    def _word(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        origins = []
        for part in value.split(","):
            origin = part.strip().rstrip("/").lower()
            if not origin:
                continue
            # Browsers send the Origin header as scheme://host[:port] and nothing more.
            if not re.fullmatch(r"https?://(\[[0-9a-f:.]+\]|[^/\s:@\[\]]+)(:[0-9]{1,5})?", origin):
                raise ValueError(
                    f"CORS_ORIGINS: {part.strip()!r} is not an origin like https://app.example.com"
                )
            origins.append(origin)
        return tuple(origins)

    @property
    def db_url(self) -> str:
        if self.database_url:
            # Tortoise spells the scheme "postgres"; operators often write "postgresql".
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgres://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite://{self.data_dir / 'crm.sqlite3'}"

    @property
    def log_format(self) -> str:
        return self.log_format_value or ("json" if self.is_postgres else "text")

    @property
    def graphql_introspection(self) -> bool:
        if self.graphql_introspection_value is None:
            return not self.is_postgres
        return self.graphql_introspection_value

    @property
    def metrics_dir(self) -> Path:
        return self.metrics_dir_value or self.data_dir / "metrics"

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith(("postgres://", "asyncpg://"))

    @property
    def secret_key(self) -> str:
        """The signing key: SECRET_KEY, or one generated once and kept under DATA_DIR."""
        if self.secret_key_value:
            if self.is_postgres:
                require_strong_secret(self.secret_key_value)
            return self.secret_key_value
        if self.is_postgres:
            raise RuntimeError("SECRET_KEY must be set when DATABASE_URL points at PostgreSQL")
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


MIN_SECRET_LENGTH = 32


def require_strong_secret(value: str) -> None:
    """SECRET_KEY for production (PostgreSQL): at least 32 characters of real variety, so
    tokens and links cannot be forged by guessing it. `python -c "import secrets;
    print(secrets.token_urlsafe(48))"` makes a good one."""
    # Few distinct characters ("aaaa…", "changeme" repeated) means little randomness.
    if len(value) < MIN_SECRET_LENGTH or len(set(value)) < 12:
        raise RuntimeError(
            f"SECRET_KEY is too weak: use at least {MIN_SECRET_LENGTH} random characters, e.g."
            ' python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
