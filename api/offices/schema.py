"""GraphQL queries and mutations of the office."""

from __future__ import annotations

import strawberry

from api.core.context import Info
from api.core.permissions import IsAdmin, IsAuthenticated
from api.offices import service
from api.offices.types import OfficeSettingsInput, OfficeType


@strawberry.type
class OfficeQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def office(self, info: Info) -> OfficeType:
        return await service.get_office(info.context.require_user())


@strawberry.type
class OfficeMutations:
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def update_office_settings(self, info: Info, input: OfficeSettingsInput) -> OfficeType:
        return await service.update_settings(
            info.context.require_user(),
            risk_days=input.risk_days,
            stale_days=input.stale_days,
            auto_inactivate_days=input.auto_inactivate_days,
            timezone=input.timezone,
            sender_email=input.sender_email,
        )
