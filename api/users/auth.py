"""Passwords (argon2), bearer tokens (signed JWT) and login throttling."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.core import database, validation
from api.core.errors import RateLimited, Unauthenticated
from api.core.ratelimit import failure_counter
from api.core.settings import get_settings
from api.users.models import User

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("not a password anyone has")
_ALGORITHM = "HS256"
_AUDIENCE = "crm-api"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(user: User) -> str:
    now = datetime.now(UTC)
    settings = get_settings()
    claims = {
        "sub": str(user.id),
        "off": str(user.office_id),
        "ver": user.token_version,
        "aud": _AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=settings.token_ttl_minutes),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=_ALGORITHM)


async def user_for_token(token: str) -> User:
    """The active user a token names; raises UNAUTHENTICATED for anything else."""
    try:
        claims = jwt.decode(
            token,
            get_settings().secret_key,
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["exp", "sub", "off", "ver"]},
        )
        user_id, office_id, version = int(claims["sub"]), int(claims["off"]), int(claims["ver"])
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired; log in again") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthenticated("The token is not valid") from None
    return await _holder(user_id, office_id, version)


async def _holder(user_id: int, office_id: int, version: int) -> User:
    # Checked on every request, so deactivation, logout and a password change lock the
    # tokens issued before out at once.
    found = await database.by_id(User, [user_id])
    user = found[0] if found else None
    if (
        user is None
        or user.office_id != office_id
        or not user.active
        or user.token_version != version
    ):
        raise Unauthenticated("The token is not valid")
    return user


async def recheck(user: User) -> User:
    """The caller as the database has them now, under the rule a token is checked by: for
    what outlives one request (a subscription)."""
    return await _holder(user.id, user.office_id, user.token_version)


def _account_key(email: str) -> str:
    # Hashed so that addresses do not sit in Redis in clear.
    return "acct:" + hashlib.sha256(email.encode()).hexdigest()[:32]


async def login(email: str, password: str, client_address: str) -> tuple[str, User]:
    """Check a password; repeated failures for one account or one address answer RATE_LIMITED."""
    settings = get_settings()
    counter = failure_counter()
    window = settings.login_failure_window_seconds
    email = email.strip().lower()
    email_usable = validation.usable_credential(email, max_length=254)
    password_usable = validation.usable_credential(password, max_length=1024)
    # Failures are counted per address, and per account for an email an account can have.
    limits = {f"addr:{client_address}": settings.login_max_failures_per_address}
    if email_usable:
        limits[_account_key(email)] = settings.login_max_failures_per_account
    for key, limit in limits.items():
        if await counter.count(key, window) >= limit:
            raise RateLimited("Too many failed logins; try again later")
    user = await User.get_or_none(email=email) if email_usable else None
    # argon2 takes a fifth of a second of CPU by design: in a thread, so the event loop
    # keeps serving everyone else's requests meanwhile.
    ok = password_usable and await anyio.to_thread.run_sync(
        verify_password, user.password_hash if user else _DUMMY_HASH, password
    )
    if user is None or not ok or not user.active:
        for key in limits:
            await counter.hit(key, window)
        raise Unauthenticated("Wrong email or password")
    await counter.reset(_account_key(email))
    return issue_token(user), user
