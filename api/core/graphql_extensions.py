"""Schema extensions: error codes on every error (R20) and a cost limit checked before execution."""

from __future__ import annotations

import logging
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
)
from strawberry.extensions import MaskErrors

from api.core.errors import AppError
from api.core.pagination import MAX_PAGE_SIZE

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
        if error.path is None:
            # Parse, validation or variable-coercion errors: the document or variables are wrong.
            return self._rebuild(error, error.message, {"code": "BAD_USER_INPUT"})
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path),
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


# A list field without `first` is counted as this many items.
UNPAGED_LIST_ESTIMATE = 20


def cost_limit_rule(max_cost: int) -> type[ValidationRule]:
    """A validation rule refusing documents whose estimated result size exceeds `max_cost`:
    each field costs 1, times the product of the `first` arguments above it."""

    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments = {
                d.name.value: d
                for d in context.document.definitions
                if d.kind == "fragment_definition"
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = self._cost(node.selection_set, 1, set())
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"Query is too expensive: estimated cost {cost} exceeds {max_cost}; "
                        "ask for smaller pages or fewer nested lists",
                        node,
                    )
                )

        def _cost(self, selection_set: SelectionSetNode | None, factor: int, seen: set[str]) -> int:
            if selection_set is None:
                return 0
            total = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    total += factor
                    if selection.selection_set is not None:
                        child = factor * self._page(selection)
                        total += self._cost(selection.selection_set, child, seen)
                elif isinstance(selection, InlineFragmentNode):
                    total += self._cost(selection.selection_set, factor, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is not None and name not in seen:
                        total += self._cost(fragment.selection_set, factor, seen | {name})
                if total > max_cost:
                    break
            return total

        @staticmethod
        def _page(field: FieldNode) -> int:
            for arg in field.arguments or ():
                if arg.name.value == "first":
                    if isinstance(arg.value, IntValueNode):
                        return max(1, min(int(arg.value.value), MAX_PAGE_SIZE))
                    if isinstance(arg.value, VariableNode):
                        return MAX_PAGE_SIZE
            return 1 if field.name.value not in _UNPAGED_LISTS else UNPAGED_LIST_ESTIMATE

    return CostLimit


# Connections carry `first`; these plain lists do not.
_UNPAGED_LISTS = frozenset(
    {"users", "statusHistory", "audiences", "auditRuns", "errors", "statusBreakdown"}
)
