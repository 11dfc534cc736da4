# ruff: noqa: S608  (SQL here is built from constant fragments; values are always bound)
"""CRM imports (R21, with R5–R9 on every row): one ImportJob per import, whatever the door
(importContacts, importContactsCsv, `crm import`), carried out by a Dramatiq actor.

The job keeps its rows (canonical JSON) so any worker can carry it out. The worker validates
them in Python (api.core.validation, row by row) and works through them in batches of
`BATCH_SIZE`, each one transaction of a few set-based statements, never one per row:

1. read: the office's active users by crmAgentId, and the batch's stored contacts (one
   lookup, rows locked);
2. merge in memory, row by row: a value left out or empty keeps the stored one; the owner is
   api.contacts.ownership.resolve itself (a row's CRM owner mapping to an active user wins,
   even over a manual owner; one mapping to nobody keeps a manual owner; a row without one
   leaves a manual owner alone); what changes; whether the row is refused (R9, a new contact
   without names); search_text as api.contacts.filters has it;
3. write: the missing companies in one INSERT, the StatusChange rows (source IMPORT) of
   changed contacts, one bulk UPDATE of the changed contacts (… FROM unnest(…) on PostgreSQL,
   … FROM a staging table on SQLite), the new contacts and their StatusChange rows in bulk
   (COPY with ids drawn from the sequence beforehand on PostgreSQL; executemany and one
   INSERT … SELECT per status on SQLite), the row errors, and the job's counters.

Unchanged rows write nothing, so a second run of the same file changes nothing.

Redelivery: each batch starts by locking the job's row and reading how far it got
(`processed`); the batch's work and the new `processed` commit together. A message delivered
twice, at once or after a crash, therefore carries every batch out exactly once: a second
delivery waits for the lock and goes on where the first one got to. Validation is a pure
function of the stored rows, so every attempt splits and judges the rows the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from api.contacts.filters import search_text
from api.contacts.models import ContactStatus, OwnerSource
from api.contacts.ownership import resolve
from api.core import events, policy, validation
from api.core.database import dialect, execute, fetch
from api.core.errors import BadInput, Forbidden, NotFound
from api.core.jobs import JobState
from api.transfers import csv_format
from api.transfers.models import ImportJob, ImportRowError, ImportSource
from api.users.models import User

log = logging.getLogger("api.transfers.import")

BATCH_SIZE = 10_000
MAX_ROWS = 500_000
MAX_CSV_BYTES = 100 * 1024 * 1024
# A QUEUED job this long after its last send lost its message; a RUNNING one this long after
# it was last sent lost its worker (the actor's time limit is shorter): both are sent again.
RESEND_QUEUED_AFTER = timedelta(minutes=10)
RESEND_RUNNING_AFTER = timedelta(hours=2)
# Every column but the rows themselves: what reading a job's state needs.
JOB_FIELDS = tuple(f for f in ImportJob._meta.db_fields if f != "payload")

FIELD_NAMES = csv_format.FIELD_NAMES
_STATUSES = {"active": ContactStatus.ACTIVE.value, "inactive": ContactStatus.INACTIVE.value}
# An advisory lock namespace: one office's imports take turns batch by batch (PostgreSQL).
_LOCK_NAMESPACE = 0x1A4F

# --- requesting -------------------------------------------------------------------------


def require_may_import(actor: User) -> None:
    if not policy.may_import(actor):
        raise Forbidden("Only admins import contacts")


async def request_import(
    actor: User,
    rows: list[dict[str, Any]],
    *,
    source: ImportSource,
    file_name: str | None = None,
    unknown_columns: Iterable[str] = (),
) -> ImportJob:
    """Record an import of `rows` (canonical dicts) for the actor's office and enqueue it."""
    require_may_import(actor)
    job = await create_job(
        actor.office_id,
        rows,
        source=source,
        requested_by_id=actor.id,
        file_name=file_name,
        unknown_columns=unknown_columns,
    )
    await enqueue(job)
    return job


async def request_csv_import(actor: User, data: bytes, *, file_name: str | None) -> ImportJob:
    require_may_import(actor)
    parsed = parse_csv(data)
    return await request_import(
        actor,
        parsed.rows,
        source=ImportSource.CSV,
        file_name=file_name,
        unknown_columns=parsed.unknown_columns,
    )


def parse_csv(data: bytes) -> csv_format.ParsedCsv:
    if len(data) > MAX_CSV_BYTES:
        raise BadInput(
            f"The file is larger than {MAX_CSV_BYTES // 2**20} MB; split it", field="file"
        )
    return csv_format.parse(data, max_rows=MAX_ROWS)


def graphql_rows(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """ContactImportRow inputs as canonical rows (status as its name)."""
    out = []
    for row in rows:
        item = {}
        for name in csv_format.FIELDS:
            value = getattr(row, name)
            if value is not None:
                item[name] = value.value if name == "status" else value
        out.append(item)
    return out


async def create_job(
    office_id: int,
    rows: list[dict[str, Any]],
    *,
    source: ImportSource,
    requested_by_id: int | None = None,
    file_name: str | None = None,
    unknown_columns: Iterable[str] = (),
) -> ImportJob:
    if len(rows) > MAX_ROWS:
        raise BadInput(f"At most {MAX_ROWS} rows per import; split it", field="rows")
    if file_name is not None:
        # The name as a label only: its last path part, printable characters, 255 at most.
        base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
        file_name = "".join(ch for ch in base if ch.isprintable())[:255] or None
    return await ImportJob.create(
        office_id=office_id,
        requested_by_id=requested_by_id,
        source=source,
        file_name=file_name,
        payload=_dumps(rows),
        total=len(rows),
        unknown_columns=list(unknown_columns),
    )


def _dumps(rows: list[dict[str, Any]]) -> str:
    try:
        return orjson.dumps(rows).decode()
    except TypeError:
        # A lone UTF-16 surrogate (valid JSON input): kept as an escape; the row's check
        # refuses it with its field, as createContact would.
        return json.dumps(rows)


def _loads(payload: str) -> list[dict[str, Any]]:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


async def enqueue(job: ImportJob) -> None:
    """Send the job to the workers. A lost message is not a lost job: `resend_lost` (the
    clock) sends it again, and carrying a job out twice does its work once."""
    from workers.imports import run_import

    try:
        run_import.send(job.id)
    except Exception:  # the broker is down: the row stays QUEUED for the clock to resend
        log.warning("import %s recorded but not enqueued; the clock will resend it", job.id)
        return
    await ImportJob.filter(id=job.id).update(enqueued_at=datetime.now(UTC))


async def resend_lost(now: datetime | None = None) -> int:
    """For the clock: send again the jobs whose message or worker was lost. Returns how many."""
    now = now or datetime.now(UTC)
    queued = now - RESEND_QUEUED_AFTER
    running = now - RESEND_RUNNING_AFTER
    lost = await ImportJob.filter(
        Q(state=JobState.QUEUED)
        & (Q(enqueued_at__lt=queued) | Q(enqueued_at__isnull=True, created_at__lt=queued))
        | Q(state=JobState.RUNNING, enqueued_at__lt=running)
    ).only("id")
    for job in lost:
        await enqueue(job)
    return len(lost)


# --- reading -------------------------------------------------------------------------------


async def get_job(actor: User, job_id: int) -> ImportJob:
    """The office's job (admins); another office's, or none: NOT_FOUND (R1)."""
    require_may_import(actor)
    job = await ImportJob.filter(id=job_id, office_id=actor.office_id).only(*JOB_FIELDS).first()
    if job is None:
        raise NotFound("ImportJob")
    return job


async def row_errors(job_id: int, *, first: int, after_row: int | None) -> list[ImportRowError]:
    query = ImportRowError.filter(job_id=job_id)
    if after_row is not None:
        query = query.filter(row__gt=after_row)
    return await query.order_by("row").limit(first)


# --- validating ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    row: int  # from 1
    field: str | None
    message: str


# A valid row: (row number, external_id, first_name, last_name, email, phone, company_name,
# crm_owner_id, status); None where the row leaves a field out or empty.
Cleaned = tuple[Any, ...]


def clean_row(number: int, external_id: str, raw: dict[str, Any]) -> Cleaned | RowError:
    """One row through api.core.validation: its values, or the first bad field's error.
    Blank means "not given": the stored value stays."""
    get = raw.get
    text = validation.text
    try:
        status = get("status")
        if status is not None:
            status = text(status, "status", max_length=20)
            if status is not None:
                status = _STATUSES.get(status.lower())
                if status is None:
                    raise BadInput("`status` must be ACTIVE, INACTIVE or empty", field="status")
        return (
            number,
            external_id,
            text(get("first_name"), "firstName", max_length=200),
            text(get("last_name"), "lastName", max_length=200),
            validation.email(get("email")),
            validation.phone(get("phone")),
            text(get("company_name"), "companyName", max_length=200),
            text(get("crm_owner_id"), "crmOwnerId", max_length=100),
            status,
        )
    except BadInput as exc:
        return RowError(number, exc.field, exc.message)


@dataclass
class Plan:
    """The job's rows split and judged before any batch runs: valid external ids and the
    duplicates (the last row of an externalId wins). Batches are validated when asked for."""

    rows: list[dict[str, Any]]
    external_ids: list[str | None]
    early: dict[int, RowError]  # index → error known up front

    @classmethod
    def of(cls, payload: str) -> Plan:
        rows = _loads(payload)
        external_ids: list[str | None] = []
        early: dict[int, RowError] = {}
        last_of: dict[str, int] = {}
        for index, raw in enumerate(rows):
            try:
                ext = validation.text(
                    raw.get("external_id"), "externalId", max_length=100, required=True
                )
            except BadInput as exc:
                early[index] = RowError(index + 1, exc.field, exc.message)
                external_ids.append(None)
                continue
            external_ids.append(ext)
            last_of[ext] = index
        for index, ext in enumerate(external_ids):
            if ext is not None and last_of[ext] != index:
                early[index] = RowError(
                    index + 1,
                    "externalId",
                    f"Duplicate externalId: row {last_of[ext] + 1} replaces this row",
                )
        return cls(rows=rows, external_ids=external_ids, early=early)

    def batch(self, start: int, size: int) -> tuple[list[Cleaned], list[RowError]]:
        valid: list[Cleaned] = []
        errors: list[RowError] = []
        early, rows, external_ids = self.early, self.rows, self.external_ids
        for index in range(start, min(start + size, len(rows))):
            result = early.get(index) or clean_row(index + 1, external_ids[index], rows[index])  # type: ignore[arg-type]
            if type(result) is RowError:
                errors.append(result)
            else:
                valid.append(result)
        return valid, errors


# --- carrying out -------------------------------------------------------------------------

Progress = Callable[[ImportJob], Any]


async def execute_import(job_id: int, progress: Progress | None = None) -> ImportJob | None:
    """Carry out a recorded import (the worker's job), batch by batch; see the module's
    docstring for why a second delivery does nothing twice. `progress` is called with the
    job's counters after each batch."""
    job = await ImportJob.filter(id=job_id).only(*JOB_FIELDS).first()
    if job is None or job.state == JobState.DONE:
        return job
    now = datetime.now(UTC)
    await ImportJob.filter(id=job_id).exclude(state=JobState.DONE).update(state=JobState.RUNNING)
    await ImportJob.filter(id=job_id, started_at__isnull=True).update(started_at=now)
    try:
        payload = await ImportJob.filter(id=job_id).first().values_list("payload", flat=True)
        plan = Plan.of(payload)  # type: ignore[arg-type]
        while True:
            finished = await _run_batch(job_id, plan)
            await events.publish("ImportJob", job_id)
            if progress is not None or finished:
                job = await ImportJob.filter(id=job_id).only(*JOB_FIELDS).first()
                if progress is not None and job is not None:
                    progress(job)
            if finished:
                return job
    except BaseException:  # TimeLimitExceeded included: the row must not stay RUNNING
        log.exception("import %s failed", job_id)
        await (
            ImportJob.filter(id=job_id)
            .exclude(state=JobState.DONE)
            .update(state=JobState.FAILED, finished_at=datetime.now(UTC))
        )
        await events.publish("ImportJob", job_id)
        raise


async def _run_batch(job_id: int, plan: Plan) -> bool:
    """The next batch of the job in one transaction; True once the job is DONE."""
    async with in_transaction() as conn:
        # The job's row lock (the UPDATE takes it on both backends; on SQLite it also makes
        # this transaction the writer from its first statement).
        if not await execute(
            "UPDATE import_job SET state = 'RUNNING' WHERE id = $1 AND state <> 'DONE'", job_id
        ):
            return True
        [job] = await fetch(
            "SELECT office_id, requested_by_id, processed, total FROM import_job WHERE id = $1",
            job_id,
        )
        start, total = job["processed"], job["total"]
        valid, errors = plan.batch(start, BATCH_SIZE)
        store = (_PgStore if dialect() == "postgres" else _SqliteStore)(
            conn, job["office_id"], job["requested_by_id"], job_id, datetime.now(UTC)
        )
        outcome = await store.run(valid, errors)
        end = min(start + BATCH_SIZE, total)
        done = end >= total
        # Once DONE the rows have served: they are dropped (the contacts hold the data now).
        await execute(
            "UPDATE import_job SET processed = $2, created = created + $3,"
            " updated = updated + $4, unassigned = unassigned + $5,"
            " error_count = error_count + $6, state = $7, finished_at = $8"
            + (", payload = '[]'" if done else "")
            + " WHERE id = $1",
            job_id,
            end,
            outcome.created,
            outcome.updated,
            outcome.unassigned,
            len(errors),
            JobState.DONE.value if done else JobState.RUNNING.value,
            datetime.now(UTC) if done else None,
        )
    return done


@dataclass
class Stored:
    """A contact as stored, with its company's name and key."""

    id: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    company_id: int | None
    company_key: str | None
    company_name: str | None
    crm_owner_id: str | None
    owner_id: int | None
    owner_source: str | None
    status: str | None
    archived: bool


_STORED_COLUMNS = (
    "SELECT c.external_id, c.id, c.first_name, c.last_name, c.email, c.phone, c.company_id,"
    " co.name_key, co.name, c.crm_owner_id, c.owner_id, c.owner_source, c.status, c.archived"
)
# Column order of the contacts a batch creates (all NOT NULL ones included).
_NEW_COLUMNS = (
    "office_id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company_id",
    "crm_owner_id",
    "owner_id",
    "owner_source",
    "status",
    "status_source",
    "status_updated_at",
    "unsubscribed",
    "archived",
    "created_at",
    "updated_at",
    "search_text",
)
# What an update writes: (id, then these, then whether the status moves).
_UPDATE_COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company_id",
    "crm_owner_id",
    "owner_id",
    "owner_source",
    "status",
    "search_text",
)
_HISTORY_COLUMNS = (
    "office_id",
    "contact_id",
    "from_status",
    "to_status",
    "source",
    "actor_id",
    "at",
)


def _owner(
    crm_user: int | None, owner_id: int | None, source: str | None, *, crm_write: bool
) -> tuple[Any, Any]:
    """R5–R7: api.contacts.ownership.resolve itself, on the raw stored values."""
    owner, owner_source = resolve(
        crm_user, owner_id, OwnerSource(source) if source else None, crm_write=crm_write
    )
    return owner, owner_source.value if owner_source is not None else None


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unassigned: int = 0


class _Store:
    """One batch in one transaction: read what it needs in a few set-based statements, merge
    row by row in memory, write in a few set-based statements. Backends differ only in how
    rows move in bulk (below)."""

    def __init__(
        self, conn: Any, office_id: int, actor_id: int | None, job_id: int, now: datetime
    ) -> None:
        self.conn = conn
        self.office_id = office_id
        self.actor_id = actor_id
        self.job_id = job_id
        self.now = now

    async def run(self, valid: list[Cleaned], errors: list[RowError]) -> Outcome:
        outcome = Outcome()
        if valid:
            outcome = await self._merge_and_write(valid, errors)
        if errors:
            errors.sort(key=lambda e: e.row)
            await self.copy(
                "import_row_error",
                ("job_id", "row", "field", "message"),
                [(self.job_id, e.row, e.field, e.message[:500]) for e in errors],
            )
        return outcome

    async def _merge_and_write(self, valid: list[Cleaned], errors: list[RowError]) -> Outcome:
        await self.lock_office()
        crm_users = await self.crm_users()
        stored = await self.stored([row[1] for row in valid])
        now, office = self.now, self.office_id
        new_rows: list[list[Any]] = []
        new_statuses: list[tuple[int, str]] = []  # (index in new_rows, status)
        updates: list[list[Any]] = []
        history: list[tuple[Any, ...]] = []
        wanted: dict[str, str] = {}  # company key → the first spelling that asks for it
        outcome = Outcome()
        for number, ext, first, last, email, phone, company, crm, status in valid:
            key = company.lower() if company is not None else None
            old = stored.get(ext)
            if old is None:
                if first is None or last is None:
                    field = "firstName" if first is None else "lastName"
                    errors.append(
                        RowError(number, field, f"`{field}` is required for a new contact")
                    )
                    continue
                owner_id, owner_source = _owner(
                    crm_users.get(crm) if crm else None, None, None, crm_write=True
                )
                if key is not None and key not in wanted:
                    wanted[key] = company  # type: ignore[assignment]
                new_rows.append(
                    [
                        office,
                        ext,
                        first,
                        last,
                        email,
                        phone,
                        key,  # the company's key until its id is known
                        crm,
                        owner_id,
                        owner_source,
                        status,
                        "IMPORT" if status is not None else None,
                        now if status is not None else None,
                        False,
                        False,
                        now,
                        now,
                        search_text(first, last, email, company),
                    ]
                )
                if status is not None:
                    new_statuses.append((len(new_rows) - 1, status))
                outcome.created += 1
                outcome.unassigned += owner_id is None
                continue
            # Merge: what the row leaves out keeps the stored value.
            first = first or old.first_name
            last = last or old.last_name
            email = email or old.email
            phone = phone or old.phone
            if key is None:
                key, company = old.company_key, old.company_name
            # A row naming a CRM owner is a CRM write (R7: its owner wins over a manual one);
            # a row that leaves the owner out says nothing about it.
            crm_write = crm is not None
            crm = crm or old.crm_owner_id
            status = status or old.status
            owner_id, owner_source = _owner(
                crm_users.get(crm) if crm else None,
                old.owner_id,
                old.owner_source,
                crm_write=crm_write,
            )
            if first != old.first_name:
                changed = "firstName"
            elif last != old.last_name:
                changed = "lastName"
            elif email != old.email:
                changed = "email"
            elif phone != old.phone:
                changed = "phone"
            elif key != old.company_key:
                changed = "companyName"
            elif crm != old.crm_owner_id or owner_id != old.owner_id:
                changed = "crmOwnerId"
            else:
                changed = None
            status_moves = status != old.status
            if policy.is_read_only(old.status):
                if changed is not None:
                    # R9: an inactive contact's fields and owner stay; reactivating it (an
                    # admin may) is all a row can do.
                    errors.append(RowError(number, changed, policy.INACTIVE_READ_ONLY))
                    continue
                if not status_moves:
                    continue
            elif changed is None and not status_moves and owner_source == old.owner_source:
                continue  # unchanged
            if status_moves and old.archived:
                # As setContactStatus: an archived contact's status waits for its restoring.
                errors.append(RowError(number, "status", policy.ARCHIVED_STATUS_WAITS))
                continue
            if key is not None and key != old.company_key and key not in wanted:
                wanted[key] = company  # type: ignore[assignment]
            updates.append(
                [
                    old.id,
                    first,
                    last,
                    email,
                    phone,
                    old.company_id if key == old.company_key else key,
                    crm,
                    owner_id,
                    owner_source,
                    status,
                    search_text(first, last, email, company),
                    status_moves,
                ]
            )
            if status_moves:
                history.append((office, old.id, old.status, status, "IMPORT", self.actor_id, now))
            outcome.updated += 1
            outcome.unassigned += owner_id is None
        company_ids = await self.companies(wanted) if wanted else {}
        for row in new_rows:
            if row[6] is not None:
                row[6] = company_ids[row[6]]
        for row in updates:
            if type(row[5]) is str:
                row[5] = company_ids[row[5]]
        if history:
            # History first, while the contacts still carry their old status (R8).
            await self.copy("status_change", _HISTORY_COLUMNS, history)
        if updates:
            await self.update_contacts(updates)
        if new_rows:
            await self.insert_new(new_rows, new_statuses)
        return outcome

    # Backend parts.
    async def lock_office(self) -> None:
        pass

    async def crm_users(self) -> dict[str, int]:
        """The office's active users by crmAgentId (R5)."""
        rows = await fetch(
            "SELECT crm_agent_id, id FROM app_user WHERE office_id = $1 AND active = $2"
            " AND crm_agent_id IS NOT NULL" + self.share_lock,
            self.office_id,
            True,
        )
        return {r["crm_agent_id"]: r["id"] for r in rows}

    share_lock = ""

    async def stored(self, external_ids: list[str]) -> dict[str, Stored]:
        raise NotImplementedError

    async def companies(self, wanted: dict[str, str]) -> dict[str, int]:
        raise NotImplementedError

    async def copy(self, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
        raise NotImplementedError

    async def update_contacts(self, rows: list[list[Any]]) -> None:
        raise NotImplementedError

    async def insert_new(self, rows: list[list[Any]], statuses: list[tuple[int, str]]) -> None:
        """The new contacts, and the StatusChange of each one created with a status."""
        raise NotImplementedError


def _stored(rows: Iterable[Any]) -> dict[str, Stored]:
    return {r[0]: Stored(*r[1:]) for r in rows}


class _PgStore(_Store):
    """PostgreSQL: COPY for bulk inserts, arrays (unnest) for the bulk update and lookups.
    Every statement goes through the transaction's own asyncpg connection."""

    share_lock = " FOR SHARE"  # a user deactivated meanwhile waits for this batch (R6)

    @staticmethod
    async def _once(raw: Any, sql: str, *args: Any) -> list[Any]:
        """Run a bulk statement prepared for this call alone, so it is planned for these
        values and the tables as they are now: a cached generic plan, made while the tables
        were small, could test every stored row against every key."""
        return await (await raw.prepare(sql)).fetch(*args)

    async def lock_office(self) -> None:
        # One office's imports take turns batch by batch: rows one import sees as new, another
        # cannot create behind its back.
        async with self.conn.acquire_connection() as raw:
            await raw.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", _LOCK_NAMESPACE, self.office_id % 2**31
            )

    async def stored(self, external_ids: list[str]) -> dict[str, Stored]:
        async with self.conn.acquire_connection() as raw:
            rows = await self._once(
                raw,
                _STORED_COLUMNS + " FROM unnest($2::text[]) AS k(ext)"
                " JOIN contact c ON c.office_id = $1 AND c.external_id = k.ext"
                " LEFT JOIN company co ON co.id = c.company_id FOR UPDATE OF c",
                self.office_id,
                external_ids,
            )
            return _stored(rows)

    async def companies(self, wanted: dict[str, str]) -> dict[str, int]:
        async with self.conn.acquire_connection() as raw:
            keys = sorted(wanted)  # sorted: two imports never wait on each other in turn
            await self._once(
                raw,
                "INSERT INTO company (office_id, name, name_key)"
                " SELECT $1, n, k FROM unnest($2::text[], $3::text[]) AS s(n, k)"
                " WHERE NOT EXISTS (SELECT 1 FROM company WHERE office_id = $1 AND name_key = k)"
                " ORDER BY k ON CONFLICT (office_id, name_key) DO NOTHING",
                self.office_id,
                [wanted[k] for k in keys],
                keys,
            )
            rows = await self._once(
                raw,
                "SELECT co.name_key, co.id FROM unnest($2::text[]) AS k(key)"
                " JOIN company co ON co.office_id = $1 AND co.name_key = k.key",
                self.office_id,
                keys,
            )
            return {r[0]: r[1] for r in rows}

    async def copy(self, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
        async with self.conn.acquire_connection() as raw:
            await raw.copy_records_to_table(table, records=rows, columns=columns)

    async def update_contacts(self, rows: list[list[Any]]) -> None:
        async with self.conn.acquire_connection() as raw:
            columns = list(zip(*rows, strict=True))
            await self._once(
                raw,
                "UPDATE contact AS c SET first_name = s.first_name, last_name = s.last_name,"
                " email = s.email, phone = s.phone, company_id = s.company_id,"
                " crm_owner_id = s.crm_owner_id, owner_id = s.owner_id,"
                " owner_source = s.owner_source, status = s.status, search_text = s.search_text,"
                " status_source = CASE WHEN s.moves THEN 'IMPORT' ELSE c.status_source END,"
                " status_updated_at = CASE WHEN s.moves THEN $13 ELSE c.status_updated_at END,"
                " updated_at = $13"
                " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[],"
                " $12::bool[]) AS s(id, first_name, last_name, email, phone, company_id,"
                " crm_owner_id, owner_id, owner_source, status, search_text, moves)"
                " WHERE c.id = s.id",
                *columns,
                self.now,
            )

    async def insert_new(self, rows: list[list[Any]], statuses: list[tuple[int, str]]) -> None:
        async with self.conn.acquire_connection() as raw:
            # Their ids first, so their history needs no lookup afterwards.
            ids = await self._once(
                raw,
                "SELECT nextval(pg_get_serial_sequence('contact', 'id'))"
                " FROM generate_series(1, $1)",
                len(rows),
            )
            for row, record in zip(rows, ids, strict=True):
                row.append(record[0])
            await raw.copy_records_to_table("contact", records=rows, columns=(*_NEW_COLUMNS, "id"))
            if statuses:
                history = [
                    (self.office_id, rows[i][-1], None, status, "IMPORT", self.actor_id, self.now)
                    for i, status in statuses
                ]
                await raw.copy_records_to_table(
                    "status_change", records=history, columns=_HISTORY_COLUMNS
                )


class _SqliteStore(_Store):
    """SQLite: executemany for bulk inserts, JSON arrays (json_each) for lookups, a
    temporary table for the bulk update. The transaction holds the database's write lock."""

    async def stored(self, external_ids: list[str]) -> dict[str, Stored]:
        _, rows = await self.conn.execute_query(
            _STORED_COLUMNS + " FROM contact c LEFT JOIN company co ON co.id = c.company_id"
            " WHERE c.office_id = ? AND c.external_id IN (SELECT value FROM json_each(?))",
            [self.office_id, orjson.dumps(external_ids).decode()],
        )
        return {ext: Stored(*rest[:-1], bool(rest[-1])) for ext, *rest in (tuple(r) for r in rows)}

    async def companies(self, wanted: dict[str, str]) -> dict[str, int]:
        keys = sorted(wanted)
        await self.conn.execute_many(
            "INSERT INTO company (office_id, name, name_key) VALUES (?, ?, ?)"
            " ON CONFLICT (office_id, name_key) DO NOTHING",
            [[self.office_id, wanted[k], k] for k in keys],
        )
        rows = await fetch(
            "SELECT name_key, id FROM company WHERE office_id = $1"
            " AND name_key IN (SELECT value FROM json_each($2))",
            self.office_id,
            orjson.dumps(keys).decode(),
        )
        return {r["name_key"]: r["id"] for r in rows}

    async def copy(self, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
        marks = ", ".join("?" * len(columns))
        await self.conn.execute_many(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    async def update_contacts(self, rows: list[list[Any]]) -> None:
        columns = ("id", *_UPDATE_COLUMNS, "moves")
        await execute(
            "CREATE TEMP TABLE IF NOT EXISTS import_update (id INTEGER PRIMARY KEY,"
            " first_name TEXT, last_name TEXT, email TEXT, phone TEXT, company_id INTEGER,"
            " crm_owner_id TEXT, owner_id INTEGER, owner_source TEXT, status TEXT,"
            " search_text TEXT, moves INTEGER)"
        )
        await execute("DELETE FROM import_update")
        await self.copy("import_update", columns, rows)
        await execute(
            "UPDATE contact SET first_name = s.first_name, last_name = s.last_name,"
            " email = s.email, phone = s.phone, company_id = s.company_id,"
            " crm_owner_id = s.crm_owner_id, owner_id = s.owner_id,"
            " owner_source = s.owner_source, status = s.status, search_text = s.search_text,"
            " status_source = CASE WHEN s.moves THEN 'IMPORT' ELSE contact.status_source END,"
            " status_updated_at = CASE WHEN s.moves THEN $1 ELSE contact.status_updated_at END,"
            " updated_at = $1 FROM import_update s WHERE contact.id = s.id",
            self.now,
        )
        await execute("DELETE FROM import_update")

    async def insert_new(self, rows: list[list[Any]], statuses: list[tuple[int, str]]) -> None:
        await self.copy("contact", _NEW_COLUMNS, rows)
        for status in {status for _, status in statuses}:
            await execute(
                "INSERT INTO status_change (office_id, contact_id, from_status, to_status,"
                " source, actor_id, at) SELECT $1, c.id, NULL, $2, 'IMPORT', $3, $4"
                " FROM contact c WHERE c.office_id = $1"
                " AND c.external_id IN (SELECT value FROM json_each($5))",
                self.office_id,
                status,
                self.actor_id,
                self.now,
                orjson.dumps([rows[i][1] for i, s in statuses if s == status]).decode(),
            )


__all__ = [
    "BATCH_SIZE",
    "MAX_CSV_BYTES",
    "MAX_ROWS",
    "Plan",
    "RowError",
    "clean_row",
    "create_job",
    "enqueue",
    "execute_import",
    "get_job",
    "graphql_rows",
    "parse_csv",
    "request_csv_import",
    "request_import",
    "resend_lost",
    "row_errors",
]
