"""GraphQL queries and mutations of the users domain: thin callers of users.service."""

from __future__ import annotations

import strawberry

from api.core import ids
from api.core.context import Info
from api.core.permissions import IsAdmin, IsAuthenticated
from api.users import auth, service
from api.users.types import AuthPayload, UserInput, UserPatch, UserType


@strawberry.type
class UserQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def me(self, info: Info) -> UserType:
        return info.context.require_user()

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def users(self, info: Info) -> list[UserType]:
        return await service.list_users(info.context.require_user())


@strawberry.type
class UserMutations:
    @strawberry.mutation
    async def login(self, info: Info, email: str, password: str) -> AuthPayload:
        token, user = await auth.login(email, password, info.context.client_address)
        info.context.user = user
        return AuthPayload(token=token, user=user)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def create_user(self, info: Info, input: UserInput) -> UserType:
        actor = info.context.require_user()
        return await service.create_user(
            actor,
            office_id=actor.office_id,
            email=input.email,
            name=input.name,
            password=input.password,
            role=input.role,
            crm_agent_id=input.crm_agent_id,
            office_wide_access=bool(input.office_wide_access),
            can_export=bool(input.can_export),
            can_delete=bool(input.can_delete),
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_user(self, info: Info, id: strawberry.ID, input: UserPatch) -> UserType:
        changes = service.UserChanges(
            name=input.name,
            role=input.role,
            crm_agent_id=input.crm_agent_id,
            active=input.active,
            office_wide_access=input.office_wide_access,
            can_export=input.can_export,
            can_delete=input.can_delete,
            password=input.password,
        )
        return await service.update_user(
            info.context.require_user(), ids.decode("User", id), changes
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Changes the caller's password; every token issued before stops working, and the answer carries a fresh one.",
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> AuthPayload:
        user = await service.change_password(
            info.context.require_user(), current_password, new_password
        )
        info.context.user = user
        return AuthPayload(token=auth.issue_token(user), user=user)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Revokes every token of the caller (all sessions) at once.",
    )
    async def logout(self, info: Info) -> bool:
        await service.logout(info.context.require_user())
        return True
