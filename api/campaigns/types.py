"""GraphQL types of campaigns; their roots are the ORM rows."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.audiences.types import Audience, SendAccount
from api.campaigns import models, service
from api.core.context import Info
from api.core.graphql_types import IdKeyedConnection, Node, rows_of
from api.core.pagination import encode_cursor
from api.users.types import UserType

CampaignState = strawberry.enum(models.CampaignState)
SenderMode = strawberry.enum(
    models.SenderMode,
    description="Whom an OFFICE campaign's messages are from: the office (ACCOUNT), or each contact's own agent, and the office for unassigned contacts (OWNER_OR_OFFICE).",
)


@strawberry.type
class CampaignStats:
    recipients: int = strawberry.field(
        description="Contacts the send goes to: every delivery that is not a skip."
    )
    sent: int
    failed: int
    skipped_inactive: int
    skipped_unsubscribed: int
    skipped_no_email: int = strawberry.field(description="No address, or an invalid one.")
    opened: int = strawberry.field(description="Unique: recipients who opened at least once.")
    clicked: int = strawberry.field(description="Unique: recipients who clicked at least once.")
    pending: int = strawberry.field(description="Not sent yet (queued or being handed over).")
    bounced: int = strawberry.field(
        description="Refused for good by the mail server (5xx); the address is suppressed."
    )
    unknown: int = strawberry.field(
        description="Handed to the mail server by a worker that died before the answer: maybe delivered, never sent again."
    )
    cancelled: int
    skipped_archived: int
    skipped_bounced: int = strawberry.field(
        description="Addresses suppressed after an earlier permanent failure."
    )
    skipped_duplicate: int = strawberry.field(
        description="A second contact with an address already receiving it (one copy per address)."
    )
    unsubscribed: int = strawberry.field(description="Recipients who unsubscribed from it.")


@strawberry.type(name="Campaign")
class CampaignType(Node):
    is_type_of = rows_of(models.Campaign)

    name: str
    subject: str
    body_html: str
    account: SendAccount
    sender_mode: SenderMode
    state: CampaignState
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime

    sender: UserType | None = strawberry.field(
        description="The user who sends it: the account holder for USER campaigns."
    )
    audience: Audience

    @strawberry.field(description="Audiences whose members it leaves out.")
    async def excluded_audiences(self, info: Info) -> list[Audience]:
        found = await info.context.loaders.audience.load_many(self.excluded_audience_ids)
        return [a for a in found if a is not None]

    @strawberry.field(description="Live: counted from the deliveries when read.")
    async def stats(self, info: Info) -> CampaignStats:
        stats = await info.context.loaders.campaign_stats.load(self.id)
        return CampaignStats(**vars(stats))


@strawberry.type
class CampaignEdge:
    cursor: str
    node: CampaignType


@strawberry.type
class CampaignConnection(IdKeyedConnection):
    _page: strawberry.Private[service.CampaignPage]

    @strawberry.field
    async def edges(self) -> list[CampaignEdge]:
        rows, _ = await self._page.rows()
        return [CampaignEdge(cursor=encode_cursor(row.id), node=row) for row in rows]


@strawberry.input
class CampaignInput:
    name: str
    subject: str
    body_html: str = strawberry.field(
        description="HTML with merge fields such as {{first_name}}, {{agent_name}}, {{office_name}}; links are tracked, an open pixel and an unsubscribe footer are added, and the plain-text part is generated."
    )
    audience_id: strawberry.ID
    account: SendAccount
    exclude_audience_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Audiences whose members are left out."
    )
    sender_mode: SenderMode | None = strawberry.field(
        default=None, description="OFFICE campaigns only; ACCOUNT when left out."
    )


@strawberry.input
class CampaignPatch:
    name: str | None = None
    subject: str | None = None
    body_html: str | None = None
    audience_id: strawberry.ID | None = None
    exclude_audience_ids: list[strawberry.ID] | None = None
    sender_mode: SenderMode | None = None
