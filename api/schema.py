"""The GraphQL schema: each domain's queries, mutations and subscriptions merged into the root
types."""

from __future__ import annotations

import asyncio
from types import CoroutineType
from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as create_alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as create_depth_validator
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.tools import merge_types
from strawberry.types.field import StrawberryField

from api.audiences.types import AudienceMutations, AudienceQueries
from api.audit.schema import AuditMutations, AuditQueries
from api.auditlog.schema import AuditLogQueries
from api.campaigns.schema import CampaignMutations, CampaignQueries
from api.campaigns.subscriptions import CampaignSubscriptions
from api.contacts.schema import ContactMutations, ContactQueries
from api.core.graphql_extensions import ErrorCodes, IntrospectionSetting, cost_limit_rule
from api.core.graphql_types import resolve_attribute
from api.core.settings import get_settings
from api.offices.schema import OfficeMutations, OfficeQueries
from api.reports.types import ReportQueries
from api.transfers.export_schema import ExportMutations, ExportQueries
from api.transfers.import_schema import ImportMutations, ImportQueries
from api.transfers.subscriptions import JobSubscriptions
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
        AuditLogQueries,
        ImportQueries,
        ExportQueries,
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
        ImportMutations,
        ExportMutations,
    ),
)
Subscription = merge_types("Subscription", (CampaignSubscriptions, JobSubscriptions))


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Only coroutines and futures are awaited. graphql-core's default test (`__await__`)
    also takes ORM rows (Tortoise lets one await a model), which would send every row of a
    list down the executor's slow asynchronous path; resolvers here return nothing else
    awaitable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = _is_awaitable  # type: ignore[method-assign]


def _is_awaitable(value: Any) -> bool:
    return isinstance(value, _AWAITABLES)


_AWAITABLES = (CoroutineType, asyncio.Future)


class CrmSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _read_attributes_directly(self._schema)

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        # ErrorCodes logs the unexpected ones; client mistakes are not server log noise.
        return None


def _read_attributes_directly(graphql_schema: GraphQLSchema) -> None:
    """Fields without a resolver call the default resolver (resolve_attribute) directly.
    Strawberry reaches it through two wrappers per field, one of which builds an argument
    list and dict on every call: on a page of 100 contacts with owners and companies
    (1,300 fields) they cost 8% of the request. Only the fields Strawberry itself marks
    as plain attribute reads change: no resolver, no permission classes, no extensions."""
    for graphql_type in graphql_schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field in graphql_type.fields.values():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                isinstance(definition, StrawberryField)
                and definition.is_basic_field
                and getattr(field.resolve, "_is_default", False)
            ):
                field.resolve = _attribute_reader(definition.python_name)


def _attribute_reader(name: str) -> Any:
    def read(source: Any, info: Any) -> Any:
        return resolve_attribute(source, name)

    return read


def build_schema() -> strawberry.Schema:
    settings = get_settings()
    # Built once: the validation cache is keyed by the rule classes, so rules made per
    # request would never hit it.
    rules = [
        create_depth_validator(settings.max_query_depth, None),
        create_alias_validator(30),
        cost_limit_rule(settings.max_query_cost),
    ]
    return CrmSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=ExecutionContext,
        config=StrawberryConfig(default_resolver=resolve_attribute),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=5000),
            lambda: AddValidationRules(rules),
            IntrospectionSetting,
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            ErrorCodes,
        ],
    )


schema = build_schema()
