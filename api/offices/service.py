"""Office operations: settings, and the first office of an installation."""

from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tortoise.transactions import in_transaction

from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction
from api.contacts.models import Contact
from api.core import ids, policy, validation
from api.core.errors import BadInput, Forbidden
from api.core.settings import get_settings
from api.offices.models import Office
from api.users.models import Role, User


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if value not in available_timezones():
        raise BadInput(
            "`timezone` is not an IANA time zone such as Europe/London", field="timezone"
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput("`timezone` is not a known time zone", field="timezone") from None
    return value


async def get_office(actor: User) -> Office:
    return await Office.get(id=actor.office_id)


async def unassigned_count(actor: User) -> int:
    if not policy.sees_whole_office(actor):
        raise Forbidden("Needs admin or office-wide access")
    return await Contact.filter(office_id=actor.office_id, archived=False, owner_id=None).count()


async def update_settings(
    actor: User,
    *,
    risk_days: int | None = None,
    stale_days: int | None = None,
    auto_inactivate_days: int | None = None,
    timezone: str | None = None,
    sender_email: str | None = None,
) -> Office:
    if not policy.is_admin(actor):
        raise Forbidden("Only admins change office settings")
    validation.int_range(risk_days, "riskDays", low=1, high=3650)
    validation.int_range(stale_days, "staleDays", low=1, high=3650)
    validation.int_range(auto_inactivate_days, "autoInactivateDays", low=0, high=3650)
    tz = _timezone(timezone)
    sender = validation.email(sender_email, "senderEmail")
    async with in_transaction():
        # Locked, so the entry names what this change changed, whatever runs beside it. NO
        # KEY: rows inserted meanwhile that point at the office need not wait.
        office = await Office.select_for_update(no_key=True).get(id=actor.office_id)
        before = _settings(office)
        if risk_days is not None:
            office.risk_days = risk_days
        if stale_days is not None:
            office.stale_days = stale_days
        if auto_inactivate_days is not None:
            # 0 turns automatic inactivation off.
            office.auto_inactivate_days = auto_inactivate_days or None
        if tz is not None:
            office.timezone = tz
        if sender is not None:
            office.sender_email = sender
        await office.save()
        await auditlog.record_changes(
            actor,
            AuditAction.SETTINGS_CHANGED,
            target=ids.encode("Office", office.id),
            before=before,
            after=_settings(office),
            values_of=_SETTINGS,
        )
    return office


# The settings SETTINGS_CHANGED records, with their new values.
_SETTINGS = ("risk_days", "stale_days", "auto_inactivate_days", "timezone", "sender_email")


def _settings(office: Office) -> dict[str, object]:
    return {name: getattr(office, name) for name in _SETTINGS}


async def bootstrap(
    *,
    office_name: str,
    timezone: str,
    admin_email: str,
    admin_password: str,
    admin_name: str = "Admin",
) -> tuple[Office, User, bool]:
    """Create an office and its first admin; a second run changes nothing (returns created=False)."""
    from api.users.service import create_user

    office_name = validation.required_text(office_name, "office", max_length=200)
    tz = _timezone(timezone) or "UTC"
    existing = await Office.get_or_none(name=office_name)
    if existing is not None:
        admin = await User.filter(office_id=existing.id, role=Role.ADMIN).order_by("id").first()
        return existing, admin, False
    async with in_transaction():
        office = await Office.create(name=office_name, timezone=tz)
        admin = await create_user(
            None,
            office_id=office.id,
            email=admin_email,
            name=admin_name,
            password=admin_password,
            role=Role.ADMIN,
        )
    return office, admin, True


def office_address(office: Office) -> str:
    """The office's sending address: its own, MAIL_FROM, or no-reply at PUBLIC_BASE_URL's host."""
    settings = get_settings()
    if office.sender_email:
        return office.sender_email
    if settings.mail_from:
        return settings.mail_from
    host = urlsplit(settings.public_base_url).hostname or "localhost"
    if "." not in host:
        host += ".localdomain"
    return f"no-reply@{host}"
