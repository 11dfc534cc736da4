"""Imports and the CSV export (issue 3, R12 and R21) on the benchmark database.

Imports: a second office ("Bench Imports", its own users, no contacts) beside the 1,000,000
contacts of the first, so the measures go into the same `contact` table with every index in
place, while the other measures never see the rows. In turn: a raw COPY of the new rows into
`contact` in one asyncpg transaction, rolled back, then VACUUM (three times: with every
index, without the trigram index, without any secondary index, to show what each costs);
the app's import of the same rows as new contacts; the changed rows (a new phone and a
status change on every row) as hand-written SQL, rolled back, then VACUUM; the app's import
of the changed rows; the changed file once more (must change nothing). Each import is recorded as
`request_import` records it (the door of `crm import`; the message goes to the in-memory
broker, which nothing here consumes) and carried out by `execute_import(job_id)`, the
worker's job, in this process. The second office is removed afterwards when the database is
kept.

Export: the first office's admin exports every contact (no filter) as `request_export`
records it; `execute_export(job_id)` then runs in a fresh Python process that reports its
resident memory when the job starts and its peak since (VmHWM, the kernel's high-water mark,
reset at the start, so no short peak is missed); a raw `COPY (SELECT …) TO STDOUT` of the same columns, formatted
the same way, runs in another fresh process, and the two files are compared byte for byte.

    python -m bench.transfers app JOB_ID | raw OFFICE_ID PATH   (the child processes)
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

IMPORT_ROWS = 100_000
IMPORT_OFFICE = "Bench Imports"
IMPORT_SEED = 20240607
AGENTS = 12  # active agents of the import office, CRM ids IMP-A01…
IMPORT_COMPANIES = 800
# What the importer writes for a new contact (api/transfers/importer.py, `insert_new`).
NEW_COLUMNS = (
    "office_id", "external_id", "first_name", "last_name", "email", "phone", "company_id",
    "crm_owner_id", "owner_id", "owner_source", "status", "status_source", "status_updated_at",
    "unsubscribed", "archived", "created_at", "updated_at", "search_text",
)  # fmt: skip


# --------------------------------------------------------------------------- import rows


def import_rows(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`n` CRM rows as an import job stores them (canonical dicts), and the same rows
    changed: a new phone on every row, and every status moves (ACTIVE → INACTIVE, none →
    ACTIVE). Owners: most map to an active agent, some to nobody here, some are left out."""
    from bench import data

    rnd = random.Random(IMPORT_SEED)
    firsts, lasts = data.FIRST_NAMES, data.last_names()
    companies = sorted(
        {
            f"{rnd.choice(data.COMPANY_WORDS)} {rnd.choice(data.COMPANY_KINDS)} {k}"
            for k in range(IMPORT_COMPANIES)
        }
    )
    new, changed = [], []
    for i in range(1, n + 1):
        first = firsts[int(rnd.random() * len(firsts))]
        last = lasts[int(rnd.random() * len(lasts))]
        row: dict[str, Any] = {
            "external_id": f"IMP-{i:07d}",
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}.{i}@{data.DOMAINS[i % len(data.DOMAINS)]}".lower(),
            "phone": f"+48 5{i % 100:02d} {(i * 7919) % 1000:03d} {(i * 104729) % 1000:03d}",
        }
        if rnd.random() < 0.85:
            row["company_name"] = companies[int(rnd.random() * len(companies))]
        r = rnd.random()
        if r < 0.85:
            row["crm_owner_id"] = f"IMP-A{1 + int(rnd.random() * AGENTS):02d}"
        elif r < 0.92:
            row["crm_owner_id"] = f"CRM-ELSEWHERE{i % 13}"
        active = rnd.random() < 0.6
        if active:
            row["status"] = "ACTIVE"
        new.append(row)
        changed.append(
            {
                **row,
                "phone": f"+48 7{i % 100:02d} {(i * 104729) % 1000:03d} {(i * 7919) % 1000:03d}",
                "status": "INACTIVE" if active else "ACTIVE",
            }
        )
    return new, changed


async def create_import_office(
    conn: asyncpg.Connection, name: str = IMPORT_OFFICE
) -> tuple[int, int, dict[str, int]]:
    """The second office: an admin, AGENTS agents with CRM ids, a deactivated one.
    Returns (office id, admin id, active users by CRM id)."""
    now = datetime.now(UTC)
    office_id = await conn.fetchval(
        "INSERT INTO office (name, timezone, risk_days, stale_days, auto_inactivate_days,"
        " created_at) VALUES ($1, 'Europe/Warsaw', 90, 180, 365, $2) RETURNING id",
        name,
        now,
    )
    tag = "" if name == IMPORT_OFFICE else f"-{office_id}"
    domain = f"bench-imports{tag}.example"  # user emails are unique across offices
    users = [("Import Admin", f"admin@{domain}", "ADMIN", None, True)]
    users += [
        (f"Importer {k:02d}", f"agent{k:02d}@{domain}", "AGENT", f"IMP-A{k:02d}", True)
        for k in range(1, AGENTS + 1)
    ]
    users.append(("Gone Importer", f"gone@{domain}", "AGENT", "IMP-GONE", False))
    ids = {}
    for user_name, email, role, crm, active in users:
        ids[email] = await conn.fetchval(
            "INSERT INTO app_user (office_id, email, name, password_hash, role, crm_agent_id,"
            " office_wide_access, can_export, can_delete, active, created_at)"
            " VALUES ($1, $2, $3, '!', $4, $5, false, false, false, $6, $7) RETURNING id",
            office_id,
            email,
            user_name,
            role,
            crm,
            active,
            now,
        )
    crm_users = {crm: ids[email] for _, email, _, crm, active in users if crm and active}
    return office_id, ids[users[0][1]], crm_users


async def drop_import_office(conn: asyncpg.Connection, office_id: int) -> None:
    """Remove the second office and everything of it, then vacuum, so a kept database is as
    it was. Foreign-key triggers are off for the transaction (the rows are deleted table by
    table instead): discrepancy has no index on contact_id, so a cascade from 100,000
    contacts would scan it 100,000 times."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "DELETE FROM import_row_error WHERE job_id IN"
            " (SELECT id FROM import_job WHERE office_id = $1)",
            office_id,
        )
        for table in (
            "import_job",
            "export_job",
            "audit_log",
            "status_change",
            "activity",
            "discrepancy",
            "audit_run",
            "contact",
            "company",
            "app_user",
            "office",
        ):
            column = "id" if table == "office" else "office_id"
            await conn.execute(f"DELETE FROM {table} WHERE {column} = $1", office_id)
    await conn.execute("VACUUM (ANALYZE) contact, status_change, company, app_user, import_job")


# --------------------------------------------------------------------------- raw SQL


class _Rollback(Exception):
    """Ends a timed transaction by rolling it back, carrying what was measured."""

    def __init__(self, ms: float, rows: int) -> None:
        self.ms, self.rows = ms, rows


async def secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """contact's indexes that back no constraint: (name, definition)."""
    rows = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'contact'"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname"
        " AND c.conrelid = 'contact'::regclass) ORDER BY i.indexname"
    )
    return [(r["indexname"], r["indexdef"]) for r in rows]


async def _raw_copy(
    conn: asyncpg.Connection,
    office_id: int,
    crm_users: dict[str, int],
    rows: list[dict],
    drop: list[str],
) -> None:
    from api.contacts.filters import search_text

    now = datetime.now(UTC)
    async with conn.transaction():
        for name in drop:
            await conn.execute(f'DROP INDEX "{name}"')
        names = sorted({r["company_name"] for r in rows if r.get("company_name")})
        company_ids = {
            r["name"]: r["id"]
            for r in await conn.fetch(
                "INSERT INTO company (office_id, name, name_key)"
                " SELECT $1, n, lower(n) FROM unnest($2::text[]) AS n RETURNING id, name",
                office_id,
                names,
            )
        }
        records = []
        for r in rows:
            crm, status, company = r.get("crm_owner_id"), r.get("status"), r.get("company_name")
            owner = crm_users.get(crm) if crm else None
            records.append(
                (
                    office_id,
                    r["external_id"],
                    r["first_name"],
                    r["last_name"],
                    r["email"],
                    r["phone"],
                    company_ids.get(company) if company else None,
                    crm,
                    owner,
                    "CRM" if owner else None,
                    status,
                    "IMPORT" if status else None,
                    now if status else None,
                    False,
                    False,
                    now,
                    now,
                    search_text(r["first_name"], r["last_name"], r["email"], company),
                )
            )
        t = time.perf_counter()
        tag = await conn.copy_records_to_table("contact", records=records, columns=NEW_COLUMNS)
        raise _Rollback((time.perf_counter() - t) * 1000, int(tag.split()[-1]))


async def raw_copy(
    conn: asyncpg.Connection,
    office_id: int,
    crm_users: dict[str, int],
    rows: list[dict],
    drop: list[str] = (),  # type: ignore[assignment]
) -> tuple[float, int]:
    """COPY of `rows` as the contacts the import creates (the same columns and values) into
    `contact`, timed alone, in a transaction rolled back afterwards. Untimed before it, in
    the same transaction: the indexes `drop` names are dropped (to see what each costs) and
    the companies the rows name are inserted. Returns (ms, rows copied)."""
    try:
        await _raw_copy(conn, office_id, crm_users, rows, list(drop))
    except _Rollback as done:
        return done.ms, done.rows
    raise RuntimeError("the raw COPY did not roll back")


RAW_STAGE_SQL = (
    "CREATE TEMP TABLE bench_stage (external_id text, phone text, status text) ON COMMIT DROP"
)
RAW_HISTORY_SQL = (
    "INSERT INTO status_change (office_id, contact_id, from_status, to_status, source,"
    " actor_id, at) SELECT c.office_id, c.id, c.status, s.status, 'IMPORT', $2, $3"
    " FROM bench_stage s JOIN contact c ON c.office_id = $1 AND c.external_id = s.external_id"
    " WHERE c.status IS DISTINCT FROM s.status"
)
RAW_UPDATE_SQL = (
    "UPDATE contact c SET phone = s.phone, status = s.status,"
    " status_source = CASE WHEN c.status IS DISTINCT FROM s.status THEN 'IMPORT'"
    " ELSE c.status_source END,"
    " status_updated_at = CASE WHEN c.status IS DISTINCT FROM s.status THEN $2"
    " ELSE c.status_updated_at END, updated_at = $2"
    " FROM bench_stage s WHERE c.office_id = $1 AND c.external_id = s.external_id"
    " AND (c.phone, c.status) IS DISTINCT FROM (s.phone, s.status)"
)


async def raw_update(
    conn: asyncpg.Connection, office_id: int, actor_id: int, rows: list[dict]
) -> tuple[float, int]:
    """The changed file's writes as hand-written SQL, rolled back: COPY of the changed
    columns into a temporary table, the history rows of the status moves, one UPDATE …
    FROM. Returns (ms, contacts updated)."""
    records = [(r["external_id"], r["phone"], r.get("status")) for r in rows]
    now = datetime.now(UTC)
    try:
        async with conn.transaction():
            t = time.perf_counter()
            await conn.execute(RAW_STAGE_SQL)
            await conn.copy_records_to_table("bench_stage", records=records)
            await conn.execute("ANALYZE bench_stage")
            await conn.execute(RAW_HISTORY_SQL, office_id, actor_id, now)
            tag = await conn.execute(RAW_UPDATE_SQL, office_id, now)
            raise _Rollback((time.perf_counter() - t) * 1000, int(tag.split()[-1]))
    except _Rollback as done:
        return done.ms, done.rows
    raise RuntimeError("the raw UPDATE did not roll back")


# --------------------------------------------------------------------------- the app's import


@dataclass
class ImportRun:
    label: str
    ms: float  # execute_import
    cpu_ms: float  # this process's CPU time during execute_import (Python, asyncpg's encoding)
    request_ms: float  # request_import: the job recorded with its rows, and enqueued
    total: int
    created: int
    updated: int
    unassigned: int
    errors: int
    state: str
    history: int  # StatusChange rows the run appended

    @property
    def rate(self) -> float:
        return self.total / (self.ms / 1000)


async def app_import(
    conn: asyncpg.Connection, admin: Any, rows: list[dict], label: str, profiler: Any = None
) -> ImportRun:
    """`request_import` as `crm import` calls it, then `execute_import(job_id)` timed."""
    from api.transfers.importer import execute_import, request_import
    from api.transfers.models import ImportSource

    history_sql = "SELECT count(*) FROM status_change WHERE office_id = $1"
    history_before = await conn.fetchval(history_sql, admin.office_id)
    t = time.perf_counter()
    job = await request_import(admin, rows, source=ImportSource.CLI, file_name="bench.csv")
    request_ms = (time.perf_counter() - t) * 1000
    gc.collect()
    if profiler is not None:
        profiler.start()
    t, cpu = time.perf_counter(), time.process_time()
    done = await execute_import(job.id)
    ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
    if profiler is not None:
        profiler.stop()
    if done is None:
        raise RuntimeError(f"import job {job.id} vanished")
    return ImportRun(
        label=label,
        ms=ms,
        cpu_ms=cpu_ms,
        request_ms=request_ms,
        total=done.total,
        created=done.created,
        updated=done.updated,
        unassigned=done.unassigned,
        errors=done.error_count,
        state=str(getattr(done.state, "value", done.state)),
        history=await conn.fetchval(history_sql, admin.office_id) - history_before,
    )


@dataclass
class ImportResult:
    rows: int
    raw: dict[str, tuple[float, int]]  # raw COPY, by which indexes were in place: (ms, rows)
    dropped: dict[str, list[str]]  # the indexes each raw COPY went without
    raw_update: tuple[float, int]  # the changed file as hand-written SQL: (ms, rows)
    runs: dict[str, ImportRun]  # new, changed, rerun
    problems: list[str]


async def check_imported(
    conn: asyncpg.Connection, office_id: int, changed: list[dict]
) -> list[str]:
    """The office's contacts as the changed file says (phones, statuses), one per row."""
    want = {r["external_id"]: (r["phone"], r["status"]) for r in changed}
    got = {
        r["external_id"]: (r["phone"], r["status"])
        for r in await conn.fetch(
            "SELECT external_id, phone, status FROM contact WHERE office_id = $1", office_id
        )
    }
    problems = []
    if len(got) != len(want):
        problems.append(f"the office holds {len(got):,} contacts, the file {len(want):,} rows")
    wrong = sum(1 for ext, values in want.items() if got.get(ext) != values)
    if wrong:
        problems.append(f"{wrong:,} contacts do not hold the changed file's phone and status")
    return problems


async def _vacuum(conn: asyncpg.Connection) -> None:
    """The rolled-back rows' leftovers vacuumed away before the next contender."""
    await conn.execute("VACUUM (ANALYZE) contact, company, status_change")


async def measure_imports(db_url: str, *, rows: int = IMPORT_ROWS, keep: bool) -> ImportResult:
    """Raw COPY (every index; without the trigram index; without any secondary index), the
    app's import of the new rows, the changed rows as hand-written SQL, the app's import of
    the changed rows, and the changed file again. The second office goes afterwards when the
    database is kept (a dropped database takes it along)."""
    from api.core.database import close_db, init_db
    from api.users.models import User

    new, changed = import_rows(rows)
    conn = await asyncpg.connect(db_url)
    office_id = None
    try:
        office_id, admin_id, crm_users = await create_import_office(conn)
        secondary = await secondary_indexes(conn)
        dropped = {
            "every index": [],
            "without the trigram index": [n for n, d in secondary if " gin " in d.lower()],
            "without any secondary index": [n for n, _ in secondary],
        }
        raw = {}
        for label, drop in dropped.items():
            raw[label] = await raw_copy(conn, office_id, crm_users, new, drop)
            await _vacuum(conn)
        await init_db()
        try:
            admin = await User.get(id=admin_id)
            runs = {"new": await app_import(conn, admin, new, "new")}
            updated = await raw_update(conn, office_id, admin_id, changed)
            await _vacuum(conn)
            runs["changed"] = await app_import(conn, admin, changed, "changed")
            runs["rerun"] = await app_import(conn, admin, changed, "rerun")
        finally:
            await close_db()
        expected = {"new": (rows, 0), "changed": (0, rows), "rerun": (0, 0)}
        problems = [
            f"{name}: created {run.created:,}, updated {run.updated:,}, errors"
            f" {run.errors:,}, {run.state} (expected created {expected[name][0]:,}, updated"
            f" {expected[name][1]:,}, errors 0, DONE)"
            for name, run in runs.items()
            if (run.created, run.updated) != expected[name] or run.errors or run.state != "DONE"
        ]
        if updated[1] != rows:
            problems.append(f"the hand-written update changed {updated[1]:,} rows, not {rows:,}")
        problems += [
            f"the raw COPY {label} copied {n:,} rows" for label, (_, n) in raw.items() if n != rows
        ]
        problems += await check_imported(conn, office_id, changed)
        return ImportResult(rows, raw, dropped, updated, runs, problems)
    finally:
        if office_id is not None and keep:
            await drop_import_office(conn, office_id)
        await conn.close()


async def profile_imports(db_url: str, *, rows: int = IMPORT_ROWS) -> None:
    """--profile: pyinstrument over the new and the changed import, in a throwaway office
    of their own (the measured runs are never profiled)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("--profile needs pyinstrument: .venv/bin/pip install pyinstrument")
        return
    from api.core.database import close_db, init_db
    from api.users.models import User

    new, changed = import_rows(rows)
    conn = await asyncpg.connect(db_url)
    office_id = None
    try:
        office_id, admin_id, _ = await create_import_office(conn, f"{IMPORT_OFFICE} (profile)")
        await init_db()
        try:
            admin = await User.get(id=admin_id)
            for label, batch in (("new", new), ("changed", changed), ("rerun", changed)):
                profiler = Profiler(interval=0.001, async_mode="enabled")
                run = await app_import(conn, admin, batch, label, profiler)
                print(f"\n===== profile: import of {rows:,} rows, {label} ({_s(run.ms)}) =====")
                print(profiler.output_text(unicode=True, color=False))
        finally:
            await close_db()
    finally:
        if office_id is not None:
            await drop_import_office(conn, office_id)
        await conn.close()


def _s(ms: float) -> str:
    return f"{ms / 1000:.2f} s"


# --------------------------------------------------------------------------- the export


@dataclass
class ExportRun:
    ms: float
    cpu_ms: float  # the process's CPU time meanwhile
    rows: int
    rss_before_kb: int  # resident memory when the work starts (VmRSS)
    peak_kb: int  # the peak resident memory since then (VmHWM, reset at the start)
    peak_reset: bool  # False: VmHWM could not be reset, the peak counts from exec
    file_bytes: int
    sha256: str

    @property
    def growth_mb(self) -> float:
        return max(0, self.peak_kb - self.rss_before_kb) / 1024

    @property
    def rate(self) -> float:
        return self.rows / (self.ms / 1000)


@dataclass
class ExportResult:
    app: ExportRun
    raw: ExportRun
    expected_rows: int
    problems: list[str] = field(default_factory=list)


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_peak() -> bool:
    """Set the process's peak resident set size (VmHWM) back to its current size (Linux
    4.0+); False where that is not allowed, and the peak then counts from the start."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _digest_and_remove(path: Path) -> tuple[int, str]:
    """The file's size and sha256; the file is removed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    size = path.stat().st_size
    path.unlink()
    return size, h.hexdigest()


def raw_export_sql(office_id: int) -> str:
    """The exporter's CSV for an admin (every email and phone shown), as one statement:
    the same cells, formatted by the server the same way, in id order."""
    from api.transfers.csv_format import FORMULA_STARTS

    starts = ", ".join(f"chr({ord(c)})" for c in sorted(FORMULA_STARTS))

    def safe(e: str) -> str:
        return f"CASE WHEN left({e}, 1) IN ({starts}) THEN chr(39) || {e} ELSE {e} END"

    def when(e: str) -> str:
        return f"""to_char({e} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')"""

    columns = [
        *(safe(f"c.{c}") for c in ("external_id", "first_name", "last_name", "email", "phone")),
        safe("co.name"),
        safe("CASE WHEN c.owner_id IS NULL THEN c.crm_owner_id ELSE u.crm_agent_id END"),
        safe("u.name"),
        safe("u.email"),
        "c.status",
        when("c.status_updated_at"),
        when("c.last_activity_at"),
        when("c.at_risk_since"),
        "CASE WHEN c.unsubscribed THEN 'true' ELSE 'false' END",
        "CASE WHEN c.archived THEN 'true' ELSE 'false' END",
        when("c.created_at"),
    ]
    return (
        f"SELECT {', '.join(columns)} FROM contact c"
        " LEFT JOIN app_user u ON u.id = c.owner_id LEFT JOIN company co ON co.id = c.company_id"
        f" WHERE c.office_id = {int(office_id)} AND NOT c.archived ORDER BY c.id"
    )


async def _child_app(job_id: int) -> dict[str, Any]:
    """In a fresh process: `execute_export(job_id)`, its time and memory."""
    from api.core.database import close_db, init_db
    from api.transfers import exporter
    from api.transfers.models import ExportJob

    await init_db()
    try:
        await ExportJob.get(id=job_id)  # the connection and the ORM warm, as in a worker
        gc.collect()
        reset = _reset_peak()
        before = _status_kb("VmRSS")
        t, cpu = time.perf_counter(), time.process_time()
        job = await exporter.execute_export(job_id)
        ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
        peak = _status_kb("VmHWM")
        if job is None or job.state != "DONE":
            raise RuntimeError(f"export {job_id} did not finish: {job and job.state}")
        path = exporter._absolute(job.file_path)
        size, digest = _digest_and_remove(path)
        return {
            "ms": ms,
            "cpu_ms": cpu_ms,
            "rows": job.row_count,
            "rss_before_kb": before,
            "peak_kb": peak,
            "peak_reset": reset,
            "file_bytes": size,
            "sha256": digest,
        }
    finally:
        await close_db()


async def _child_raw(office_id: int, path: Path) -> dict[str, Any]:
    """In a fresh process: one `COPY (SELECT …) TO STDOUT` into a file, after the header."""
    from api.transfers.exporter import HEADERS

    conn = await asyncpg.connect(
        os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    )
    try:
        await conn.fetchval("SELECT 1")
        gc.collect()
        reset = _reset_peak()
        before = _status_kb("VmRSS")
        t, cpu = time.perf_counter(), time.process_time()
        with path.open("wb") as out:
            out.write((",".join(HEADERS) + "\n").encode())
            tag = await conn.copy_from_query(raw_export_sql(office_id), output=out, format="csv")
            out.flush()
            os.fsync(out.fileno())
        ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
        peak = _status_kb("VmHWM")
    finally:
        await conn.close()
    size, digest = _digest_and_remove(path)
    return {
        "ms": ms,
        "cpu_ms": cpu_ms,
        "rows": int(tag.split()[-1]),
        "rss_before_kb": before,
        "peak_kb": peak,
        "peak_reset": reset,
        "file_bytes": size,
        "sha256": digest,
    }


def _run_child(argv: list[str], env: dict[str, str]) -> ExportRun:
    from bench.run import run_child

    Path(env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    return ExportRun(**run_child("bench.transfers", argv, env))


async def measure_export(
    db_url: str, office_id: int, admin_id: int, data_dir: Path
) -> ExportResult:
    """The admin's export of the whole office (no filter): raw COPY first, then the app's job,
    each in a fresh process; the job (and its audit log entry) is removed afterwards."""
    from api.contacts.filters import ContactFilterSpec
    from api.core.database import close_db, init_db
    from api.transfers.exporter import request_export
    from api.users.models import User

    env = {**os.environ, "DATA_DIR": str(data_dir)}
    conn = await asyncpg.connect(db_url)
    try:
        expected = await conn.fetchval(
            "SELECT count(*) FROM contact WHERE office_id = $1 AND NOT archived", office_id
        )
        raw = _run_child(["raw", str(office_id), str(data_dir / "raw-export.csv")], env)
        await init_db()
        try:
            job = await request_export(await User.get(id=admin_id), ContactFilterSpec())
        finally:
            await close_db()
        try:
            app = _run_child(["app", str(job.id)], env)
        finally:
            await conn.execute("DELETE FROM audit_log WHERE export_job_id = $1", job.id)
            await conn.execute("DELETE FROM export_job WHERE id = $1", job.id)
    finally:
        await conn.close()
    problems = []
    if not app.rows == raw.rows == expected:
        problems.append(
            f"rows: the job wrote {app.rows:,}, the raw COPY {raw.rows:,}, the office holds"
            f" {expected:,}"
        )
    if app.sha256 != raw.sha256:
        problems.append(f"the two files differ ({app.file_bytes:,} and {raw.file_bytes:,} bytes)")
    return ExportResult(app, raw, expected, problems)


# --------------------------------------------------------------------------- the report


def _dur(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _rate(rows: int, ms: float) -> str:
    return f"{rows / (ms / 1000):,.0f}"


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


def report_section(imports: ImportResult, export: ExportResult, contacts: int) -> list[str]:
    n = imports.rows
    runs = imports.runs
    every, no_gin, bare = (
        imports.raw["every index"][0],
        imports.raw["without the trigram index"][0],
        imports.raw["without any secondary index"][0],
    )
    n_secondary = len(imports.dropped["without any secondary index"])
    gin = ", ".join(f"`{name}`" for name in imports.dropped["without the trigram index"])
    lines = [
        "",
        "## Imports and export",
        "",
        f"Imports (`bench/transfers.py`): a second office with its own users and no contacts,"
        f" beside the {contacts:,} contacts of the first, so every row goes"
        " into the same `contact` table with every index in place while the other measures"
        f" never see it. {n:,} CRM rows (canonical rows as `crm import` stores them: external"
        " id, names, email, phone, a company for 85 % (800 names, all new to the office), a"
        " CRM owner for 92 % (most mapping to one of the office's agents), ACTIVE for 60 %);"
        " then the same rows with a new phone on every row and every status moving (ACTIVE →"
        " INACTIVE, none → ACTIVE); then the changed file again. Each is recorded by"
        " `request_import` (the job with its rows; the message goes to the in-memory broker,"
        " which nothing consumes) and carried out by `execute_import(job_id)`, the worker's"
        " job, in this process, committed; the time is `execute_import`'s. Before the new"
        " rows, the raw contenders: a COPY (`copy_records_to_table`) of the same rows, as the"
        " contacts the import creates (the same columns and values, the companies inserted"
        " first in the same transaction, untimed), into `contact`, in a transaction rolled"
        " back, then `VACUUM`; once with every index, once with the trigram index dropped"
        " inside the transaction, once with every secondary index dropped. Before the changed"
        " rows, the same writes as hand-written SQL (rolled back, then `VACUUM`).",
        "",
        "| Run | `execute_import` | rows/s | this process's CPU meanwhile | `request_import`"
        " | created | updated | errors | unassigned | StatusChange rows |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "new": f"{n:,} new rows",
        "changed": "the same rows changed",
        "rerun": "the changed file again",
    }
    for key, run in runs.items():
        lines.append(
            f"| {names[key]} | {_dur(run.ms)} | {_rate(run.total, run.ms)} | {_dur(run.cpu_ms)}"
            f" | {_dur(run.request_ms)} | {run.created:,} | {run.updated:,} | {run.errors:,}"
            f" | {run.unassigned:,} | {run.history:,} |"
        )
    upd_ms, _ = imports.raw_update
    lines += [
        "",
        "| Raw contender (one asyncpg transaction, rolled back) | Time | rows/s |",
        "| --- | --- | --- |",
        f"| COPY of the new rows into `contact`, every index ({n_secondary} secondary, the"
        f" trigram GIN {gin} among them) | {_dur(every)} | {_rate(n, every)} |",
        f"| the same COPY without the trigram index | {_dur(no_gin)} | {_rate(n, no_gin)} |",
        "| the same COPY without any secondary index (primary key, unique (office_id,"
        f" external_id) and foreign keys only) | {_dur(bare)} | {_rate(n, bare)} |",
        "| the changed rows: COPY into a temporary table, its ANALYZE, the StatusChange rows"
        " (`INSERT … SELECT`), one `UPDATE … FROM` | "
        f"{_dur(upd_ms)} | {_rate(n, upd_ms)} |",
        "",
        "Where the time goes: the raw COPY itself is index upkeep: of its"
        f" {_dur(every)}, the trigram index takes {_dur(every - no_gin)} and the other"
        f" {n_secondary - 1} secondary indexes {_dur(no_gin - bare)}; without any secondary"
        f" index it moves {_rate(n, bare)} rows/s. The app's import of the new rows spent"
        f" {_dur(runs['new'].cpu_ms)} of its {_dur(runs['new'].ms)} as this process's CPU"
        " (reading the job's JSON, validating and merging the rows in Python, encoding the"
        " COPY), waiting on PostgreSQL the rest; the changed rows"
        f" {_dur(runs['changed'].cpu_ms)} of {_dur(runs['changed'].ms)}; the re-run, which"
        f" writes nothing, {_dur(runs['rerun'].cpu_ms)} of {_dur(runs['rerun'].ms)}."
        " `--profile` prints a profile of each import (in a throwaway office, untimed).",
    ]
    if imports.problems:
        lines += ["", "**The imports went wrong:** " + "; ".join(imports.problems) + "."]
    app, raw = export.app, export.raw
    lines += [
        "",
        f"Export: the first office's admin exports every contact (no filter: the"
        f" {export.expected_rows:,} not archived), recorded as `exportContacts` records it"
        " (`request_export`: the job and its audit log entry; the message goes to the"
        " in-memory broker) and carried out by `execute_export(job_id)` in a fresh Python"
        " process (connected, the ORM warm) that writes the CSV under DATA_DIR. Memory: when"
        " the job starts, the process's peak resident set size is set back to its current size"
        " (`/proc/self/clear_refs`) and that size read (`VmRSS`); afterwards the peak"
        " (`VmHWM`), the kernel's high-water mark, so no short peak between two samples is"
        " missed; the growth is the peak minus the start. (Not `ru_maxrss`: on Linux it keeps"
        " the parent's resident size across fork and exec, here the bench's own, hundreds of"
        " MB after the build.)"
        + (
            ""
            if app.peak_reset and raw.peak_reset
            else " **The peak could not be reset here: it counts from the process's start.**"
        )
        + " The raw contender, in another fresh process: one `COPY (SELECT …) TO STDOUT`"
        " (asyncpg `copy_from_query` into the file) of the same cells, formatted by the"
        " server the way the exporter formats them (formula-looking cells defused, times in"
        " UTC), in id order, after the same header line. Raw first, then the app; the job and"
        " its audit log entry are deleted afterwards.",
        "",
        "| Contender | Rows | Time | rows/s | CPU (the process) | RSS at start | Peak RSS"
        " | Growth | File |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in (
        ("`execute_export` (the worker's job)", app),
        ("raw `COPY (SELECT …) TO STDOUT`", raw),
    ):
        lines.append(
            f"| {name} | {run.rows:,} | {_dur(run.ms)} | {_rate(run.rows, run.ms)}"
            f" | {_dur(run.cpu_ms)} | {_mb(run.rss_before_kb)} | {_mb(run.peak_kb)}"
            f" | {run.growth_mb:.1f} MB | {run.file_bytes / 2**20:,.1f} MiB |"
        )
    lines += [
        "",
        (
            f"The two files are the same, byte for byte (sha256 {app.sha256[:16]}…)."
            if not export.problems
            else "**The export went wrong:** " + "; ".join(export.problems) + "."
        ),
    ]
    return lines


def _child_main(argv: list[str]) -> None:
    from api.core.settings import get_settings

    get_settings.cache_clear()
    if argv[0] == "app":
        result = asyncio.run(_child_app(int(argv[1])))
    elif argv[0] == "raw":
        result = asyncio.run(_child_raw(int(argv[1]), Path(argv[2])))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
