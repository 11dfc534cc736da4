"""Keyset (cursor) pagination: a page costs one indexed range scan whatever its depth."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from api.core.errors import BadInput

MAX_PAGE_SIZE = 100


def page_size(first: int | None, *, default: int = 50) -> int:
    size = default if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadInput(f"`first` must be between 1 and {MAX_PAGE_SIZE}", field="first")
    return size


def encode_cursor(*key: Any) -> str:
    if len(key) == 1 and type(key[0]) is int:
        # The common case (an id), spelled as json.dumps would, without its cost per edge.
        return base64.urlsafe_b64encode(b"[%d]" % key[0]).decode()
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The sort key a cursor carries; anything that is not one of ours is BAD_USER_INPUT."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadInput("Malformed cursor", field="after") from None
    if not isinstance(key, list) or len(key) != arity:
        raise BadInput("Malformed cursor", field="after")
    return key


def decode_id_cursor(cursor: str | None) -> int | None:
    key = decode_cursor(cursor, 1)
    if key is None:
        return None
    if not is_db_id(key[0]):
        raise BadInput("Malformed cursor", field="after")
    return key[0]


def is_db_id(value: Any) -> bool:
    """A value that can be a primary key (a positive 64-bit integer)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


T = TypeVar("T")


class LazyPage(Generic[T]):
    """A keyset page whose rows and count are each queried only when first asked for: a
    client asking only for `totalCount` runs one statement, and edges and pageInfo, which
    resolve concurrently, share one query."""

    def __init__(self, *, first: int, after: Any | None) -> None:
        self.first = first
        self.after = after
        self._rows: asyncio.Future[tuple[list[T], bool]] | None = None

    async def fetch(self) -> list[T]:
        """Up to `first + 1` rows after the cursor, in page order."""
        raise NotImplementedError

    async def count(self) -> int:
        raise NotImplementedError

    async def rows(self) -> tuple[list[T], bool]:
        """The rows of the page, and whether another page follows."""
        if self._rows is None:
            self._rows = asyncio.ensure_future(self._split())
        return await self._rows

    async def _split(self) -> tuple[list[T], bool]:
        rows = await self.fetch()
        return rows[: self.first], len(rows) > self.first
