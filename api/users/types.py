"""GraphQL types of the users domain."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.core.context import Info
from api.core.graphql_types import Node, rows_of
from api.core.permissions import MaySeeUserEmail
from api.users import models

Role = strawberry.enum(models.Role)


@strawberry.type(name="User")
class UserType(Node):
    is_type_of = rows_of(models.User)

    name: str
    role: Role
    active: bool
    crm_agent_id: str | None = strawberry.field(
        description="The agent id this user has in the CRM; contacts owned there by this id are assigned here."
    )
    office_wide_access: bool
    can_export: bool
    can_delete: bool
    email: str | None = strawberry.field(
        description="The user themself and admins only.", permission_classes=[MaySeeUserEmail]
    )

    @strawberry.field
    async def contact_count(self, info: Info) -> int:
        return await info.context.loaders.contact_count.load(self.id)


@strawberry.type
class AuthPayload:
    token: str
    user: Annotated[UserType, strawberry.lazy("api.users.types")]


@strawberry.input
class UserInput:
    email: str
    name: str
    password: str
    role: Role
    crm_agent_id: str | None = None
    office_wide_access: bool | None = None
    can_export: bool | None = None
    can_delete: bool | None = None


@strawberry.input
class UserPatch:
    name: str | None = None
    password: str | None = strawberry.field(
        default=None,
        description="Admins, for another user: sets a new password and revokes that user's tokens. Your own: changePassword.",
    )
    role: Role | None = None
    crm_agent_id: str | None = None
    active: bool | None = None
    office_wide_access: bool | None = None
    can_export: bool | None = None
    can_delete: bool | None = None
