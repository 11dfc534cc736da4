"""The live progress of a campaign's send, as a GraphQL subscription (graphql-transport-ws).

A thin caller of api.campaigns.service: each frame is the campaign read again through
`get_visible`, as the caller is now, so it shows exactly what `campaign(id)` would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import strawberry

from api.campaigns import service
from api.campaigns.models import Campaign, CampaignState
from api.campaigns.types import CampaignType
from api.core import events, ids, loaders
from api.core.context import Info
from api.core.permissions import IsAuthenticated
from api.users import auth

# The states a send ends in: the subscription completes after showing one of them.
FINISHED = frozenset({CampaignState.SENT, CampaignState.FAILED, CampaignState.CANCELLED})


@strawberry.type
class CampaignSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="The campaign now, then again as its send progresses (live stats), at most every 100 ms and at least every SUBSCRIPTION_POLL_SECONDS; completes after SENT, FAILED or CANCELLED. Visible to whoever may read campaign(id).",
    )
    async def campaign_progress(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[CampaignType, None]:
        caller = info.context.require_user()
        campaign_id = ids.decode("Campaign", id)
        # Checked before the stream starts, so a refusal is the protocol's `error` message.
        await service.get_visible(caller, campaign_id)

        async def read() -> Campaign:
            nonlocal caller
            caller = await auth.recheck(caller)
            return await service.get_visible(caller, campaign_id)

        def finished(campaign: Campaign) -> bool:
            return campaign.state in FINISHED

        return _frames(info, events.follow("Campaign", campaign_id, read, finished))


async def _frames(
    info: Info, campaigns: AsyncGenerator[Campaign, None]
) -> AsyncGenerator[Campaign, None]:
    # Closed with the subscription, so its listener goes at once, not when collected.
    async with contextlib.aclosing(campaigns):
        async for campaign in campaigns:
            # The connection's context outlives a frame: each frame counts its stats afresh.
            loaders.begin()
            yield campaign
