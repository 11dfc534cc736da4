"""GraphQL types of campaigns (their service and workers arrive with the campaigns work)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import strawberry

from api.audiences.types import Audience, SendAccount
from api.core.errors import NotAvailable
from api.core.graphql_types import Node, PageInfo
from api.core.permissions import IsAuthenticated
from api.users.types import UserType


@strawberry.enum
class CampaignState(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    SENDING = "SENDING"
    SENT = "SENT"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


@strawberry.type
class CampaignStats:
    recipients: int
    sent: int
    failed: int
    skipped_inactive: int
    skipped_unsubscribed: int
    skipped_no_email: int
    opened: int
    clicked: int


@strawberry.type
class Campaign(Node):
    id: strawberry.ID
    name: str
    subject: str
    account: SendAccount
    sender: UserType | None = strawberry.field(
        description="The user who sends it: the account holder for USER campaigns."
    )
    audience: Audience
    state: CampaignState
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    stats: CampaignStats


@strawberry.type
class CampaignEdge:
    cursor: str
    node: Campaign


@strawberry.type
class CampaignConnection:
    edges: list[CampaignEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class CampaignInput:
    name: str
    subject: str
    body_html: str
    audience_id: strawberry.ID
    account: SendAccount


@strawberry.type
class CampaignQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def campaign(self, id: strawberry.ID) -> Campaign | None:
        raise NotAvailable("Campaigns")

    @strawberry.field(permission_classes=[IsAuthenticated])
    def campaigns(self, first: int | None = 20, after: str | None = None) -> CampaignConnection:
        raise NotAvailable("Campaigns")


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    def create_campaign(self, input: CampaignInput) -> Campaign:
        raise NotAvailable("Campaigns")

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Queues the send now, or at `at`."
    )
    def send_campaign(self, id: strawberry.ID, at: datetime | None = None) -> Campaign:
        raise NotAvailable("Campaigns")

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    def cancel_campaign(self, id: strawberry.ID) -> Campaign:
        raise NotAvailable("Campaigns")
