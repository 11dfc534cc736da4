"""GraphQL queries and mutations of campaigns: thin callers of api.campaigns.service."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.audiences.models import SendAccount as SendAccountValue
from api.audiences.types import SendAccount
from api.campaigns import models, service
from api.campaigns.types import CampaignConnection, CampaignInput, CampaignPatch, CampaignType
from api.core import ids
from api.core.context import Info
from api.core.pagination import decode_id_cursor, page_size
from api.core.permissions import IsAuthenticated


def _draft(input: CampaignInput | CampaignPatch) -> service.CampaignDraft:
    excluded = input.exclude_audience_ids
    return service.CampaignDraft(
        name=input.name,
        subject=input.subject,
        body_html=input.body_html,
        audience_id=ids.decode("Audience", input.audience_id, field="audienceId")
        if input.audience_id is not None
        else None,
        excluded_audience_ids=ids.decode_many("Audience", excluded, field="excludeAudienceIds")
        if excluded is not None
        else None,
        sender_mode=models.SenderMode(input.sender_mode.value) if input.sender_mode else None,
    )


@strawberry.type
class CampaignQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def campaign(self, info: Info, id: strawberry.ID) -> CampaignType | None:
        return await service.get_visible(info.context.require_user(), ids.decode("Campaign", id))

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Newest first: the caller's own campaigns, the office-wide account's with office-wide access, every one for admins.",
    )
    def campaigns(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> CampaignConnection:
        page = service.list_campaigns(
            info.context.require_user(),
            first=page_size(first, default=20),
            after=decode_id_cursor(after),
        )
        return CampaignConnection(_page=page)


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_campaign(self, info: Info, input: CampaignInput) -> CampaignType:
        account = SendAccountValue(input.account.value)
        return await service.create_campaign(info.context.require_user(), account, _draft(input))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Changes a DRAFT campaign."
    )
    async def update_campaign(
        self, info: Info, id: strawberry.ID, input: CampaignPatch
    ) -> CampaignType:
        return await service.update_campaign(
            info.context.require_user(), ids.decode("Campaign", id), _draft(input)
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Queues the send now, or at `at`."
    )
    async def send_campaign(
        self, info: Info, id: strawberry.ID, at: datetime | None = None
    ) -> CampaignType:
        return await service.send_campaign(
            info.context.require_user(), ids.decode("Campaign", id), at
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Cancels a draft or scheduled campaign; a sending one stops, keeping what was sent.",
    )
    async def cancel_campaign(self, info: Info, id: strawberry.ID) -> CampaignType:
        return await service.cancel_campaign(
            info.context.require_user(), ids.decode("Campaign", id)
        )


__all__ = ["CampaignMutations", "CampaignQueries", "SendAccount"]
