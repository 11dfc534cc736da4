"""Signed download links of CSV exports (R12).

A link is `PUBLIC_BASE_URL/exports/<job id>/download?token=<office>.<expiry>.<signature>`:
the signature is an HMAC-SHA256, under a key derived from SECRET_KEY for this use alone,
of the job id, the office id and the expiry (Unix seconds). Browsers open links without a
login, so the token carries everything the route needs to decide: changing any part of it
breaks the signature, a token past its expiry is refused, and a token made for one
office's job names that office and that job, so it fetches nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

from api.core import ids
from api.core.settings import get_settings

ROUTE = "/exports/{job_id}/download"
# office id, expiry, signature (43 characters of unpadded URL-safe base64 for 32 bytes)
_TOKEN = re.compile(r"^([1-9][0-9]{0,18})\.([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})$")


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    # A key for download links only: a signature made for anything else never verifies here.
    return hmac.new(secret.encode(), b"crm export download links v1", hashlib.sha256).digest()


def _signature(job_id: int, office_id: int, expires: int) -> str:
    message = f"export-download|{job_id}|{office_id}|{expires}".encode()
    digest = hmac.new(_key(get_settings().secret_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(job_id: int, office_id: int, expires_at: datetime) -> str:
    """The token for one job of one office, valid until `expires_at`."""
    expires = int(expires_at.timestamp())
    return f"{office_id}.{expires}.{_signature(job_id, office_id, expires)}"


def read_token(job_id: int, token: str | None, *, now: datetime | None = None) -> int | None:
    """The office id a genuine, unexpired token for `job_id` names; None for anything else."""
    match = _TOKEN.match(token or "")
    if match is None:
        return None
    office_id, expires, signature = int(match[1]), int(match[2]), match[3]
    expected = _signature(job_id, office_id, expires)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    if expires <= (now or datetime.now(UTC)).timestamp():
        return None
    return office_id


def download_url(
    job_id: int, office_id: int, *, now: datetime | None = None
) -> tuple[str, datetime]:
    """A fresh link to the job's file and when it expires (EXPORT_LINK_TTL_MINUTES from now)."""
    settings = get_settings()
    expires_at = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(
        minutes=settings.export_link_ttl_minutes
    )
    path = ROUTE.format(job_id=quote(ids.encode("ExportJob", job_id)))
    token = make_token(job_id, office_id, expires_at)
    return f"{settings.public_base_url}{path}?token={token}", expires_at
