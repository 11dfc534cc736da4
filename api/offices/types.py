"""GraphQL types of the office."""

from __future__ import annotations

import strawberry

from api.core.context import Info
from api.core.graphql_types import Node, rows_of
from api.core.permissions import SeesWholeOffice
from api.offices import service
from api.offices.models import Office


@strawberry.type
class OfficeSettings:
    risk_days: int = strawberry.field(
        description="No activity of any kind for this many days makes a contact at risk (default 90)."
    )
    stale_days: int = strawberry.field(
        description="A status not updated for this many days makes a contact stale (default 180)."
    )
    auto_inactivate_days: int | None = strawberry.field(
        description="The nightly audit moves contacts idle this long to INACTIVE; null = never (default)."
    )
    sender_email: str = strawberry.field(
        description="From and Reply-To address of office-wide campaigns (MAIL_FROM, or no-reply at PUBLIC_BASE_URL's host, until set)."
    )


@strawberry.type(name="Office")
class OfficeType(Node):
    is_type_of = rows_of(Office)

    name: str
    timezone: str

    @strawberry.field
    def settings(self) -> OfficeSettings:
        return OfficeSettings(
            risk_days=self.risk_days,
            stale_days=self.stale_days,
            auto_inactivate_days=self.auto_inactivate_days,
            sender_email=service.office_address(self),
        )

    @strawberry.field(
        description="Admins and office-wide users only; null with a FORBIDDEN error for others.",
        permission_classes=[SeesWholeOffice],
    )
    async def unassigned_count(self, info: Info) -> int | None:
        return await service.unassigned_count(info.context.require_user())


@strawberry.input
class OfficeSettingsInput:
    risk_days: int | None = None
    stale_days: int | None = None
    auto_inactivate_days: int | None = strawberry.field(
        default=None, description="0 turns automatic inactivation off."
    )
    timezone: str | None = None
    sender_email: str | None = strawberry.field(
        default=None, description="From and Reply-To address of office-wide campaigns."
    )
