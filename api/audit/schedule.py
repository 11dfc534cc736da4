"""When nightly audits are due (R18): 02:00 in each office's time zone, once per night.

The clock calls `enqueue_due` every minute. Each office's latest night whose 02:00 has
passed gets one AuditRun: a unique (office, night) row, so two clocks, or a clock that was
down and catches up, still record it once. Runs whose message was lost (a broker outage)
are sent again.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tortoise.expressions import Q

from api.audit import service
from api.audit.models import AuditRun
from api.core.jobs import JobState
from api.offices.models import Office

log = logging.getLogger("api.audit")

AUDIT_LOCAL_TIME = time(2, 0)
# A run still QUEUED this long after it was last sent lost its message: send it again.
RESEND_AFTER = timedelta(minutes=10)


def due_night(now: datetime, timezone: str) -> date:
    """The latest office-local date whose 02:00 is not in the future.

    On a spring-forward night where 02:00 does not exist (America/New_York), the run falls
    at the first instant after the gap; on a fall-back night 02:00 happens once."""
    tz = ZoneInfo(timezone)
    local_day = now.astimezone(tz).date()
    for day in (local_day, local_day - timedelta(days=1)):
        if _audit_instant(day, tz) <= now:
            return day
    return local_day - timedelta(days=2)  # pragma: no cover - offsets never exceed a day


def _audit_instant(day: date, tz: ZoneInfo) -> datetime:
    # fold=0 maps a wall time inside a spring-forward gap past the gap.
    return datetime.combine(day, AUDIT_LOCAL_TIME, tzinfo=tz).astimezone(UTC)


async def enqueue_due(now: datetime | None = None) -> list[AuditRun]:
    """Record and enqueue every office's due nightly run; resend runs whose message was lost."""
    now = now or datetime.now(UTC)
    created = []
    for office in await Office.all().only("id", "timezone"):
        try:
            run = await service.schedule_nightly(office.id, due_night(now, office.timezone))
        except Exception:  # one office's bad row must not stop every other office's audit
            log.exception("nightly audit of office %s could not be scheduled", office.id)
            continue
        if run is not None:
            created.append(run)
    stale = now - RESEND_AFTER
    for run in await AuditRun.filter(state=JobState.QUEUED).filter(
        Q(enqueued_at__lt=stale) | Q(enqueued_at__isnull=True, created_at__lt=stale)
    ):
        await service.enqueue(run)
    return created
