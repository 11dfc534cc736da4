"""GraphQL pieces every domain uses: the Node interface and PageInfo."""

from __future__ import annotations

from typing import Any

import strawberry
from tortoise.models import Model

from api.core import ids


@strawberry.interface
class Node:
    id: strawberry.ID


def resolve_attribute(obj: Any, name: str) -> Any:
    """The schema's default resolver: attributes as they are, except that an ORM row's `id`
    is its opaque global id (`Contact:42`, encoded). Keeping `id` a plain field keeps it on
    Strawberry's fast path for fields without a resolver."""
    if name == "id" and isinstance(obj, Model):
        return ids.encode(type(obj).__name__, obj.pk)
    return getattr(obj, name)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def rows_of(model: type) -> classmethod:
    """`is_type_of` for a GraphQL type whose roots are ORM rows of `model`."""

    def is_type_of(cls: type, obj: object, info: object) -> bool:
        return isinstance(obj, (cls, model))

    return classmethod(is_type_of)


def selects(info: Any, *path: str) -> bool:
    """Whether the current field's selection asks for `path` (fragments included)."""

    def walk(selections: list[Any], rest: tuple[str, ...]) -> bool:
        for selection in selections:
            name = getattr(selection, "name", None)
            if name is None or not hasattr(selection, "alias"):
                # A fragment: its selections stand in for the spread.
                if walk(selection.selections, rest):
                    return True
            elif name == rest[0] and (len(rest) == 1 or walk(selection.selections, rest[1:])):
                return True
        return False

    return any(walk(field.selections, path) for field in info.selected_fields)
