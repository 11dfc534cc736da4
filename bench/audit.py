"""The status audit (R18) on the benchmark office: the app's own run (`execute_run`, in this
process, as the worker calls it) against hand-written SQL doing the same updates and counts in
one asyncpg transaction, both from the same starting data.

The starting data is a night's work on top of the state the previous audits left
(bench.data builds that state): `prepare_night` moves a sample of contacts over each line the
audit watches. A snapshot of the columns the audit writes lets a run be undone exactly, so the
two contenders can take turns on identical data; VACUUM before each keeps the dead rows of the
previous turn out of the next one's way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.data import AUTO_INACTIVATE

KINDS = ("INACTIVE_BUT_ENGAGED", "OWNER_DEACTIVATED", "DUPLICATE_EMAIL", "INVALID_EMAIL")

# --------------------------------------------------------------------------- the night's work

_LISTED = "office_id = $1 AND NOT archived"
_IDLE = "COALESCE(last_activity_at, created_at)"


async def prepare_night(conn: asyncpg.Connection, office_id: int) -> dict[str, int]:
    """Give the next audit real work; returns how many contacts each change touched. The
    samples are random (seeded): a fresh build gets the same ones, a reused database new ones."""
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    async with conn.transaction():
        await conn.execute(
            "UPDATE office SET auto_inactivate_days = $2 WHERE id = $1",
            office_id,
            AUTO_INACTIVATE.days,
        )
        await conn.fetchval("SELECT setseed(0.2024)")
        done = {
            # Idle past riskDays but not yet marked: the audit flags them.
            "newly at risk": await conn.execute(
                f"UPDATE contact SET at_risk_since = NULL WHERE {_LISTED}"
                " AND at_risk_since IS NOT NULL AND random() < 0.01",
                office_id,
            ),
            # Marked at risk, yet active yesterday (an integration wrote lastActivityAt, or
            # riskDays grew): the audit clears the mark.
            "lively again": await conn.execute(
                f"UPDATE contact SET last_activity_at = $2 WHERE {_LISTED}"
                " AND at_risk_since IS NOT NULL AND random() < 0.01",
                office_id,
                yesterday,
            ),
            # Inactivated by an earlier audit, set ACTIVE again by an import, still idle past
            # autoInactivateDays: the audit inactivates them again (and records the change).
            "to auto-inactivate": await conn.execute(
                f"UPDATE contact SET status = 'ACTIVE', status_source = 'IMPORT',"
                f" status_updated_at = $2 WHERE {_LISTED} AND status = 'INACTIVE'"
                f" AND status_source = 'AUDIT' AND {_IDLE} < $3 AND random() < 0.02",
                office_id,
                yesterday,
                now - AUTO_INACTIVATE - timedelta(days=1),
            ),
            # Inactive by a person's hand, then engaged (an email opened, logged as
            # logActivity does): INACTIVE_BUT_ENGAGED.
            "engaged while inactive": await conn.execute(
                "WITH picked AS (SELECT id FROM contact WHERE office_id = $1 AND NOT archived"
                " AND status = 'INACTIVE' AND status_source <> 'AUDIT' AND random() < 0.02),"
                " logged AS (INSERT INTO activity (office_id, contact_id, kind, at, note,"
                " created_at) SELECT $1, id, 'EMAIL_OPENED', $2, 'bench', $3 FROM picked"
                " RETURNING contact_id)"
                " UPDATE contact c SET last_activity_at = $2, at_risk_since = NULL"
                " FROM logged WHERE c.id = logged.contact_id",
                office_id,
                now - timedelta(hours=1),
                now,
            ),
        }
    await conn.execute("VACUUM (ANALYZE) contact, activity")
    return {name: int(tag.split()[-1]) for name, tag in done.items()}


# --------------------------------------------------------------------------- hand-written SQL

# api/audit/service.py `_apply` and `_record_discrepancies`, statement for statement, as
# plain SQL ($1 is the office throughout).
OFFICE_SQL = "SELECT risk_days, stale_days, auto_inactivate_days FROM office WHERE id = $1"
START_SQL = (
    "UPDATE audit_run SET state = 'RUNNING', started_at = $2, error = NULL"
    " WHERE id = $1 AND state <> 'DONE'"
)
LOCK_SQL = "SELECT state FROM audit_run WHERE id = $1 FOR UPDATE"
FLAG_SQL = (
    f"UPDATE contact SET at_risk_since = $2 WHERE {_LISTED} AND at_risk_since IS NULL"
    f" AND {_IDLE} < $3"
)
CLEAR_SQL = (
    f"UPDATE contact SET at_risk_since = NULL WHERE {_LISTED} AND at_risk_since IS NOT NULL"
    f" AND {_IDLE} >= $2"
)
_INACTIVATE_WHERE = f"{_LISTED} AND (status IS NULL OR status = 'ACTIVE') AND {_IDLE} < $2"
HISTORY_SQL = (
    "INSERT INTO status_change (office_id, contact_id, from_status, to_status, source, reason,"
    " at) SELECT office_id, id, status, 'INACTIVE', 'AUDIT', $3, $4 FROM contact"
    f" WHERE {_INACTIVATE_WHERE}"
)
INACTIVATE_SQL = (
    "UPDATE contact SET status = 'INACTIVE', status_source = 'AUDIT', status_updated_at = $3"
    f" WHERE {_INACTIVATE_WHERE}"
)
AT_RISK_SQL = f"SELECT count(*) FROM contact WHERE {_LISTED} AND at_risk_since IS NOT NULL"
STALE_SQL = (
    f"SELECT count(*) FROM contact WHERE {_LISTED}"
    " AND (status_updated_at < $2 OR status_updated_at IS NULL)"
)
BY_STATUS_SQL = f"SELECT status, count(*) AS n FROM contact WHERE {_LISTED} GROUP BY status"
_BAD_EMAIL = " OR ".join(
    [r"c.email NOT LIKE '%_@_%._%'", "c.email LIKE '%@%!_%' ESCAPE '!'"]
    + [
        f"c.email LIKE '{p}'"
        for p in ("%..%", ".%", "%.", "%.@%", "%@.%", "%@-%", "%-.%", "%.-%", "%-", "% %")
    ]
    + ["c.email LIKE '%@%@%'"]
)
DISCREPANCY_WHERE = {
    "INACTIVE_BUT_ENGAGED": "c.status = 'INACTIVE' AND c.status_source <> 'AUDIT' AND EXISTS"
    " (SELECT 1 FROM activity a WHERE a.contact_id = c.id AND a.at > c.status_updated_at AND"
    " a.kind IN ('EMAIL_CLICKED', 'EMAIL_OPENED', 'EMAIL_REPLIED', 'WEBINAR_ATTENDED'))",
    "OWNER_DEACTIVATED": "c.owner_id IS NULL AND c.crm_owner_id IS NOT NULL AND EXISTS"
    " (SELECT 1 FROM app_user u WHERE u.office_id = c.office_id"
    " AND u.crm_agent_id = c.crm_owner_id AND NOT u.active)",
    "DUPLICATE_EMAIL": "c.email IN (SELECT email FROM contact WHERE office_id = $1"
    " AND NOT archived AND email IS NOT NULL GROUP BY email HAVING count(*) > 1)",
    "INVALID_EMAIL": f"c.email IS NOT NULL AND ({_BAD_EMAIL})",
}
DISCREPANCY_SQL = (
    "INSERT INTO discrepancy (office_id, run_id, contact_id, kind)"
    " SELECT c.office_id, $2, c.id, '{kind}' FROM contact c"
    " WHERE c.office_id = $1 AND NOT c.archived AND {where}"
)
FOUND_SQL = "SELECT count(*) FROM discrepancy WHERE run_id = $1"
FINISH_SQL = (
    "UPDATE audit_run SET state = 'DONE', finished_at = $2, at_risk = $3, at_risk_flagged = $4,"
    " at_risk_cleared = $5, stale = $6, no_status = $7, auto_inactivated = $8,"
    " discrepancies = $9, active_count = $10, inactive_count = $11 WHERE id = $1"
)
BY_KIND_SQL = "SELECT kind, count(*) AS n FROM discrepancy WHERE run_id = $1 GROUP BY kind"


def _rows(tag: str) -> int:
    return int(tag.split()[-1])


@dataclass
class Outcome:
    """What one audit run did and counted."""

    ms: float
    counts: dict[str, int]
    steps: dict[str, float] = field(default_factory=dict)  # hand-written SQL only: ms each


async def hand_audit(conn: asyncpg.Connection, office_id: int, run_id: int) -> Outcome:
    """The audit as plain SQL in one transaction, rolled back at the end (its counts read
    first, off the clock): the data stays as it was for the app's run."""
    steps: dict[str, float] = {}

    async def step(name: str, call: Any, sql: str, *args: Any) -> Any:
        t = time.perf_counter()
        out = await call(sql, *args)
        steps[name] = steps.get(name, 0.0) + (time.perf_counter() - t) * 1000
        return out

    t0 = time.perf_counter()
    tr = conn.transaction()
    await tr.start()
    try:
        now = datetime.now(UTC)
        await step("bookkeeping", conn.execute, START_SQL, run_id, now)
        await step("bookkeeping", conn.fetchval, LOCK_SQL, run_id)
        office = await step("bookkeeping", conn.fetchrow, OFFICE_SQL, office_id)
        risk_cutoff = now - timedelta(days=office["risk_days"])
        flagged = _rows(
            await step("flag at risk", conn.execute, FLAG_SQL, office_id, now, risk_cutoff)
        )
        cleared = _rows(
            await step("clear at risk", conn.execute, CLEAR_SQL, office_id, risk_cutoff)
        )
        inactivated = 0
        if office["auto_inactivate_days"]:
            days = office["auto_inactivate_days"]
            cutoff = now - timedelta(days=days)
            reason = f"No activity for {days} days"
            await step("auto-inactivate", conn.execute, HISTORY_SQL, office_id, cutoff, reason, now)
            inactivated = _rows(
                await step("auto-inactivate", conn.execute, INACTIVATE_SQL, office_id, cutoff, now)
            )
        at_risk = await step("counts", conn.fetchval, AT_RISK_SQL, office_id)
        stale_cutoff = now - timedelta(days=office["stale_days"])
        stale = await step("counts", conn.fetchval, STALE_SQL, office_id, stale_cutoff)
        by_status = {
            r["status"]: r["n"] for r in await step("counts", conn.fetch, BY_STATUS_SQL, office_id)
        }
        for kind, where in DISCREPANCY_WHERE.items():
            sql = DISCREPANCY_SQL.format(kind=kind, where=where)
            await step(f"discrepancies: {kind}", conn.execute, sql, office_id, run_id)
        found = await step("bookkeeping", conn.fetchval, FOUND_SQL, run_id)
        counts = {
            "flagged": flagged,
            "cleared": cleared,
            "auto_inactivated": inactivated,
            "at_risk": at_risk,
            "stale": stale,
            "no_status": by_status.get(None, 0),
            "active": by_status.get("ACTIVE", 0),
            "inactive": by_status.get("INACTIVE", 0),
            "discrepancies": found,
        }
        await step(
            "bookkeeping",
            conn.execute,
            FINISH_SQL,
            run_id,
            datetime.now(UTC),
            at_risk,
            flagged,
            cleared,
            stale,
            counts["no_status"],
            inactivated,
            found,
            counts["active"],
            counts["inactive"],
        )
        ms = (time.perf_counter() - t0) * 1000
        for r in await conn.fetch(BY_KIND_SQL, run_id):
            counts[r["kind"]] = r["n"]
    finally:
        await tr.rollback()
    return Outcome(ms, counts, steps)


# --------------------------------------------------------------------------- the app's run


async def new_run(office_id: int, admin_id: int) -> int:
    """An AuditRun recorded as `runStatusAudit` (request_audit) records it, not enqueued."""
    from api.audit.models import AuditRun, AuditTrigger

    run = await AuditRun.create(
        office_id=office_id, trigger=AuditTrigger.MANUAL, requested_by_id=admin_id
    )
    return run.id


async def app_audit(conn: asyncpg.Connection, run_id: int) -> Outcome:
    """`execute_run(run_id)`, the worker's job, timed; its counts read back afterwards."""
    from api.audit.service import execute_run

    t0 = time.perf_counter()
    run = await execute_run(run_id)
    ms = (time.perf_counter() - t0) * 1000
    if run is None or run.state != "DONE":
        raise RuntimeError(f"audit run {run_id} did not finish: {run and run.state}")
    counts = {
        "flagged": run.at_risk_flagged,
        "cleared": run.at_risk_cleared,
        "auto_inactivated": run.auto_inactivated,
        "at_risk": run.at_risk,
        "stale": run.stale,
        "no_status": run.no_status,
        "active": run.active_count,
        "inactive": run.inactive_count,
        "discrepancies": run.discrepancies,
    }
    for r in await conn.fetch(BY_KIND_SQL, run_id):
        counts[r["kind"]] = r["n"]
    return Outcome(ms, counts)


# --------------------------------------------------------------------------- undoing a run


class Snapshot:
    """The columns the audit writes, kept in a temporary table of `conn`'s session."""

    COLUMNS = ("at_risk_since", "status", "status_source", "status_updated_at")

    def __init__(self, conn: asyncpg.Connection, office_id: int) -> None:
        self.conn, self.office_id = conn, office_id
        self.last_change = 0

    async def take(self) -> None:
        cols = ", ".join(self.COLUMNS)
        await self.conn.execute(
            f"CREATE TEMP TABLE bench_snapshot AS SELECT id, {cols} FROM contact"
            f" WHERE office_id = {int(self.office_id)}"
        )
        self.last_change = await self.conn.fetchval(
            "SELECT coalesce(max(id), 0) FROM status_change"
        )

    async def restore(self, run_ids: list[int]) -> int:
        """Undo the audit runs `run_ids` (and their history rows); returns contacts restored."""
        sets = ", ".join(f"{c} = s.{c}" for c in self.COLUMNS)
        now = ", ".join(f"c.{c}" for c in self.COLUMNS)
        then = ", ".join(f"s.{c}" for c in self.COLUMNS)
        async with self.conn.transaction():
            tag = await self.conn.execute(
                f"UPDATE contact c SET {sets} FROM bench_snapshot s WHERE c.id = s.id"
                f" AND ({now}) IS DISTINCT FROM ({then})"
            )
            await self.conn.execute("DELETE FROM status_change WHERE id > $1", self.last_change)
            await self.conn.execute("DELETE FROM audit_run WHERE id = ANY($1)", run_ids)
        return _rows(tag)

    async def drop(self) -> None:
        await self.conn.execute("DROP TABLE IF EXISTS bench_snapshot")


async def vacuum(conn: asyncpg.Connection, analyze: bool = False) -> None:
    option = "(ANALYZE) " if analyze else ""
    await conn.execute(f"VACUUM {option}contact, status_change, discrepancy, audit_run")


# --------------------------------------------------------------------------- the measure

# Counts that move with the clock: a contact may cross a line in the seconds between two runs.
TIME_BOUND = ("flagged", "auto_inactivated", "at_risk", "stale", "active", "inactive")


@dataclass
class AuditResult:
    prepared: dict[str, int]
    hand: list[Outcome]
    app: list[Outcome]
    second: Outcome
    second_explained: dict[str, int]  # second-run changes explained by the clock
    mismatches: list[str]

    @property
    def second_changed_nothing(self) -> bool:
        return all(
            self.second.counts[k] == self.second_explained.get(k, 0)
            for k in ("flagged", "cleared", "auto_inactivated")
        )


def compare(hand: Outcome, app: Outcome) -> list[str]:
    """Where the two runs disagree beyond what a few seconds of clock explain."""
    out = []
    for key in sorted(set(hand.counts) | set(app.counts)):
        a, b = hand.counts.get(key, 0), app.counts.get(key, 0)
        if a != b and (key not in TIME_BOUND or abs(a - b) > 5):
            out.append(f"{key}: hand-written SQL {a}, app {b}")
    return out


async def _explained(conn: asyncpg.Connection, office_id: int, first: int, second: int) -> dict:
    """Second-run changes that are contacts crossing a line between the two runs' clocks."""
    row = await conn.fetchrow(
        "SELECT r1.started_at AS t1, r2.started_at AS t2, o.risk_days, o.auto_inactivate_days"
        " FROM audit_run r1, audit_run r2, office o WHERE r1.id = $1 AND r2.id = $2"
        " AND o.id = $3",
        first,
        second,
        office_id,
    )
    risk = timedelta(days=row["risk_days"])
    auto = timedelta(days=row["auto_inactivate_days"] or 0)
    flagged = await conn.fetchval(
        f"SELECT count(*) FROM contact WHERE {_LISTED} AND at_risk_since >= $2 AND {_IDLE} >= $3",
        office_id,
        row["t2"],
        row["t1"] - risk,
    )
    inactivated = await conn.fetchval(
        f"SELECT count(*) FROM contact WHERE {_LISTED} AND status_source = 'AUDIT'"
        f" AND status_updated_at >= $2 AND {_IDLE} >= $3",
        office_id,
        row["t2"],
        row["t1"] - auto,
    )
    return {"flagged": flagged, "auto_inactivated": inactivated}


async def measure_audit(db_url: str, office_id: int, admin_id: int, runs: int) -> AuditResult:
    """`runs` turns of (hand-written SQL, then the app) on identical data, each after a
    VACUUM; the app's last run stays, and a second app run follows straight after it."""
    from api.core.database import close_db, init_db

    conn = await asyncpg.connect(db_url)
    await init_db()
    snapshot = Snapshot(conn, office_id)
    try:
        prepared = await prepare_night(conn, office_id)
        if runs > 1:
            await snapshot.take()
        hand: list[Outcome] = []
        app: list[Outcome] = []
        mismatches: list[str] = []
        for turn in range(runs):
            run_id = await new_run(office_id, admin_id)
            hand.append(await hand_audit(conn, office_id, run_id))
            await conn.execute("DELETE FROM audit_run WHERE id = $1", run_id)
            await vacuum(conn)
            run_id = await new_run(office_id, admin_id)
            app.append(await app_audit(conn, run_id))
            mismatches += compare(hand[-1], app[-1])
            if turn < runs - 1:
                await snapshot.restore([run_id])
                await vacuum(conn)
        second_id = await new_run(office_id, admin_id)
        second = await app_audit(conn, second_id)
        explained = await _explained(conn, office_id, run_id, second_id)
        await snapshot.drop()
        await vacuum(conn, analyze=True)
        return AuditResult(prepared, hand, app, second, explained, mismatches)
    finally:
        await close_db()
        await conn.close()
