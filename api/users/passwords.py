"""The password policy: 10 to 256 characters, not a common password (nor one with a few
digits or symbols added to one), and not the account's own email address."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from api.core import validation
from api.core.errors import BadInput

_LIST = Path(__file__).with_name("common_passwords.txt")
# What people add to a common word to pass a rule: digits and symbols at either end.
_DECORATION = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@cache
def common_passwords() -> frozenset[str]:
    lines = _LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check(value: str, field: str = "password", *, email: str | None = None) -> str:
    """The password if the policy accepts it; BAD_USER_INPUT naming `field` otherwise."""
    validation.password(value, field)
    lowered = value.lower()
    stem = _DECORATION.sub("", lowered)
    common = common_passwords()
    if lowered in common or (len(stem) >= 4 and stem in common):
        raise BadInput(f"`{field}` is too common; choose a less guessable one", field=field)
    if email and email.lower().split("@")[0] in lowered and len(email.split("@")[0]) >= 4:
        raise BadInput(f"`{field}` must not contain the email address", field=field)
    return value
