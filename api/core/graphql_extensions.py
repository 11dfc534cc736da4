"""Schema extensions: error codes on every error (R20), SERVICE_UNAVAILABLE while the database
cannot be reached, introspection as GRAPHQL_INTROSPECTION says, and a cost limit checked
before execution."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors, SchemaExtension

from api.core import database
from api.core.errors import AppError, ServiceUnavailable
from api.core.pagination import MAX_PAGE_SIZE
from api.core.settings import get_settings

log = logging.getLogger("api.graphql")

INTERNAL_MESSAGE = "Internal server error"


class ErrorCodes(MaskErrors):
    """Every error leaves with `extensions.code`; unexpected ones leave masked and are logged."""

    def __init__(self) -> None:
        super().__init__(error_message=INTERNAL_MESSAGE)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._with_code(error) for error in errors]

    def _with_code(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, AppError):
            return self._rebuild(error, original.message, original.extensions)
        if error.extensions and "code" in error.extensions:
            return error  # permission classes set their own code
        if original is not None and database.is_unavailable(original):
            # An outage, not a bug: one line, not a traceback per request while it lasts.
            log.warning("database unavailable in %s: %s", _path(error), type(original).__name__)
            unavailable = ServiceUnavailable()
            return self._rebuild(error, unavailable.message, unavailable.extensions)
        if error.path is None:
            # Parse, validation or variable-coercion errors: the document or variables are wrong.
            return self._rebuild(error, error.message, {"code": "BAD_USER_INPUT"})
        log.error(
            "unexpected error in %s",
            _path(error),
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        return self._rebuild(error, INTERNAL_MESSAGE, {"code": "INTERNAL_SERVER_ERROR"})

    @staticmethod
    def _rebuild(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions=extensions,
        )


def _path(error: GraphQLError) -> str:
    return ".".join(str(p) for p in error.path or ())


class IntrospectionSetting(SchemaExtension):
    """Refuses `__schema` and `__type` (BAD_USER_INPUT) while GRAPHQL_INTROSPECTION is off;
    `__typename` stays. Read per operation, not when the schema is built at import, so a test
    can turn it on for its own requests; the settings are cached, so this costs nothing."""

    def on_operation(self) -> Iterator[None]:
        if not get_settings().graphql_introspection:
            context = self.execution_context
            # The same rule class each time: the validation cache keeps hitting.
            context.validation_rules = (*context.validation_rules, NoSchemaIntrospectionCustomRule)
        yield


# A plain list field (no `first` argument) is counted as this many items.
UNPAGED_LIST_ESTIMATE = 20


def cost_limit_rule(max_cost: int) -> type[ValidationRule]:
    """A validation rule refusing documents whose estimated result size exceeds `max_cost`:
    each field costs 1, times the page sizes of the connections above it (the `first`
    given, else the argument's default; a variable counts as the largest page)."""

    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.schema = context.schema
            self.fragments = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            root = self.schema.get_root_type(node.operation)
            cost = self._cost(node.selection_set, root, 1, frozenset())
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"Query is too expensive: estimated cost {cost} exceeds {max_cost}; "
                        "ask for smaller pages or fewer nested lists",
                        node,
                    )
                )

        def _cost(
            self,
            selection_set: SelectionSetNode | None,
            parent: GraphQLNamedType | None,
            factor: int,
            seen: frozenset[str],
        ) -> int:
            if selection_set is None:
                return 0
            total = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    total += factor
                    if selection.name.value.startswith("__"):
                        # Introspection (GraphiQL, code generators) answers with the schema,
                        # whose size no request changes: its lists are not pages of rows.
                        continue
                    field_def = None
                    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                        field_def = parent.fields.get(selection.name.value)
                    if selection.selection_set is not None:
                        child_type = get_named_type(field_def.type) if field_def else None
                        child = factor * self._page(selection, field_def)
                        total += self._cost(selection.selection_set, child_type, child, seen)
                elif isinstance(selection, InlineFragmentNode):
                    cond = selection.type_condition
                    target = self.schema.get_type(cond.name.value) if cond else parent
                    total += self._cost(selection.selection_set, target, factor, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is not None and name not in seen:
                        target = self.schema.get_type(fragment.type_condition.name.value)
                        total += self._cost(fragment.selection_set, target, factor, seen | {name})
                if total > max_cost:
                    break
            return total

        @staticmethod
        def _page(node: FieldNode, field_def: GraphQLField | None) -> int:
            for arg in node.arguments or ():
                if arg.name.value == "first":
                    if isinstance(arg.value, IntValueNode):
                        return max(1, min(int(arg.value.value), MAX_PAGE_SIZE))
                    if isinstance(arg.value, VariableNode):
                        return MAX_PAGE_SIZE
            if field_def is not None and "first" in field_def.args:
                default = field_def.args["first"].default_value
                return default if isinstance(default, int) and default > 0 else MAX_PAGE_SIZE
            if node.name.value == "edges":
                return 1  # the connection above already counted its page
            if field_def is not None and is_list_type(get_nullable_type(field_def.type)):
                return UNPAGED_LIST_ESTIMATE
            return 1

    return CostLimit
