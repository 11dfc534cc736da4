"""CSV exports of contacts (R12): request, carry out, download.

`request_export` records an ExportJob and its audit log entry together and enqueues the actor.
`execute_export` (the worker's job) streams the contacts the requester may see, through the
same scope and filter translation as `contacts`, in keyset batches of BATCH_SIZE rows joined
with their owner and company in SQL, into a temporary file under DATA_DIR, which it renames
into place when complete. Memory stays one batch deep whatever the export's size; on
PostgreSQL each batch is a COPY the server formats, straight into the file.

Delivered twice (a lost acknowledgement, the clock's resend, a crash and redelivery), a job
still ends with one file and one row count: each attempt writes its own temporary file, and
the attempt that marks the job DONE, under a lock on the job's row, is the one whose file
takes the job's name; any later attempt finds the job DONE and discards its own. The long
part runs outside any transaction, so the job's `rowCount` shows progress while it works
and an export never holds a database connection (SQLite's only one) for its whole length.
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise import connections
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from api.auditlog import service as auditlog
from api.auditlog.models import AuditAction, AuditLogEntry
from api.contacts.filters import ContactFilterSpec, filter_q
from api.contacts.models import Contact
from api.core import events, ids, policy
from api.core.database import dialect
from api.core.errors import AppError, Forbidden, NotFound
from api.core.jobs import JobState
from api.core.settings import get_settings
from api.transfers import links
from api.transfers.csv_format import FORMULA_STARTS, guard
from api.transfers.models import ExportJob
from api.users.models import User

log = logging.getLogger("api.transfers")

BATCH_SIZE = 5_000
# A job still QUEUED this long after it was last sent lost its message: send it again.
RESEND_AFTER = timedelta(minutes=10)
# A job RUNNING for longer than this outlived the actor's time limit (1 hour): its worker
# is gone (an in-process worker lost with its process, say), so it is sent again.
STUCK_AFTER = timedelta(hours=2)

# What a CRM import takes back: the headers the import's alias table reads.
HEADERS = (
    "External ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Company",
    "Owner ID",
    "Owner Name",
    "Owner Email",
    "Status",
    "Status Updated At",
    "Last Activity At",
    "At Risk Since",
    "Unsubscribed",
    "Archived",
    "Created At",
)
# What the portable path reads per batch: the contact joined with its owner and its company.
_COLUMNS = (
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company__name",
    "owner_id",
    "owner__crm_agent_id",
    "crm_owner_id",
    "owner__name",
    "owner__email",
    "status",
    "status_updated_at",
    "last_activity_at",
    "at_risk_since",
    "unsubscribed",
    "archived",
    "created_at",
)


# --- requests and reads (GraphQL) --------------------------------------------------------


async def request_export(actor: User, spec: ContactFilterSpec) -> ExportJob:
    """`exportContacts` (canExport; admins implicitly): record the job and its audit log
    entry together, then enqueue the job."""
    if not policy.may_export(actor):
        raise Forbidden("Needs the canExport right")
    stored = spec.to_dict()
    # The name's random part makes it no key to the file; the link's signature is.
    file_path = f"exports/{actor.office_id}/{secrets.token_hex(16)}.csv"
    async with in_transaction():
        job = await ExportJob.create(
            office_id=actor.office_id,
            requested_by_id=actor.id,
            contact_filter=stored,
            file_path=file_path,
        )
        await auditlog.record(
            actor,
            AuditAction.EXPORT,
            target=ids.encode("ExportJob", job.id),
            contact_filter=stored,
            export_job_id=job.id,
        )
    await enqueue(job)
    return job


async def get_job(actor: User, job_id: int) -> ExportJob:
    """`exportJob`: the caller's own export, or any of the office's for an admin. Jobs of
    another office, another user's, or unknown ids: NOT_FOUND alike (R1)."""
    if not policy.may_export(actor):
        raise Forbidden("Needs the canExport right")
    job = await ExportJob.get_or_none(id=job_id, office_id=actor.office_id)
    if job is None or not (policy.is_admin(actor) or job.requested_by_id == actor.id):
        raise NotFound("ExportJob")
    return job


def download_url(job: ExportJob) -> str | None:
    """A fresh signed link to a finished job's file (EXPORT_LINK_TTL_MINUTES from now)."""
    if job.state != JobState.DONE:
        return None
    return links.download_url(job.id, job.office_id)[0]


async def file_for_download(job_ref: str, token: str | None) -> tuple[Path, ExportJob] | None:
    """The file a download link names and its job, or None for anything that is not a genuine,
    unexpired link to a finished job of the office the token names, whose file exists."""
    try:
        job_id = ids.decode("ExportJob", job_ref)
    except AppError:
        return None
    office_id = links.read_token(job_id, token)
    if office_id is None:
        return None
    job = await ExportJob.get_or_none(id=job_id, office_id=office_id, state=JobState.DONE)
    if job is None or not job.file_path:
        return None
    path = _absolute(job.file_path)
    return (path, job) if path.is_file() else None


# --- the queue -----------------------------------------------------------------------------


async def enqueue(job: ExportJob) -> None:
    """Send the job to the workers. A lost message is not a lost job: `resend_lost` sends
    jobs still QUEUED again, and carrying one out twice is harmless."""
    from workers.exports import export_contacts

    try:
        export_contacts.send(job.id)
    except Exception:  # the broker is down: the row stays QUEUED for the clock to resend
        log.warning("export %s recorded but not enqueued; the clock will resend it", job.id)
        return
    await ExportJob.filter(id=job.id).update(enqueued_at=datetime.now(UTC))


async def resend_lost(now: datetime | None = None) -> int:
    """For the clock: send again the jobs whose message was lost (still QUEUED after
    RESEND_AFTER) or whose worker died with them (RUNNING past STUCK_AFTER)."""
    now = now or datetime.now(UTC)
    stale = now - RESEND_AFTER
    lost = ExportJob.filter(state=JobState.QUEUED).filter(
        Q(enqueued_at__lt=stale) | Q(enqueued_at__isnull=True, created_at__lt=stale)
    )
    stuck = ExportJob.filter(state=JobState.RUNNING, started_at__lt=now - STUCK_AFTER)
    jobs = [*await lost, *await stuck]
    for job in jobs:
        await enqueue(job)
    return len(jobs)


# --- carrying a job out (the worker) ---------------------------------------------------------


async def execute_export(job_id: int) -> ExportJob | None:
    """Write the job's CSV. A message delivered twice, even at the same time, or again
    after a crash, leaves one file and one row count (see the module's docstring)."""
    job = await ExportJob.get_or_none(id=job_id)
    if job is None or job.state == JobState.DONE:
        return job
    requester = await User.get_or_none(id=job.requested_by_id) if job.requested_by_id else None
    if requester is None or not _may_still_export(requester, job):
        # The right was taken away (or the user removed) before the job ran: no file.
        log.warning("export %s refused: its requester may no longer export", job_id)
        await _mark_failed(job_id)
        return await ExportJob.get(id=job_id)
    claimed = await (
        ExportJob.filter(id=job_id)
        .exclude(state=JobState.DONE)
        .update(state=JobState.RUNNING, started_at=datetime.now(UTC), finished_at=None, row_count=0)
    )
    if not claimed:  # another delivery finished it in the meantime
        return await ExportJob.get(id=job_id)
    final = _absolute(job.file_path or f"exports/{job.office_id}/{secrets.token_hex(16)}.csv")
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f"{final.name}.{secrets.token_hex(8)}.part")
    try:
        count = await _write_csv(job, requester, temp)
        await _finish(job_id, temp, final, count)
    except Exception:
        log.exception("export %s failed", job_id)
        await _mark_failed(job_id)
        raise
    finally:
        temp.unlink(missing_ok=True)  # still there when this attempt failed or lost the race
    return await ExportJob.get(id=job_id)


def _may_still_export(user: User, job: ExportJob) -> bool:
    return user.active and user.office_id == job.office_id and policy.may_export(user)


async def _mark_failed(job_id: int) -> None:
    await (
        ExportJob.filter(id=job_id)
        .exclude(state=JobState.DONE)
        .update(state=JobState.FAILED, finished_at=datetime.now(UTC))
    )
    await events.publish("ExportJob", job_id)


async def _finish(job_id: int, temp: Path, final: Path, count: int) -> None:
    """Mark the job DONE and put this attempt's file in place, in one transaction under the
    job row's lock; an attempt that finds the job DONE already leaves everything as it is."""
    async with in_transaction():
        # The conditional UPDATE locks the row: a concurrent attempt waits here, then finds
        # the job DONE and updates nothing (on SQLite, the write lock does the same).
        won = await (
            ExportJob.filter(id=job_id)
            .exclude(state=JobState.DONE)
            .update(state=JobState.DONE, row_count=count, finished_at=datetime.now(UTC))
        )
        if not won:
            return
        await AuditLogEntry.filter(export_job_id=job_id).update(row_count=count)
        # Last: should the commit fail, a retry replaces this file under the same name.
        os.replace(temp, final)
    await events.publish("ExportJob", job_id)


async def _progress(job_id: int, count: int) -> None:
    """The running count `exportJob.rowCount` shows while the job works."""
    await ExportJob.filter(id=job_id, state=JobState.RUNNING).update(row_count=count)
    await events.publish("ExportJob", job_id)


async def _write_csv(job: ExportJob, requester: User, path: Path) -> int:
    """Stream the requester's visible contacts matching the job's filter into `path`.

    Batches are keyset pages by id of the query `contacts` runs (the requester's scope and
    the filter's one translation). On PostgreSQL each batch is one COPY of those ids to the
    file, formatted by the server; elsewhere the rows go through Python's csv module. Both
    write the same CSV (the test suite runs on both)."""
    spec = ContactFilterSpec.from_dict(job.contact_filter)
    contacts = Contact.filter(**policy.contact_scope(requester)).filter(filter_q(spec))
    copy = dialect() == "postgres"
    count = 0
    last_id = 0
    with path.open("wb") as out:
        out.write(_csv_text([list(HEADERS)]))
        while True:
            page = contacts.filter(id__gt=last_id).order_by("id").limit(BATCH_SIZE)
            if copy:
                keys = await page.values_list("id", "owner_id")
                if keys:
                    await _copy_batch(out, requester, keys)
            else:
                keys = await page.values_list(*_COLUMNS)
                out.write(_csv_text(_csv_rows(requester, keys)))
            if not keys:
                break
            count += len(keys)
            last_id = keys[-1][0]
            await _progress(job.id, count)
            if len(keys) < BATCH_SIZE:
                break
        out.flush()
        os.fsync(out.fileno())
    return count


@dataclass(frozen=True, slots=True)
class _Owned:
    """What the policy reads of a contact to decide on its email and phone: its owner."""

    owner_id: int | None


@dataclass(frozen=True, slots=True)
class _UserRef:
    id: int


@dataclass(frozen=True)
class _Reveal:
    """R3 for one batch, decided by the policy once per owner in it rather than per row:
    whose contacts' email and phone, and which owners' own email, the requester sees."""

    pii: dict[int | None, bool]
    owner_email: dict[int | None, bool]

    @classmethod
    def of(cls, requester: User, owners: set[int | None]) -> _Reveal:
        return cls(
            pii={o: policy.may_see_contact_pii(requester, _Owned(o)) for o in owners},  # type: ignore[arg-type]
            owner_email={
                o: o is not None and policy.may_see_user_email(requester, _UserRef(o))  # type: ignore[arg-type]
                for o in owners
            },
        )


class _Lines:
    """A csv.writer target ending each row with "\n", as PostgreSQL's COPY does. The writer
    itself ends rows with "\r\n" only so that it quotes every cell holding either."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, line: str) -> None:
        self.parts.append(line[:-2] + "\n")


def _csv_text(rows: Iterable[list[str]]) -> bytes:
    lines = _Lines()
    csv.writer(lines, lineterminator="\r\n").writerows(rows)
    return "".join(lines.parts).encode()


def _csv_rows(requester: User, batch: list[tuple[Any, ...]]) -> Iterator[list[str]]:
    reveal = _Reveal.of(requester, {row[7] for row in batch})
    for (
        _id,
        external_id,
        first_name,
        last_name,
        email,
        phone,
        company,
        owner_id,
        owner_crm_id,
        crm_owner_id,
        owner_name,
        owner_mail,
        status,
        status_updated_at,
        last_activity_at,
        at_risk_since,
        unsubscribed,
        archived,
        created_at,
    ) in batch:
        visible = reveal.pii[owner_id]
        yield [
            *_safe(
                (
                    external_id,
                    first_name,
                    last_name,
                    email if visible else None,
                    phone if visible else None,
                    company,
                    # The CRM's id for the owner here; for an unassigned contact, the CRM owner
                    # it came with (no account here), so a re-import keeps both as they are.
                    owner_crm_id if owner_id is not None else crm_owner_id,
                    owner_name,
                    owner_mail if reveal.owner_email[owner_id] else None,
                    status,
                )
            ),
            _time(status_updated_at),
            _time(last_activity_at),
            _time(at_risk_since),
            "true" if unsubscribed else "false",
            "true" if archived else "false",
            _time(created_at),
        ]


def _safe(values: Iterable[Any]) -> list[str]:
    """Text cells, None as empty, formula-looking cells defused."""
    cells = []
    for value in values:
        if value is None:
            cells.append("")
            continue
        cells.append(guard(str(value)))
    return cells


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else ""


# The cells of _csv_rows, formatted by PostgreSQL for COPY.
_PG_FORMULA = ", ".join(f"chr({ord(c)})" for c in sorted(FORMULA_STARTS))
_PG_TIME = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')"""


def _pg_safe(expression: str) -> str:
    return (
        f"CASE WHEN left({expression}, 1) IN ({_PG_FORMULA})"
        f" THEN chr(39) || {expression} ELSE {expression} END"
    )


def _pg_ids(values: Iterable[int | None]) -> str:
    # Integers the database itself gave, so they can stand in the statement (COPY takes no
    # parameters); int() makes sure nothing else ever does.
    return "'{" + ",".join(str(int(v)) for v in values if v is not None) + "}'::bigint[]"


def _pg_visible(owners: dict[int | None, bool]) -> str:
    """Rows whose owner, as the statement reads it, is one `owners` marks visible (an owner
    that changed since the batch's ids were read is in none, so its row is masked)."""
    seen = [o for o, visible in owners.items() if visible]
    if not seen:
        return "false"
    unassigned = "c.owner_id IS NULL OR " if None in seen else ""
    return f"({unassigned}c.owner_id = ANY({_pg_ids(seen)}))"


async def _copy_batch(out: Any, requester: User, keys: list[tuple[int, int | None]]) -> None:
    reveal = _Reveal.of(requester, {owner for _, owner in keys})
    pii = _pg_visible(reveal.pii)
    columns = [
        _pg_safe("c.external_id"),
        _pg_safe("c.first_name"),
        _pg_safe("c.last_name"),
        _pg_safe(f"CASE WHEN {pii} THEN c.email END"),
        _pg_safe(f"CASE WHEN {pii} THEN c.phone END"),
        _pg_safe("co.name"),
        _pg_safe("CASE WHEN c.owner_id IS NULL THEN c.crm_owner_id ELSE u.crm_agent_id END"),
        _pg_safe("u.name"),
        _pg_safe(f"CASE WHEN {_pg_visible(reveal.owner_email)} THEN u.email END"),
        "c.status",
        _PG_TIME.format("c.status_updated_at"),
        _PG_TIME.format("c.last_activity_at"),
        _PG_TIME.format("c.at_risk_since"),
        "CASE WHEN c.unsubscribed THEN 'true' ELSE 'false' END",
        "CASE WHEN c.archived THEN 'true' ELSE 'false' END",
        _PG_TIME.format("c.created_at"),
    ]
    query = (
        f"SELECT {', '.join(columns)}"  # noqa: S608 (no value from a client)
        f" FROM unnest({_pg_ids(k for k, _ in keys)}) AS batch (id)"
        " JOIN contact c ON c.id = batch.id"
        " LEFT JOIN app_user u ON u.id = c.owner_id LEFT JOIN company co ON co.id = c.company_id"
        " ORDER BY c.id"
    )
    async with connections.get("default").acquire_connection() as conn:
        await conn.copy_from_query(query, output=out, format="csv")


def _absolute(relative: str) -> Path:
    return get_settings().data_dir / relative
