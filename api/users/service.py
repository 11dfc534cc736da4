"""User operations (R4, and the user triggers of R6)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import anyio
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction
from api.contacts import ownership
from api.core import ids, policy, validation
from api.core.errors import BadInput, Conflict, Forbidden, NotFound
from api.users import passwords
from api.users.auth import hash_password, verify_password
from api.users.models import Role, User


@dataclass
class UserChanges:
    """A UserPatch: None means "leave as is" (crm_agent_id "" clears it)."""

    name: str | None = None
    role: Role | None = None
    crm_agent_id: str | None = None
    active: bool | None = None
    office_wide_access: bool | None = None
    can_export: bool | None = None
    can_delete: bool | None = None
    # Admins setting another user's password (which revokes that user's tokens).
    password: str | None = None

    def given(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}


# What USER_CHANGED names when it changes; the role and flags with their new value too.
_AUDITED = (
    "name",
    "crm_agent_id",
    "role",
    "active",
    "office_wide_access",
    "can_export",
    "can_delete",
)
_AUDITED_VALUES = frozenset({"role", "active", "office_wide_access", "can_export", "can_delete"})


def _audited(user: User | None) -> dict[str, object]:
    return {name: getattr(user, name) if user else None for name in _AUDITED}


async def list_users(actor: User) -> list[User]:
    return await User.filter(office_id=actor.office_id).order_by("name", "id")


async def get_user(actor: User, user_id: int) -> User:
    user = await User.get_or_none(id=user_id, office_id=actor.office_id)
    if user is None:
        raise NotFound("User")
    return user


async def _require_agent_id_free(office_id: int, crm_agent_id: str, except_id: int | None) -> None:
    taken = User.filter(office_id=office_id, crm_agent_id=crm_agent_id)
    if except_id is not None:
        taken = taken.exclude(id=except_id)
    if await taken.exists():
        raise Conflict("Another user of this office has this crmAgentId", field="crmAgentId")


async def create_user(
    actor: User | None,
    *,
    office_id: int,
    email: str,
    name: str,
    password: str,
    role: Role,
    crm_agent_id: str | None = None,
    office_wide_access: bool = False,
    can_export: bool = False,
    can_delete: bool = False,
) -> User:
    """Create a user (admins; `actor` None only for bootstrap). A matching crmAgentId
    receives its contacts at once (R6)."""
    if actor is not None and not policy.may_manage_users(actor):
        raise Forbidden("Only admins create users")
    clean_email = validation.email(email, "email", required=True)
    name = validation.required_text(name, "name", max_length=200)
    passwords.check(password, email=email)
    crm_agent_id = validation.text(crm_agent_id, "crmAgentId", max_length=100)
    if await User.exists(email=clean_email):
        raise Conflict("A user with this email already exists", field="email")
    async with in_transaction():
        if crm_agent_id:
            await _require_agent_id_free(office_id, crm_agent_id, None)
        try:
            user = await User.create(
                office_id=office_id,
                email=clean_email,
                name=name,
                password_hash=hash_password(password),
                role=role,
                crm_agent_id=crm_agent_id,
                office_wide_access=office_wide_access,
                can_export=can_export,
                can_delete=can_delete,
            )
        except IntegrityError:
            raise Conflict("A user with this email or crmAgentId already exists") from None
        await ownership.on_user_changed(user, old_crm_agent_id=None, was_active=False)
        if actor is not None:
            await auditlog.record(
                actor,
                AuditAction.USER_CREATED,
                target=ids.encode("User", user.id),
                details=auditlog.changes(_audited(None), _audited(user), values_of=_AUDITED_VALUES),
            )
    return user


async def update_user(actor: User, user_id: int, changes: UserChanges) -> User:
    """Change a user (R4): admins change anyone's rights; a user only their own name."""
    target = await get_user(actor, user_id)
    policy.require_user_patch_allowed(actor, target, changes.given())
    name = validation.text(changes.name, "name", max_length=200)
    if changes.name is not None and name is None:
        raise BadInput("`name` must not be blank", field="name")
    async with in_transaction():
        target = await User.select_for_update().get(id=user_id)
        old_agent_id, was_active = target.crm_agent_id, target.active
        before = _audited(target)
        if name is not None:
            target.name = name
        if changes.crm_agent_id is not None:
            agent_id = validation.text(changes.crm_agent_id, "crmAgentId", max_length=100)
            if agent_id:
                await _require_agent_id_free(target.office_id, agent_id, target.id)
            target.crm_agent_id = agent_id
        for flag in ("role", "active", "office_wide_access", "can_export", "can_delete"):
            value = getattr(changes, flag)
            if value is not None:
                setattr(target, flag, value)
        if changes.password is not None:
            passwords.check(changes.password, email=target.email)
            target.password_hash = hash_password(changes.password)
            target.token_version += 1
        await target.save()
        await ownership.on_user_changed(
            target, old_crm_agent_id=old_agent_id, was_active=was_active
        )
        await auditlog.record_changes(
            actor,
            AuditAction.USER_CHANGED,
            target=ids.encode("User", target.id),
            before=before,
            after=_audited(target),
            values_of=_AUDITED_VALUES,
        )
        if changes.password is not None:
            # Never the password itself: the entry says only that it was set.
            await auditlog.record(
                actor, AuditAction.PASSWORD_RESET, target=ids.encode("User", target.id)
            )
    return target


async def change_password(actor: User, current: str, new: str) -> User:
    """The caller's own password, given the current one. Every token issued before stops
    working at once; the caller gets a fresh one from the mutation."""
    if not await anyio.to_thread.run_sync(verify_password, actor.password_hash, current):
        raise BadInput("The current password is wrong", field="currentPassword")
    passwords.check(new, "newPassword", email=actor.email)
    if new == current:
        raise BadInput("Choose a password different from the current one", field="newPassword")
    password_hash = await anyio.to_thread.run_sync(hash_password, new)
    await User.filter(id=actor.id).update(
        password_hash=password_hash, token_version=F("token_version") + 1
    )
    return await User.get(id=actor.id)


async def logout(actor: User) -> None:
    """Revoke every token of the caller (all their sessions) at once."""
    await User.filter(id=actor.id).update(token_version=F("token_version") + 1)
