"""Audience operations (R13): system audiences made on first use, custom audiences made from a
contact filter, and an audience's live members. Every public operation takes the acting user
and applies the rules itself; GraphQL resolvers and the campaign workers only call these."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from api.audiences.models import Audience, AudienceKind, SendAccount
from api.campaigns.models import Campaign, CampaignState
from api.contacts.filters import ContactFilterSpec, filter_q
from api.contacts.models import Contact, ContactStatus
from api.core import policy, validation
from api.core.database import dialect, execute
from api.core.errors import BadInput, Conflict, Forbidden, NotFound
from api.users.models import User

MAX_NAME_LENGTH = 200
# An advisory lock namespace (PostgreSQL): an office's custom audiences are created and renamed
# one at a time, so two requests cannot both find a name free. SQLite runs one transaction at a
# time anyway.
_NAME_LOCK_NAMESPACE = 0x0A0D


@dataclass(frozen=True)
class SystemAudience:
    key: str
    name: str
    spec: ContactFilterSpec


# Defined here rather than stored, so that a definition can change with the code; listed in
# this order. A user account's audiences hold only the holder's contacts (see `members`), so
# "My contacts" needs no condition of its own.
SYSTEM_AUDIENCES: dict[SendAccount, tuple[SystemAudience, ...]] = {
    SendAccount.USER: (SystemAudience("mine", "My contacts", ContactFilterSpec()),),
    SendAccount.OFFICE: (
        SystemAudience("all", "All contacts", ContactFilterSpec()),
        SystemAudience("unassigned", "Unassigned contacts", ContactFilterSpec(unassigned=True)),
        SystemAudience(
            "inactive", "Inactive contacts", ContactFilterSpec(status=(ContactStatus.INACTIVE,))
        ),
        SystemAudience("at_risk", "At risk", ContactFilterSpec(at_risk=True)),
        SystemAudience("no_status", "No status", ContactFilterSpec(no_status=True)),
    ),
}
_SYSTEM_BY_KEY = {s.key: s for group in SYSTEM_AUDIENCES.values() for s in group}
_SYSTEM_ORDER = {s.key: i for group in SYSTEM_AUDIENCES.values() for i, s in enumerate(group)}
# Campaigns still in the workers' hands: their audience must stay as it is.
_ACTIVE_CAMPAIGN_STATES = (CampaignState.SCHEDULED, CampaignState.SENDING)


def account_key(account: SendAccount, holder_id: int | None) -> str:
    """The key that names one account of an office: "office" or "user:<id>"."""
    if account == SendAccount.OFFICE:
        return "office"
    if holder_id is None:
        raise ValueError("a user account needs its holder")
    return f"user:{holder_id}"


def _holder_of(actor: User, account: SendAccount) -> int | None:
    """Who holds the account `actor` means: the actor for USER, nobody for OFFICE."""
    return None if account == SendAccount.OFFICE else actor.id


# --- system audiences ------------------------------------------------------------------------


async def ensure_system_audiences(
    office_id: int, account: SendAccount, holder_id: int | None
) -> None:
    """Create the account's missing system audiences. Idempotent and safe when several
    requests or workers do it at once: the unique (office, account_key, system_key) index
    lets exactly one insert of each win and the others are ignored."""
    key = account_key(account, holder_id)
    wanted = SYSTEM_AUDIENCES[account]
    present = set(
        await Audience.filter(
            office_id=office_id, account_key=key, kind=AudienceKind.SYSTEM
        ).values_list("system_key", flat=True)
    )
    missing = [s for s in wanted if s.key not in present]
    if not missing:
        return
    await Audience.bulk_create(
        [
            Audience(
                office_id=office_id,
                account=account,
                owner_id=holder_id,
                account_key=key,
                kind=AudienceKind.SYSTEM,
                system_key=s.key,
                name=s.name,
                conditions={},
            )
            for s in missing
        ],
        ignore_conflicts=True,
    )


async def system_audience(
    office_id: int, account: SendAccount, holder_id: int | None, system_key: str
) -> Audience:
    """One system audience of an account, created first if need be."""
    if system_key not in {s.key for s in SYSTEM_AUDIENCES[account]}:
        raise ValueError(f"no system audience {system_key!r} in a {account} account")
    key = account_key(account, holder_id)
    found = await Audience.get_or_none(office_id=office_id, account_key=key, system_key=system_key)
    if found is None:
        await ensure_system_audiences(office_id, account, holder_id)
        found = await Audience.get(office_id=office_id, account_key=key, system_key=system_key)
    return found


# --- reading ---------------------------------------------------------------------------------


def _listing_order(audience: Audience) -> tuple[int, int, str, int]:
    if audience.kind == AudienceKind.SYSTEM:
        return (0, _SYSTEM_ORDER.get(audience.system_key or "", 99), "", audience.id)
    return (1, 0, audience.name.casefold(), audience.id)


async def list_audiences(actor: User, account: SendAccount | None) -> list[Audience]:
    """The audiences of the actor's own account (None or USER) or of the office-wide one
    (OFFICE: admins and office-wide users, else FORBIDDEN): system ones first, in their
    fixed order, then custom ones by name. Deleted ones are left out."""
    account = account or SendAccount.USER
    if account == SendAccount.OFFICE and not policy.may_use_office_account(actor):
        raise Forbidden("The office-wide account needs admin or office-wide access")
    holder_id = _holder_of(actor, account)
    key = account_key(account, holder_id)

    async def live() -> list[Audience]:
        return await Audience.filter(
            office_id=actor.office_id, account_key=key, deleted_at__isnull=True
        )

    rows = await live()
    present = {a.system_key for a in rows if a.kind == AudienceKind.SYSTEM}
    if any(s.key not in present for s in SYSTEM_AUDIENCES[account]):
        await ensure_system_audiences(actor.office_id, account, holder_id)
        rows = await live()
    return sorted(rows, key=_listing_order)


async def get_visible(actor: User, audience_id: int, *, include_deleted: bool = False) -> Audience:
    """The audience if `actor` may see it, else NOT_FOUND exactly as for a missing one (R1)."""
    return await _visible(actor, audience_id, include_deleted=include_deleted)


async def _visible(
    actor: User, audience_id: int, *, include_deleted: bool = False, lock: bool = False
) -> Audience:
    query = Audience.filter(id=audience_id, office_id=actor.office_id)
    if lock:
        # Held to the end of the transaction (PostgreSQL): scheduling a campaign that takes
        # the same row lock cannot start on an audience while it is being deleted.
        query = query.select_for_update()
    audience = await query.first()
    if (
        audience is None
        or (audience.deleted_at is not None and not include_deleted)
        or not policy.may_see_account_item(
            actor, audience.office_id, audience.account, audience.owner_id
        )
    ):
        raise NotFound("Audience")
    return audience


def spec_of(audience: Audience) -> ContactFilterSpec:
    """The audience's filter: a system audience's from the code, a custom one's as stored."""
    if audience.kind == AudienceKind.SYSTEM:
        return _SYSTEM_BY_KEY[audience.system_key or ""].spec
    return ContactFilterSpec.from_dict(audience.conditions or {})


def members(audience: Audience, *, include_archived: bool = False) -> QuerySet[Contact]:
    """The contacts the audience holds now: its office's contacts matching its filter, only
    the holder's in a user account, archived ones only when asked for (R11: archived
    contacts belong to no audience, but a send counts them as skipped)."""
    spec = replace(spec_of(audience), include_archived=include_archived)
    query = Contact.filter(office_id=audience.office_id).filter(filter_q(spec))
    if audience.account == SendAccount.USER:
        # A user account holds that user's contacts, whatever the filter says (R14).
        query = query.filter(owner_id=audience.owner_id)
    return query


async def size(audience: Audience) -> int:
    return await members(audience).count()


async def owner_breakdown(audience: Audience) -> list[tuple[int | None, int]]:
    """(owner id or None for unassigned, member count) per owner, largest first."""
    rows = (
        await members(audience)
        .group_by("owner_id")
        .annotate(n=Count("id"))
        .values_list("owner_id", "n")
    )
    return sorted(
        ((owner_id, n) for owner_id, n in rows),
        key=lambda row: (-row[1], row[0] is None, row[0] or 0),
    )


# --- changing --------------------------------------------------------------------------------


def _clean_name(name: str | None) -> str:
    return validation.required_text(name, "name", max_length=MAX_NAME_LENGTH)


def _clean_spec(spec: ContactFilterSpec) -> ContactFilterSpec:
    if spec.include_archived:
        raise BadInput(
            "Archived contacts never belong to an audience", field="filter.includeArchived"
        )
    return replace(spec, include_archived=None)


async def _lock_names(office_id: int) -> None:
    """Inside a transaction: wait for any other create or rename in the office to finish."""
    if dialect() == "postgres":
        await execute("SELECT pg_advisory_xact_lock($1, $2)", _NAME_LOCK_NAMESPACE, office_id)


async def _require_name_free(
    office_id: int, key: str, name: str, *, except_id: int | None = None
) -> None:
    taken = Audience.filter(
        office_id=office_id,
        account_key=key,
        kind=AudienceKind.CUSTOM,
        deleted_at__isnull=True,
        name__iexact=name,
    )
    if except_id is not None:
        taken = taken.exclude(id=except_id)
    if await taken.exists():
        raise Conflict("This account already has an audience with this name", field="name")


async def create_audience(
    actor: User, name: str, account: SendAccount, spec: ContactFilterSpec
) -> Audience:
    """A custom audience in the actor's own account or the office-wide one."""
    holder_id = _holder_of(actor, account)
    if not policy.may_change_account_item(actor, account, holder_id):
        raise Forbidden("The office-wide account needs admin or office-wide access")
    name = _clean_name(name)
    spec = _clean_spec(spec)
    key = account_key(account, holder_id)
    async with in_transaction():
        await _lock_names(actor.office_id)
        await _require_name_free(actor.office_id, key, name)
        return await Audience.create(
            office_id=actor.office_id,
            account=account,
            owner_id=holder_id,
            account_key=key,
            kind=AudienceKind.CUSTOM,
            name=name,
            conditions=spec.to_dict(),
            created_by_id=actor.id,
        )


async def _changeable_custom(actor: User, audience_id: int) -> Audience:
    """Inside a transaction: the custom audience, locked, if `actor` may change it."""
    audience = await _visible(actor, audience_id, lock=True)
    if not policy.may_change_account_item(actor, audience.account, audience.owner_id):
        raise Forbidden("Only the account's holder changes its audiences")
    if audience.kind == AudienceKind.SYSTEM:
        raise Conflict("System audiences cannot be changed or deleted")
    return audience


async def update_audience(
    actor: User,
    audience_id: int,
    *,
    name: str | None = None,
    spec: ContactFilterSpec | None = None,
) -> Audience:
    """Rename a custom audience or replace its filter; None leaves a part as it is."""
    new_name = _clean_name(name) if name is not None else None
    new_spec = _clean_spec(spec) if spec is not None else None
    async with in_transaction():
        audience = await _changeable_custom(actor, audience_id)
        if new_name is not None and new_name != audience.name:
            await _lock_names(actor.office_id)
            await _require_name_free(
                audience.office_id, audience.account_key, new_name, except_id=audience.id
            )
            audience.name = new_name
        if new_spec is not None:
            audience.conditions = new_spec.to_dict()
        await audience.save(update_fields=["name", "conditions", "updated_at"])
    return audience


async def delete_audience(actor: User, audience_id: int) -> Audience:
    """Delete a custom audience. The row stays (marked deleted) for the campaigns sent to it;
    CONFLICT while a scheduled or sending campaign still uses it."""
    async with in_transaction():
        audience = await _changeable_custom(actor, audience_id)
        if await Campaign.filter(
            audience_id=audience.id, state__in=_ACTIVE_CAMPAIGN_STATES
        ).exists():
            raise Conflict("A scheduled or sending campaign uses this audience")
        audience.deleted_at = datetime.now(UTC)
        await audience.save(update_fields=["deleted_at", "updated_at"])
    return audience
