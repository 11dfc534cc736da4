"""GraphQL types of audiences (their service arrives with the audiences work)."""

from __future__ import annotations

from enum import StrEnum

import strawberry

from api.contacts.types import ContactConnection, ContactFilter
from api.core.errors import NotAvailable
from api.core.graphql_types import Node
from api.core.permissions import IsAuthenticated
from api.users.types import UserType


@strawberry.enum(
    description="Which account a campaign or audience belongs to: a user's own, or the office-wide one."
)
class SendAccount(StrEnum):
    USER = "USER"
    OFFICE = "OFFICE"


@strawberry.enum
class AudienceKind(StrEnum):
    SYSTEM = "SYSTEM"
    CUSTOM = "CUSTOM"


@strawberry.type
class Audience(Node):
    id: strawberry.ID
    name: str
    kind: AudienceKind
    account: SendAccount
    owner: UserType | None = strawberry.field(
        description="The user whose account holds it; null for office-wide audiences."
    )
    size: int

    @strawberry.field(permission_classes=[IsAuthenticated])
    def contacts(self, first: int | None = 50, after: str | None = None) -> ContactConnection:
        raise NotAvailable("Audiences")


@strawberry.input
class AudienceInput:
    name: str
    account: SendAccount
    filter: ContactFilter


@strawberry.type
class AudienceQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Audiences of the caller's own account; account: OFFICE lists the office-wide account's (admins and office-wide users; FORBIDDEN for others).",
    )
    def audiences(self, account: SendAccount | None = None) -> list[Audience]:
        raise NotAvailable("Audiences")

    @strawberry.field(permission_classes=[IsAuthenticated])
    def audience(self, id: strawberry.ID) -> Audience | None:
        raise NotAvailable("Audiences")


@strawberry.type
class AudienceMutations:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    def create_audience(self, input: AudienceInput) -> Audience:
        raise NotAvailable("Audiences")
