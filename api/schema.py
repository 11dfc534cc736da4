"""The GraphQL schema: each domain's queries and mutations merged into the root types."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types

from api.audiences.types import AudienceMutations, AudienceQueries
from api.audit.schema import AuditMutations, AuditQueries
from api.campaigns.types import CampaignMutations, CampaignQueries
from api.contacts.schema import ContactMutations, ContactQueries
from api.core.graphql_extensions import ErrorCodes, cost_limit_rule
from api.core.settings import get_settings
from api.offices.schema import OfficeMutations, OfficeQueries
from api.reports.types import ReportQueries
from api.transfers.types import TransferMutations, TransferQueries
from api.users.schema import UserMutations, UserQueries

Query = merge_types(
    "Query",
    (
        UserQueries,
        OfficeQueries,
        ContactQueries,
        AudienceQueries,
        CampaignQueries,
        ReportQueries,
        AuditQueries,
        TransferQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        UserMutations,
        OfficeMutations,
        ContactMutations,
        AudienceMutations,
        CampaignMutations,
        AuditMutations,
        TransferMutations,
    ),
)


class CrmSchema(strawberry.Schema):
    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        # ErrorCodes logs the unexpected ones; client mistakes are not server log noise.
        return None


def build_schema() -> strawberry.Schema:
    settings = get_settings()
    return CrmSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=5000),
            lambda: MaxAliasesLimiter(max_alias_count=30),
            lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
            lambda: AddValidationRules([cost_limit_rule(settings.max_query_cost)]),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            ErrorCodes,
        ],
    )


schema = build_schema()
