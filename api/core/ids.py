"""Opaque global ids: `Contact:42` in URL-safe base64, so ids of different types never mix."""

from __future__ import annotations

import base64
import binascii

from api.core.errors import BadInput, NotFound


def encode(kind: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{pk}".encode()).decode().rstrip("=")


def decode(kind: str, value: str, *, field: str = "id") -> int:
    """The primary key behind a global id of `kind`; a well-formed id of another kind is NOT_FOUND."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise BadInput("Malformed id", field=field)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        found_kind, _, pk_text = raw.partition(":")
        pk = int(pk_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("Malformed id", field=field) from None
    if found_kind != kind or pk <= 0 or pk >= 2**63:
        raise NotFound(kind)
    return pk


def decode_many(kind: str, values: list[str], *, field: str) -> list[int]:
    return [decode(kind, v, field=field) for v in values]
