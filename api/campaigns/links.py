"""Signed links in campaign messages (R17): the open pixel, tracked clicks, unsubscribe.

A token is `<delivery id>.<signature>` (clicks: `<delivery id>.<link number>.<signature>`);
the signature is a keyed BLAKE2b MAC (128 bits), under a key derived from SECRET_KEY for
these links alone, of the purpose, the delivery id and the link number. Nobody can make a
token for another delivery, link or purpose, and an altered one does not verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache

from api.core.settings import get_settings

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
ROUTES = {OPEN: "/t/o/{token}", CLICK: "/t/c/{token}", UNSUBSCRIBE: "/u/{token}"}

_TOKEN = re.compile(r"^([1-9][0-9]{0,18})(?:\.([0-9]{1,4}))?\.([A-Za-z0-9_-]{22})$")


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"crm campaign links v1", hashlib.sha256).digest()


def _signature(purpose: str, delivery_id: int, link: int | None) -> str:
    # BLAKE2b's keyed mode is a MAC in one call: a message carries half a dozen of these.
    message = f"{purpose}|{delivery_id}|{'' if link is None else link}".encode()
    digest = hashlib.blake2b(message, key=_key(get_settings().secret_key), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(purpose: str, delivery_id: int, link: int | None = None) -> str:
    sig = _signature(purpose, delivery_id, link)
    return f"{delivery_id}.{sig}" if link is None else f"{delivery_id}.{link}.{sig}"


def read_token(purpose: str, token: str | None) -> tuple[int, int | None] | None:
    """(delivery id, link number or None) of a genuine token for `purpose`; None otherwise."""
    match = _TOKEN.match(token or "")
    if match is None:
        return None
    delivery_id = int(match[1])
    link = int(match[2]) if match[2] is not None else None
    if (link is None) != (purpose != CLICK):
        return None
    expected = _signature(purpose, delivery_id, link)
    if not hmac.compare_digest(match[3].encode(), expected.encode()):
        return None
    return delivery_id, link


def url(purpose: str, delivery_id: int, link: int | None = None) -> str:
    """The absolute link under PUBLIC_BASE_URL."""
    base = get_settings().public_base_url.rstrip("/")
    return base + ROUTES[purpose].format(token=make_token(purpose, delivery_id, link))
