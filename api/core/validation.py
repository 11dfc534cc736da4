"""Input checks shared by every mutation: each failure names the offending field (R20)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from api.core.errors import BadInput

_PHONE = re.compile(r"^\+?[0-9 ()./-]{3,30}(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Clocks drift: an activity logged "now" by a client a little ahead of us is not in the future.
FUTURE_TOLERANCE = timedelta(minutes=5)
# A subset of what email_validator accepts unchanged but for case: a dot-atom local part of
# common characters, then hostname labels (no "--" anywhere, so no IDNA or R-LDH labels), the
# last one starting and ending with a letter. Anything else takes the full check.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9]|-(?!-)){0,61}(?<!-)\.)+"
    r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){0,61}(?<![-0-9])"
)
# Special-use names email_validator refuses: the fast path takes none of their addresses
# (should a later list name a dotted domain, the fast path steps aside altogether).
_RESERVED_TLDS = frozenset(d.lower() for d in SPECIAL_USE_DOMAIN_NAMES)
_FAST_EMAIL = not any("." in d for d in _RESERVED_TLDS)


def text(value: str | None, field: str, *, max_length: int, required: bool = False) -> str | None:
    """Stripped text without control characters; blank becomes None unless required."""
    if value is None:
        if required:
            raise BadInput(f"`{field}` is required", field=field)
        return None
    value = value.strip()
    if not value:
        if required:
            raise BadInput(f"`{field}` must not be blank", field=field)
        return None
    if len(value) > max_length:
        raise BadInput(f"`{field}` is longer than {max_length} characters", field=field)
    if _CONTROL.search(value):
        raise BadInput(f"`{field}` contains control characters", field=field)
    _require_encodable(value, field)
    return value


def _require_encodable(value: str, field: str) -> None:
    # JSON can carry lone UTF-16 surrogates; no database or hash function takes them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"`{field}` is not valid Unicode text", field=field) from None


def usable_credential(value: str, *, max_length: int) -> bool:
    """Whether a login credential can be looked up at all (else it is simply wrong)."""
    if len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def required_text(value: str | None, field: str, *, max_length: int) -> str:
    result = text(value, field, max_length=max_length, required=True)
    assert result is not None
    return result


def email(value: str | None, field: str = "email", *, required: bool = False) -> str | None:
    value = text(value, field, max_length=254, required=required)
    if value is None:
        return None
    if (
        _FAST_EMAIL
        and _PLAIN_EMAIL.fullmatch(value)
        and value.rpartition(".")[2].lower() not in _RESERVED_TLDS
    ):
        # Fast path (bulk imports check ~10^5 addresses a second): a plain ASCII address
        # that email_validator accepts as is; it would normalise it to the same lower case.
        return value.lower()
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise BadInput(f"`{field}` is not a valid email address", field=field) from None


def phone(value: str | None, field: str = "phone") -> str | None:
    value = text(value, field, max_length=40)
    if value is not None and not _PHONE.match(value):
        raise BadInput(f"`{field}` is not a valid phone number", field=field)
    return value


def password(value: str, field: str = "password") -> str:
    if not 10 <= len(value) <= 256:
        raise BadInput(f"`{field}` must be 10 to 256 characters long", field=field)
    _require_encodable(value, field)
    return value


def past_or_now(value: datetime | None, field: str) -> datetime:
    now = datetime.now(UTC)
    if value is None:
        return now
    if value.tzinfo is None:
        raise BadInput(f"`{field}` needs a time zone offset", field=field)
    if value > now + FUTURE_TOLERANCE:
        raise BadInput(f"`{field}` must not be in the future", field=field)
    if value.year < 1900:
        raise BadInput(f"`{field}` is too far in the past", field=field)
    # Stored in UTC: SQLite compares times as text, so every stored time shares one offset.
    return value.astimezone(UTC)


def int_range(value: int | None, field: str, *, low: int, high: int) -> int | None:
    if value is not None and not low <= value <= high:
        raise BadInput(f"`{field}` must be between {low} and {high}", field=field)
    return value


# What `email` refuses, as patterns SQL can apply to a million rows at once: no local part or dotted domain, spaces, two @, empty
# labels, labels starting or ending with a hyphen, underscores in the domain.
_INVALID_EMAIL_PATTERNS = (
    "%..%",
    ".%",
    "%.",
    "%.@%",
    "%@.%",
    "%@-%",
    "%-.%",
    "%.-%",
    "%-",
    "% %",
    "%@%@%",
)


def invalid_email_sql(column: str) -> str:
    """A SQL condition true where `column` holds an address `email` would refuse."""
    return " OR ".join(
        [f"{column} NOT LIKE '%_@_%._%'", f"{column} LIKE '%@%!_%' ESCAPE '!'"]
        + [f"{column} LIKE '{pattern}'" for pattern in _INVALID_EMAIL_PATTERNS]
    )
