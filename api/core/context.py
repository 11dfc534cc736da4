"""The per-request GraphQL context: the caller and this request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from strawberry.types import Info as StrawberryInfo

from api.core import loaders
from api.core.errors import Unauthenticated
from api.core.loaders import Loaders

if TYPE_CHECKING:
    from starlette.requests import Request

    from api.users.models import User


@dataclass
class Context:
    request: Request | None
    user: User | None
    # Set when a bearer token was sent but is invalid or expired, to say so in the error.
    auth_problem: str | None = None

    def __post_init__(self) -> None:
        loaders.begin()

    @property
    def loaders(self) -> Loaders:
        """This request's (this operation's, on a WebSocket) DataLoaders."""
        return loaders.current()

    @property
    def client_address(self) -> str:
        if self.request is not None and self.request.client is not None:
            return self.request.client.host
        return "unknown"

    def require_user(self) -> User:
        if self.user is None:
            raise Unauthenticated(
                self.auth_problem or "Log in first: send 'Authorization: Bearer <token>'"
            )
        return self.user


Info = StrawberryInfo[Context, None]
