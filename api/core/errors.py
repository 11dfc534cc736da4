"""Errors a client sees, each with its `extensions.code` (R20)."""

from __future__ import annotations


class AppError(Exception):
    """An error meant for the client: its message and code are safe to show."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def extensions(self) -> dict[str, str]:
        ext = {"code": self.code}
        if self.field:
            ext["field"] = self.field
        return ext


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"


class Forbidden(AppError):
    code = "FORBIDDEN"


class NotFound(AppError):
    code = "NOT_FOUND"

    def __init__(self, what: str = "Object") -> None:
        super().__init__(f"{what} not found")


class BadInput(AppError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class Conflict(AppError):
    code = "CONFLICT"


class RateLimited(AppError):
    code = "RATE_LIMITED"


class ServiceUnavailable(AppError):
    """The database could not be reached (a restart, a failover): nothing was wrong with the
    request, and the same request may succeed in a moment."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str = "The database is unavailable; try again shortly") -> None:
        super().__init__(message)
