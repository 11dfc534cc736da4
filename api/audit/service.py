"""The status audit (R18): one set-based pass over an office, on demand or nightly.

Every change is an `UPDATE … WHERE` or an `INSERT … SELECT` over the office's contacts,
written so a row is touched only when its value actually changes: a second run the same
night changes nothing. A dry run executes the same statements in a transaction that is
rolled back, so what it reports is exactly what a real run would do.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from api.audit.models import AuditRun, AuditTrigger, Discrepancy, DiscrepancyKind
from api.contacts.models import ENGAGEMENT_KINDS
from api.core import policy, validation
from api.core.database import execute, fetch
from api.core.errors import Forbidden
from api.core.jobs import JobState
from api.offices.models import Office
from api.users.models import User

log = logging.getLogger("api.audit")

# The contact's last sign of life: its last activity of any kind, or its creation here.
_IDLE_SINCE = "COALESCE(last_activity_at, created_at)"
# The contacts an audit looks at ($1: the office): archived ones are out of it.
_LISTED = "office_id = $1 AND archived = false"
# Contacts the audit inactivates: listed, not already inactive, idle since the cutoff ($2).
_INACTIVATE_WHERE = f"{_LISTED} AND (status IS NULL OR status = 'ACTIVE') AND {_IDLE_SINCE} < $2"
_INVALID_EMAIL = validation.invalid_email_sql("c.email")
_ENGAGEMENT = ", ".join(f"'{kind.value}'" for kind in sorted(ENGAGEMENT_KINDS))
# One INSERT … SELECT per kind; $1 office, $2 run. Archived contacts are out of the audit.
_DISCREPANCY_WHERE: dict[DiscrepancyKind, str] = {
    DiscrepancyKind.INACTIVE_BUT_ENGAGED: (
        "c.status = 'INACTIVE' AND c.status_source <> 'AUDIT' AND EXISTS (SELECT 1 FROM"
        " activity a WHERE a.contact_id = c.id AND a.at > c.status_updated_at"
        f" AND a.kind IN ({_ENGAGEMENT}))"
    ),
    DiscrepancyKind.OWNER_DEACTIVATED: (
        "c.owner_id IS NULL AND c.crm_owner_id IS NOT NULL AND EXISTS (SELECT 1 FROM app_user u"
        " WHERE u.office_id = c.office_id AND u.crm_agent_id = c.crm_owner_id AND u.active = false)"
    ),
    DiscrepancyKind.DUPLICATE_EMAIL: (
        "c.email IN (SELECT email FROM contact WHERE office_id = $1 AND archived = false"
        " AND email IS NOT NULL GROUP BY email HAVING COUNT(*) > 1)"
    ),
    DiscrepancyKind.INVALID_EMAIL: f"c.email IS NOT NULL AND ({_INVALID_EMAIL})",
}


class _DryRunRollback(Exception):
    """Raised to roll a dry run's transaction back."""


def _idle(cutoff: datetime) -> Q:
    """Idle since `cutoff` (the ORM form of `_IDLE_SINCE < cutoff`, for the reports)."""
    return Q(last_activity_at__lt=cutoff) | Q(last_activity_at__isnull=True, created_at__lt=cutoff)


async def request_audit(actor: User, *, dry_run: bool = False) -> AuditRun:
    """`runStatusAudit` (admins): record a run and enqueue it."""
    if not policy.is_admin(actor):
        raise Forbidden("Only admins run the status audit")
    run = await AuditRun.create(
        office_id=actor.office_id,
        trigger=AuditTrigger.MANUAL,
        dry_run=dry_run,
        requested_by_id=actor.id,
    )
    await enqueue(run)
    return run


async def schedule_nightly(office_id: int, night: date) -> AuditRun | None:
    """Record the nightly run of `night` once: a second clock, or a second tick, gets None."""
    if await AuditRun.exists(office_id=office_id, night=night):
        return None
    try:
        async with in_transaction():
            run = await AuditRun.create(
                office_id=office_id, trigger=AuditTrigger.NIGHTLY, night=night
            )
    except IntegrityError:
        return None
    await enqueue(run)
    return run


async def enqueue(run: AuditRun) -> None:
    """Send the run to the workers. A lost message is not a lost run: the clock sends runs
    still QUEUED again after a while, and carrying one out twice is harmless."""
    from workers.audit import run_status_audit

    try:
        run_status_audit.send(run.id)
    except Exception:  # the broker is down: the row stays QUEUED for the clock to resend
        log.warning("audit run %s recorded but not enqueued; the clock will resend it", run.id)
        return
    await AuditRun.filter(id=run.id).update(enqueued_at=datetime.now(UTC))


async def list_runs(actor: User, *, first: int) -> list[AuditRun]:
    if not policy.sees_whole_office(actor):
        raise Forbidden("Needs admin or office-wide access")
    return await AuditRun.filter(office_id=actor.office_id).order_by("-id").limit(first)


async def execute_run(run_id: int) -> AuditRun | None:
    """Carry out a recorded run (the worker's job). A message delivered twice, even at the
    same time, or again after a crash, leaves the effects of one run: the work and the DONE
    mark commit together, under a lock on the run's row."""
    run = await AuditRun.get_or_none(id=run_id)
    if run is None or run.state == JobState.DONE:
        return run
    # Committed on its own, so clients see the run is under way (a retry of a FAILED one too).
    await (
        AuditRun.filter(id=run_id)
        .exclude(state=JobState.DONE)
        .update(state=JobState.RUNNING, started_at=datetime.now(UTC), error=None)
    )
    try:
        async with in_transaction():
            run = await AuditRun.select_for_update().get(id=run_id)
            if run.state == JobState.DONE:
                return run  # another delivery finished it while this one waited for the lock
            office = await Office.get(id=run.office_id)
            now = datetime.now(UTC)
            if run.dry_run:
                try:
                    async with in_transaction():  # a savepoint, rolled back below
                        await _apply(office, run, now)
                        raise _DryRunRollback
                except _DryRunRollback:
                    pass
            else:
                await _apply(office, run, now)
            await _record_discrepancies(office, run)
            run.state, run.finished_at = JobState.DONE, datetime.now(UTC)
            await run.save()
    except Exception:
        log.exception("audit run %s failed", run_id)
        await AuditRun.filter(id=run_id).update(
            state=JobState.FAILED,
            error="The audit failed; see the worker's log",
            finished_at=datetime.now(UTC),
        )
        raise
    return run


async def _apply(office: Office, run: AuditRun, now: datetime) -> None:
    """The audit's changes and counts, into `run` (not yet saved)."""
    risk_cutoff = now - timedelta(days=office.risk_days)
    # Written as the partial indexes of migration 0005 read them (idle since, per office).
    run.at_risk_flagged = await execute(
        f"UPDATE contact SET at_risk_since = $3 WHERE {_LISTED} AND at_risk_since IS NULL"
        f" AND {_IDLE_SINCE} < $2",
        office.id,
        risk_cutoff,
        now,
    )
    run.at_risk_cleared = await execute(
        f"UPDATE contact SET at_risk_since = NULL WHERE {_LISTED} AND at_risk_since IS NOT NULL"
        f" AND {_IDLE_SINCE} >= $2",
        office.id,
        risk_cutoff,
    )

    run.auto_inactivated = 0
    if office.auto_inactivate_days:
        cutoff = now - timedelta(days=office.auto_inactivate_days)
        # History first, while the rows still carry their old status (R8).
        await execute(
            "INSERT INTO status_change (office_id, contact_id, from_status, to_status, source,"
            " reason, at) SELECT office_id, id, status, 'INACTIVE', 'AUDIT', $3, $4"
            f" FROM contact WHERE {_INACTIVATE_WHERE}",
            office.id,
            cutoff,
            f"No activity for {office.auto_inactivate_days} days",
            now,
        )
        run.auto_inactivated = await execute(
            "UPDATE contact SET status = 'INACTIVE', status_source = 'AUDIT',"
            f" status_updated_at = $3 WHERE {_INACTIVATE_WHERE}",
            office.id,
            cutoff,
            now,
        )

    # Every count in one pass over the office's listed contacts.
    [counts] = await fetch(
        "SELECT COUNT(*) FILTER (WHERE at_risk_since IS NOT NULL) AS at_risk,"
        " COUNT(*) FILTER (WHERE status_updated_at IS NULL OR status_updated_at < $2) AS stale,"
        " COUNT(*) FILTER (WHERE status IS NULL) AS no_status,"
        " COUNT(*) FILTER (WHERE status = 'ACTIVE') AS active,"
        f" COUNT(*) FILTER (WHERE status = 'INACTIVE') AS inactive FROM contact WHERE {_LISTED}",
        office.id,
        now - timedelta(days=office.stale_days),
    )
    run.at_risk, run.stale, run.no_status = counts["at_risk"], counts["stale"], counts["no_status"]
    run.active_count, run.inactive_count = counts["active"], counts["inactive"]


async def _record_discrepancies(office: Office, run: AuditRun) -> None:
    """One row per contact and kind found; a dry run records them too (they change no contact)."""
    for kind, where in _DISCREPANCY_WHERE.items():
        await execute(
            "INSERT INTO discrepancy (office_id, run_id, contact_id, kind)"
            f" SELECT c.office_id, $2, c.id, '{kind.value}' FROM contact c"
            f" WHERE c.office_id = $1 AND c.archived = false AND {where}",
            office.id,
            run.id,
        )
    run.discrepancies = await Discrepancy.filter(run_id=run.id).count()
