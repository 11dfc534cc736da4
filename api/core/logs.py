"""Logging: one JSON object per line in production or readable text in development, the
request id on every line, and secrets redacted before anything is written.

The request id lives in a context variable: the HTTP middleware (api.core.metrics) sets it
per request, and the Dramatiq middleware (workers.broker) carries it in each message it
enqueues and restores it while the actor runs, so a worker's lines name the request too.

`logging_config()` is a `logging.config.dictConfig` dictionary; `crm` applies it to its own
process and hands it to uvicorn, so the server's own and access lines share the format.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# What a client may send as X-Request-ID; anything else gets a fresh id.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    """32 random hex digits (os.urandom: several times cheaper than uuid4 here)."""
    return os.urandom(16).hex()


def accept_request_id(value: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


_REDACTED = "[redacted]"
_SECRETS = [
    # Authorization headers and anything else spelled "Bearer <token>".
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + _REDACTED),
    # JSON Web Tokens (the API's session tokens) wherever they appear.
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), _REDACTED),
    # The password of a URL: smtp://user:password@host, redis://:password@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@/\s]+@"), r"\1" + _REDACTED + "@"),
    # token=, password=, secret= values in query strings and key=value text.
    (
        re.compile(
            r"(?i)\b((?:access_|refresh_|api_|secret_)?(?:token|password|passwd|secret|api_key)=)"
            r"[^&\s\"',;]+"
        ),
        r"\1" + _REDACTED,
    ),
    # "password": "..." in a logged dict or JSON document.
    (
        re.compile(r"(?i)([\"'](?:password|token|secret|authorization)[\"']\s*:\s*[\"'])[^\"']*"),
        r"\1" + _REDACTED,
    ),
    # The signed tokens in campaign links (api.campaigns.links): /u/<token>, /t/o/<token>.
    (re.compile(r"(/(?:u|t/[oc])/)[^\s/?\"']+"), r"\1" + _REDACTED),
]


# Something every pattern above needs to match: most lines (every access line without a
# query string) have none of it, and one search is much cheaper than the six substitutions.
_MAY_HOLD_SECRET = re.compile(r"(?i)bearer|eyJ|://|=|password|token|secret|authorization|/u/|/t/")


def redact(text: str) -> str:
    """`text` with bearer tokens, URL passwords, token= values and link tokens replaced."""
    if not _MAY_HOLD_SECRET.search(text):
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RequestContext(logging.Filter):
    """Puts the current request id on every record and redacts secrets from its message
    and traceback (a handler filter: it sees the records of every logger)."""

    _exception_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        # Arguments one by one first, so a line keeps its arguments (uvicorn's access line
        # becomes fields); then the whole message, for secrets inside other objects.
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # arguments not matching the format: the handler reports it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:  # another handler may have formatted it first
            record.exc_text = redact(record.exc_text)
        return True


# Attributes every LogRecord has; anything else on a record was passed as `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "request_tag",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}
# uvicorn's access line: client, method, path, HTTP version, status.
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            entry.update(zip(_ACCESS_FIELDS, args, strict=True))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id]: message`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        record.request_tag = f" [{request_id}]" if request_id else ""
        return super().format(record)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time: Dramatiq's worker processes replace
    it with a pipe to the parent after the logging set-up they inherit was made."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """The stream is always the current sys.stderr."""


# Announce every connect, shutdown and tick at INFO: quiet unless LOG_LEVEL is DEBUG.
_QUIET = ("tortoise", "apscheduler")


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """The dictConfig for LOG_LEVEL `level` and LOG_FORMAT `log_format` ("json" or "text")."""
    level = level.upper()
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    loggers: dict[str, Any] = {
        # uvicorn's loggers hand their lines to the root handler (its own set-up would give
        # them handlers and formats of their own).
        name: {"handlers": [], "propagate": True}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    }
    if level != "DEBUG":
        for name in _QUIET:
            loggers[name] = {"level": "WARNING"}
    # The ORM's statement log carries parameters (password hashes, tokens, message bodies):
    # never written, whatever LOG_LEVEL says.
    loggers["tortoise.db_client"] = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}.RequestContext"}},
        "formatters": {"main": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "()": f"{__name__}.StderrHandler",
                "formatter": "main",
                "filters": ["context"],
            }
        },
        "loggers": loggers,
        "root": {"level": level, "handlers": ["stderr"]},
    }


def setup_logging(level: str, log_format: str) -> None:
    """Configure this process's logging (see logging_config)."""
    import logging.config

    logging.config.dictConfig(logging_config(level, log_format))
