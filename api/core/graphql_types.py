"""GraphQL pieces every domain uses: the Node interface and PageInfo."""

from __future__ import annotations

import strawberry


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def rows_of(model: type) -> classmethod:
    """`is_type_of` for a GraphQL type whose roots are ORM rows of `model`."""

    def is_type_of(cls: type, obj: object, info: object) -> bool:
        return isinstance(obj, (cls, model))

    return classmethod(is_type_of)
