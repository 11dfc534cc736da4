"""Campaign sends (issue 4, R15–R17) on the benchmark database.

An office of its own ("Bench Campaigns") beside the others, in the same tables, loaded with
COPY: `dispatch` contacts that can be sent to (valid and unique addresses, ACTIVE or no
status), the first `send` of them owned by one agent and the rest spread over nine more;
after them, unassigned, contacts that each skip rule takes (archived, INACTIVE,
unsubscribed, no address, a malformed one, a suppressed one, and a second contact with an
address already taken), so a dispatch runs every branch of its resolution.

The measures:
1. Dispatch: for an OFFICE campaign to "All contacts", `api.campaigns.dispatch.dispatch`
   (recipients resolved, a delivery row per contact, the batches cut and handed to Redis)
   timed in a fresh process that first creates and sends the campaign through the services
   (so the ORM is warm, as in a worker). REDIS_URL points at a private Redis that nothing
   consumes at that time. Checked: the recipients and every skip count as built. Each run's
   campaign is deleted and the tables vacuumed before the next. One more run, untimed,
   is taken apart: each statement's time, and the plan of the resolving INSERT.
2. Turns of two contenders, with the same `crm worker` processes (on the private Redis,
   into Postfix's smtp-sink) throughout:
   - the reference: one aiosmtplib connection, in a fresh process, sending `send` copies of
     a message rendered and composed once by the campaign's own templates.Body and
     messages.compose into the sink;
   - the send: an OFFICE campaign to a custom audience (the agent's contacts: `send`
     recipients), created and sent by the admin through the services (`create_campaign`,
     `send_campaign`) in a fresh process with the workers' settings, carried out by the
     workers. The time runs from the call of `send_campaign` until a poll of the campaign
     row (every 10 ms) sees it SENT; the dispatch (until its batches are committed) is
     polled apart (every 5 ms). Checked: every delivery SENT, one EMAIL_SENT activity each,
     and the sink's message counter grown by exactly the recipients (each message handed
     over once). The CPU time of the workers, PostgreSQL, Redis, the sink and every other
     process meanwhile, from /proc, shows where the machine's time went.

    python -m bench.campaigns dispatch|explain|send|reference|profile ...   (the children)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

OFFICE_NAME = "Bench Campaigns"
DOMAIN = "bench-campaigns.example"
SEED = 20240611
SEND_RECIPIENTS = 10_000
DISPATCH_RECIPIENTS = 100_000
AGENTS = 10
COMPANIES = 300
# Contacts each skip rule takes, appended after the recipients (so a duplicate address
# belongs to a contact with a larger id, which is the one skipped).
SKIPPED = {
    "ARCHIVED": 500,
    "INACTIVE": 2_000,
    "UNSUBSCRIBED": 1_000,
    "NO_EMAIL": 2_000,  # half without an address, half with a malformed one
    "BOUNCED": 300,  # their addresses are in the office's suppression list
    "DUPLICATE": 500,  # the address of a recipient again, in capitals
}
TARGET_RATE = 500  # messages/s
TARGET_SHARE = 0.6  # of the reference's rate
TARGET_DISPATCH_MS = 2000.0
SINK_INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y postfix"
REDIS_INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server"

SUBJECT = "{{ first_name }}, new listings near you this week"
BODY = """<!doctype html>
<html><head><meta charset="utf-8"><title>Weekly listings</title></head>
<body style="font-family:Arial,sans-serif;color:#1f2937;max-width:640px;margin:0 auto">
<h1 style="font-size:22px">Hello {{ first_name }},</h1>
<p>Here is what came onto the market this week around {{ company }}'s neighbourhood, picked
by {{ agent_name }} at {{ office_name }}. Prices have settled since spring, and several of
the flats below were reduced in the last fortnight.</p>
<h2 style="font-size:18px">Three to look at</h2>
<ul>
<li><a href="https://listings.bench-campaigns.example/flats/2041">Two rooms, 48 m², balcony,
third floor with a lift</a>: quiet street, ten minutes from the tram, available from May.</li>
<li><a href="https://listings.bench-campaigns.example/flats/2057">Three rooms, 71 m², garden
share</a>: renovated kitchen, underground parking space included in the price.</li>
<li><a href="https://listings.bench-campaigns.example/houses/318">Terraced house, 124 m²</a>:
four bedrooms, a south-facing garden, a school and a park within walking distance.</li>
</ul>
<p>Mortgage rates moved again this month; our <a
href="https://listings.bench-campaigns.example/guides/mortgage-2024">short guide</a> explains
what the change means for a typical loan, with a calculator for your own numbers.</p>
<p>If you would like to see any of these, or sell a property yourself, just reply to this
message or write to {{ agent_email }}: {{ agent_name }} will call you back the same day.</p>
<p style="color:#6b7280;font-size:13px">You receive this because you are a client of
{{ office_name }}. Figures as of the date of sending; availability changes quickly.</p>
</body></html>
"""


# --------------------------------------------------------------------------- tools


def tool_problems() -> list[str]:
    """What this section needs from the machine and lacks, each with how to install it."""
    problems = []
    if shutil.which("smtp-sink") is None and not Path("/usr/sbin/smtp-sink").exists():
        problems.append(f"Postfix's smtp-sink is missing: install it with `{SINK_INSTALL}`")
    if shutil.which("redis-server") is None:
        problems.append(f"redis-server is missing: install it with `{REDIS_INSTALL}`")
    return problems


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within 20 s")


def _stop(proc: subprocess.Popen[bytes] | None, *, group: bool = False) -> None:
    """Terminate a process we started (its process group when it leads one)."""
    if proc is None or proc.poll() is not None:
        return
    kill = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    kill(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        kill(signal.SIGKILL)
        proc.wait(10)


class SmtpSink:
    """Postfix's smtp-sink on a free port: accepts every message and throws it away. Its
    running counter (-c) says how many messages it took."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self.port = _free_port()
        self.log = workdir / "smtp-sink.log"
        # As root it must drop privileges once the socket is open.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (our own argv)
                [binary, "-c", *user, f"127.0.0.1:{self.port}", "1000"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for_port(self.port, self.proc, "smtp-sink", self.log)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> int:
        found = re.findall(rb"mesg=(\d+)", self.log.read_bytes())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        _stop(self.proc)


class RedisServer:
    """A private redis-server on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.log = workdir / "redis.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (our own argv)
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(workdir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_for_port(self.port, self.proc, "redis-server", self.log)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        _stop(self.proc)


class Workers:
    """`crm worker --processes 1 --threads N`, `count` times, each in its own process group."""

    def __init__(self, env: dict[str, str], workdir: Path, *, count: int, threads: int) -> None:
        from bench.run import BIN, ROOT

        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        for k in range(count):
            log = workdir / f"worker-{k}.log"
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(  # noqa: S603 (our own argv)
                        [str(BIN / "crm"), "worker", "--processes", "1", "--threads", str(threads)],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            self.logs.append(log)
        deadline = time.monotonic() + 60
        while not all(b"ready for action" in log.read_bytes() for log in self.logs):
            for proc, log in zip(self.procs, self.logs, strict=True):
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"crm worker exited: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("crm worker not ready within 60 s")
            time.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) for log in self.logs
        )

    def stop(self) -> None:
        for proc in self.procs:
            _stop(proc, group=True)


# --------------------------------------------------------------------------- CPU accounting


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid → (parent pid, command name, CPU clock ticks so far) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        out[int(entry)] = (int(rest[1]), comm, int(rest[11]) + int(rest[12]))
    return out


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class CpuSnapshot:
    ticks: dict[int, tuple[str, int]]  # pid → (command name, CPU clock ticks so far)
    groups: dict[str, set[int]]  # the pids of each group
    machine: tuple[int, int]
    at: float


def cpu_snapshot(roots: dict[str, list[int]]) -> CpuSnapshot:
    """Every process's CPU ticks, and the groups: the named processes with their
    descendants, and every PostgreSQL process."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    groups = {}
    for name, pids in roots.items():
        seen, stack = set(), list(pids)
        while stack:
            pid = stack.pop()
            if pid in seen or pid not in table:
                continue
            seen.add(pid)
            stack += children.get(pid, [])
        groups[name] = seen
    groups["PostgreSQL"] = {pid for pid, (_, comm, _) in table.items() if comm == "postgres"}
    ticks = {pid: (comm, t) for pid, (_, comm, t) in table.items()}
    return CpuSnapshot(ticks, groups, _machine_ticks(), time.monotonic())


@dataclass
class CpuUse:
    seconds: dict[str, float]  # CPU seconds by group
    others: dict[str, float]  # CPU seconds of the other processes, by command name
    busy: float  # CPU seconds the whole machine was busy
    share: float  # of all its cores' time
    wall: float

    def text(self) -> str:
        """The groups, the busiest other processes, and the rest (the kernel's own work,
        processes that ended meanwhile)."""
        parts = [f"{name} {sec:.1f} s" for name, sec in self.seconds.items()]
        others = sorted(self.others.items(), key=lambda item: -item[1])
        shown = [f"`{comm}` {sec:.1f} s" for comm, sec in others[:4] if sec >= 0.05]
        if shown:
            parts.append("other processes: " + ", ".join(shown))
        rest = self.busy - sum(self.seconds.values()) - sum(self.others.values())
        parts.append(f"the kernel and processes that ended {max(0.0, rest):.1f} s")
        return "; ".join(parts)


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    """CPU seconds each group and each other process used between the snapshots (a process
    that ended meanwhile takes its ticks along), and the machine's busy time."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {
        pid: t - before.ticks[pid][1] if pid in before.ticks else t
        for pid, (_, t) in after.ticks.items()
    }
    seconds, grouped = {}, set()
    for name, pids in after.groups.items():
        seconds[name] = sum(used[p] for p in pids) / tick
        grouped |= pids
    others: dict[str, float] = {}
    for pid, ticks in used.items():
        if pid not in grouped and ticks > 0:
            comm = after.ticks[pid][0]
            others[comm] = others.get(comm, 0.0) + ticks / tick
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    return CpuUse(
        seconds, others, busy / tick, busy / total if total else 0.0, after.at - before.at
    )


# --------------------------------------------------------------------------- the office


@dataclass
class CampaignOffice:
    office_id: int
    admin_id: int
    agent_id: int  # owns the first `send` recipients
    second_agent_id: int  # owns recipients nobody else measures (the profile's)
    recipients: int
    send: int
    skipped: dict[str, int]
    contacts: int
    build_s: float = 0.0


def _ascii(name: str) -> str:
    """A name as an address's local part spells it: lower case, without diacritics (a mail
    server without SMTPUTF8, smtp-sink among them, refuses any other letters)."""
    folded = unicodedata.normalize("NFKD", name.lower().replace("ł", "l"))
    return folded.encode("ascii", "ignore").decode()


CONTACT_COLUMNS = (
    "office_id", "external_id", "first_name", "last_name", "email", "company_id", "owner_id",
    "owner_source", "status", "status_source", "status_updated_at", "unsubscribed", "archived",
    "archived_at", "created_at", "updated_at", "search_text",
)  # fmt: skip


async def drop_office(conn: asyncpg.Connection) -> None:
    """Remove every "Bench Campaigns" office and all of it (one left by an interrupted run
    too). Foreign-key triggers are off in the transaction; every table with an office_id
    is emptied of the office's rows instead, the campaigns' batches by campaign."""
    office_ids = [
        r["id"] for r in await conn.fetch("SELECT id FROM office WHERE name = $1", OFFICE_NAME)
    ]
    if not office_ids:
        return
    tables = [
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'office_id'"
            " AND table_schema = current_schema() AND table_name <> 'office'"
        )
    ]
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "DELETE FROM campaign_batch WHERE campaign_id IN"
            " (SELECT id FROM campaign WHERE office_id = ANY($1::bigint[]))",
            office_ids,
        )
        if "import_job" in tables:
            await conn.execute(
                "DELETE FROM import_row_error WHERE job_id IN"
                " (SELECT id FROM import_job WHERE office_id = ANY($1::bigint[]))",
                office_ids,
            )
        for table in tables:
            await conn.execute(
                f'DELETE FROM "{table}" WHERE office_id = ANY($1::bigint[])', office_ids
            )
        await conn.execute("DELETE FROM office WHERE id = ANY($1::bigint[])", office_ids)
    await conn.execute("VACUUM (ANALYZE) contact, delivery, campaign_batch, activity, app_user")


async def build_office(
    conn: asyncpg.Connection, *, recipients: int = DISPATCH_RECIPIENTS, send: int = SEND_RECIPIENTS
) -> CampaignOffice:
    """The campaigns' office (see the module's docstring), with COPY into the tables as they
    are (every index in place)."""
    from api.contacts.filters import search_text
    from bench import data

    if send > recipients:
        raise ValueError("the send's recipients are some of the dispatch's")
    await drop_office(conn)
    t0 = time.perf_counter()
    rnd = random.Random(SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    office_id = await conn.fetchval(
        "INSERT INTO office (name, timezone, risk_days, stale_days, auto_inactivate_days,"
        " created_at) VALUES ($1, 'Europe/Warsaw', 90, 180, 365, $2) RETURNING id",
        OFFICE_NAME,
        now,
    )
    users = [("Campaign Admin", f"admin@{DOMAIN}", "ADMIN", None)]
    users += [
        (f"Campaign Agent {k:02d}", f"agent{k:02d}@{DOMAIN}", "AGENT", f"CMP-A{k:02d}")
        for k in range(1, AGENTS + 1)
    ]
    user_ids = []
    for name, email, role, crm in users:
        user_ids.append(
            await conn.fetchval(
                "INSERT INTO app_user (office_id, email, name, password_hash, role,"
                " crm_agent_id, office_wide_access, can_export, can_delete, active,"
                " created_at) VALUES ($1, $2, $3, '!', $4, $5, false, false, false, true, $6)"
                " RETURNING id",
                office_id,
                email,
                name,
                role,
                crm,
                now,
            )
        )
    admin_id, agent_ids = user_ids[0], user_ids[1:]
    company_names = sorted(
        {
            f"{rnd.choice(data.COMPANY_WORDS)} {rnd.choice(data.COMPANY_KINDS)} {k}"
            for k in range(COMPANIES)
        }
    )
    company_ids = {
        r["name"]: r["id"]
        for r in await conn.fetch(
            "INSERT INTO company (office_id, name, name_key)"
            " SELECT $1, n, lower(n) FROM unnest($2::text[]) AS n RETURNING id, name",
            office_id,
            company_names,
        )
    }
    firsts, lasts = data.FIRST_NAMES, data.last_names()
    rows: list[tuple] = []
    emails: list[str] = []

    def contact(
        email: str | None,
        owner: int | None,
        *,
        status: str | None = "ACTIVE",
        unsubscribed: bool = False,
        archived: bool = False,
    ) -> None:
        i = len(rows) + 1
        first, last = rnd.choice(firsts), rnd.choice(lasts)
        company = rnd.choice(company_names) if rnd.random() < 0.85 else None
        if email:
            email = email.format(f=_ascii(first), l=_ascii(last), i=i)
        rows.append(
            (
                office_id,
                f"CMP-{i:07d}",
                first,
                last,
                email,
                company_ids[company] if company else None,
                owner,
                "CRM" if owner else None,
                status,
                "IMPORT" if status else None,
                now if status else None,
                unsubscribed,
                archived,
                now if archived else None,
                now,
                now,
                search_text(first, last, email, company.lower() if company else None),
            )
        )
        emails.append(email)

    address = "{f}.{l}.{i}@" + DOMAIN
    for i in range(recipients):
        owner = agent_ids[0] if i < send else agent_ids[1 + i % (AGENTS - 1)]
        contact(address, owner, status="ACTIVE" if i % 3 else None)
    for _ in range(SKIPPED["ARCHIVED"]):
        contact(address, None, archived=True)
    for _ in range(SKIPPED["INACTIVE"]):
        contact(address, None, status="INACTIVE")
    for _ in range(SKIPPED["UNSUBSCRIBED"]):
        contact(address, None, unsubscribed=True)
    for k in range(SKIPPED["NO_EMAIL"]):
        contact(None if k % 2 else "{f}..{l}.{i}@" + DOMAIN, None)
    bounced_from = len(rows)
    for _ in range(SKIPPED["BOUNCED"]):
        contact(address, None)
    for k in range(SKIPPED["DUPLICATE"]):
        contact(emails[(k * 7919) % recipients].upper(), None)
    await conn.copy_records_to_table("contact", records=rows, columns=CONTACT_COLUMNS)
    await conn.executemany(
        "INSERT INTO suppression (office_id, address, reason, created_at)"
        " VALUES ($1, $2, '550 5.1.1 no such user', $3)",
        [(office_id, e, now) for e in emails[bounced_from : bounced_from + SKIPPED["BOUNCED"]]],
    )
    await conn.execute("VACUUM (ANALYZE) contact, company, app_user, suppression")
    return CampaignOffice(
        office_id=office_id,
        admin_id=admin_id,
        agent_id=agent_ids[0],
        second_agent_id=agent_ids[1],
        recipients=recipients,
        send=send,
        skipped=dict(SKIPPED),
        contacts=len(rows),
        build_s=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- the children


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SMTP_URL")}
    return {**env, **extra}


def run_child(argv: list[str], env: dict[str, str], *, timeout: float = 1800) -> dict[str, Any]:
    """`python -m bench.campaigns ARGV…` in a fresh process; its last stdout line is JSON."""
    from bench.run import run_child as run_module

    return run_module("bench.campaigns", argv, env, timeout=timeout)


async def _new_campaign(
    admin_id: int, name: str, *, owner_id: int | None = None
) -> tuple[Any, int]:
    """An OFFICE campaign of the admin's to All contacts, or to a custom audience of one
    agent's contacts. Returns (the admin, the campaign's id)."""
    from api.audiences import service as audiences
    from api.audiences.models import SendAccount
    from api.campaigns.service import CampaignDraft, create_campaign
    from api.contacts.filters import ContactFilterSpec
    from api.users.models import User

    admin = await User.get(id=admin_id)
    if owner_id is None:
        audience = await audiences.system_audience(admin.office_id, SendAccount.OFFICE, None, "all")
    else:
        audience = await audiences.create_audience(
            admin, name, SendAccount.OFFICE, ContactFilterSpec(owner_id=owner_id)
        )
    draft = CampaignDraft(name=name, subject=SUBJECT, body_html=BODY, audience_id=audience.id)
    campaign = await create_campaign(admin, SendAccount.OFFICE, draft)
    return admin, campaign.id


def _pg_url() -> str:
    return os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)


async def _child_dispatch(admin_id: int, run: int) -> dict[str, Any]:
    """Create and send a campaign to All contacts, then time `dispatch` of it."""
    from api.campaigns import dispatch
    from api.campaigns.service import send_campaign
    from api.core.database import close_db, init_db

    await init_db()
    try:
        admin, campaign_id = await _new_campaign(admin_id, f"Bench dispatch {run}")
        await send_campaign(admin, campaign_id)
        t, cpu = time.perf_counter(), time.process_time()
        await dispatch.dispatch(campaign_id)
        ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
    finally:
        await close_db()
    return {"campaign_id": campaign_id, "ms": ms, "cpu_ms": cpu_ms}


class _Statements:
    """Records what the ORM's PostgreSQL client runs (the bench's instrument: the app is
    not changed), and can stop at a statement before it runs."""

    def __init__(self, stop_at: str | None = None) -> None:
        from tortoise.backends.asyncpg.client import AsyncpgDBClient

        self.client = AsyncpgDBClient
        self.originals = (AsyncpgDBClient.execute_query, AsyncpgDBClient.execute_query_dict)
        self.stop_at = stop_at
        self.seen: list[tuple[float, str]] = []
        self.stopped: tuple[str, list[Any]] | None = None

    def __enter__(self) -> _Statements:
        for name, original in zip(
            ("execute_query", "execute_query_dict"), self.originals, strict=True
        ):
            setattr(self.client, name, self._wrap(original))
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.execute_query, self.client.execute_query_dict = self.originals

    def _wrap(self, original: Any) -> Any:
        async def run(client: Any, sql: str, values: list[Any] | None = None) -> Any:
            if self.stop_at and sql.lstrip().startswith(self.stop_at):
                self.stopped = (sql, list(values or []))
                raise _Stopped
            t = time.perf_counter()
            try:
                return await original(client, sql, values)
            finally:
                self.seen.append(((time.perf_counter() - t) * 1000, " ".join(sql.split())))

        return run


class _Stopped(Exception):
    pass


_PLAN_NODE = re.compile(r"^(\s*)(?:->\s*)?([A-Z][^(]*?)\s+\(cost=[^)]*\)\s*(\(actual[^)]*\))")


def plan_summary(lines: list[str]) -> list[str]:
    """EXPLAIN ANALYZE output without costs, filters and sort keys: each node with its actual
    time, how sorts went, each foreign-key trigger, the total."""
    out = []
    for line in lines:
        node = _PLAN_NODE.match(line)
        text = line.strip()
        if node:
            out.append(f"{node[1]}{node[2]} {node[3]}")
        elif text.startswith(("Sort Method", "Trigger for", "Execution Time", "Planning Time")):
            out.append(line.rstrip())
    return out


async def _child_explain(admin_id: int) -> dict[str, Any]:
    """Where a dispatch's time goes, untimed by the measure: every statement of one dispatch
    with its time; then, for a second campaign, the plan of its resolving INSERT (EXPLAIN
    ANALYZE, in a transaction rolled back)."""
    from api.campaigns import dispatch
    from api.campaigns.service import send_campaign
    from api.core.database import close_db, init_db

    await init_db()
    try:
        admin, first = await _new_campaign(admin_id, "Bench dispatch, statements")
        await send_campaign(admin, first)
        with _Statements() as statements:
            t = time.perf_counter()
            await dispatch.dispatch(first)
            total_ms = (time.perf_counter() - t) * 1000
        admin, second = await _new_campaign(admin_id, "Bench dispatch, plan")
        await send_campaign(admin, second)
        resolve = _Statements(stop_at="INSERT INTO delivery")
        with resolve, contextlib.suppress(_Stopped):
            await dispatch.dispatch(second)
    finally:
        await close_db()
    if resolve.stopped is None:
        raise RuntimeError("the dispatch ran no INSERT INTO delivery")
    sql, values = resolve.stopped
    conn = await asyncpg.connect(_pg_url())
    try:
        transaction = conn.transaction()
        await transaction.start()
        plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *values)]
        await transaction.rollback()
    finally:
        await conn.close()
    return {
        "campaign_ids": [first, second],
        "total_ms": total_ms,
        "statements": statements.seen,
        "plan": plan_summary(plan),
    }


async def _child_send(admin_id: int, agent_id: int, roots: dict[str, list[int]]) -> dict[str, Any]:
    """Create a campaign to the agent's contacts and send it; follow the row until done.
    The CPU time of `roots` (process trees by name) and PostgreSQL is read at both ends."""
    from api.campaigns.service import send_campaign
    from api.core.database import close_db, init_db

    await init_db()
    conn = await asyncpg.connect(_pg_url())
    try:
        admin, campaign_id = await _new_campaign(
            admin_id, f"Bench send {datetime.now(UTC):%H:%M:%S}", owner_id=agent_id
        )
        await conn.fetchval("SELECT 1")
        roots = {**roots, "the bench's driver (`send_campaign`, polling)": [os.getpid()]}
        load_before = os.getloadavg()[0]
        before = cpu_snapshot(roots)
        t0_wall, t0 = datetime.now(UTC), time.perf_counter()
        await send_campaign(admin, campaign_id)
        call_ms = (time.perf_counter() - t0) * 1000
        dispatched_ms = None
        deadline = t0 + 1800
        while True:
            state = await conn.fetchval("SELECT state FROM campaign WHERE id = $1", campaign_id)
            now = time.perf_counter()
            if dispatched_ms is None and (
                state not in ("SCHEDULED", "SENDING")
                or await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM campaign_batch WHERE campaign_id = $1)",
                    campaign_id,
                )
            ):
                dispatched_ms = (now - t0) * 1000
            if state not in ("SCHEDULED", "SENDING"):
                total_ms = (now - t0) * 1000
                break
            if now > deadline:
                raise RuntimeError(f"campaign {campaign_id} still {state} after 30 minutes")
            await asyncio.sleep(0.005 if dispatched_ms is None else 0.01)
        used = cpu_used(before, cpu_snapshot(roots))
        load = (load_before, os.getloadavg()[0])
        row = await conn.fetchrow(
            "SELECT c.started_at, c.finished_at, min(d.sent_at) AS first_sent,"
            " max(d.sent_at) AS last_sent FROM campaign c LEFT JOIN delivery d"
            " ON d.campaign_id = c.id WHERE c.id = $1 GROUP BY c.id",
            campaign_id,
        )
    finally:
        await conn.close()
        await close_db()

    def since(at: datetime | None) -> float | None:
        return (at - t0_wall).total_seconds() * 1000 if at else None

    return {
        "campaign_id": campaign_id,
        "state": state,
        "call_ms": call_ms,
        "dispatched_ms": dispatched_ms,
        "total_ms": total_ms,
        "started_ms": since(row["started_at"]),
        "first_sent_ms": since(row["first_sent"]),
        "last_sent_ms": since(row["last_sent"]),
        "finished_ms": since(row["finished_at"]),
        "cpu": asdict(used),
        "load": load,
    }


def reference_message() -> tuple[bytes, str, str]:
    """One message of the campaign, rendered and composed as the sender does; (bytes, from,
    to)."""
    from api.campaigns import links, messages, templates

    body = templates.Body(SUBJECT, BODY)
    delivery_id, campaign_id = 123_456_789, 4242
    to = f"anna.kowalski.{delivery_id}@{DOMAIN}"
    sender = f"no-reply@{DOMAIN}"
    unsubscribe = links.url(links.UNSUBSCRIBE, delivery_id)
    rendered = body.render(
        {
            "first_name": "Anna",
            "last_name": "Kowalski",
            "full_name": "Anna Kowalski",
            "email": to,
            "company": "Nord Baltic Holdings 12",
            "agent_name": "Campaign Agent 01",
            "agent_email": f"agent01@{DOMAIN}",
            "office_name": OFFICE_NAME,
        },
        open_url=links.url(links.OPEN, delivery_id),
        unsubscribe_url=unsubscribe,
        click_url=lambda n: links.url(links.CLICK, delivery_id, n),
    )
    data = messages.compose(
        rendered,
        from_name=OFFICE_NAME,
        from_address=sender,
        reply_to=sender,
        to_name="Anna Kowalski",
        to_address=to,
        message_id=messages.message_id(delivery_id, campaign_id),
        unsubscribe_url=unsubscribe,
    )
    return data, sender, to


async def _child_reference(port: int, count: int) -> dict[str, Any]:
    """One aiosmtplib connection sending the same prebuilt message `count` times."""
    import aiosmtplib

    data, sender, to = reference_message()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
        await smtp.noop()
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await smtp.sendmail(sender, [to], data)
        ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
    return {"ms": ms, "cpu_ms": cpu_ms, "bytes": len(data), "count": count}


async def _child_profile(admin_id: int, agent_id: int, threads: int) -> dict[str, Any]:
    """--profile: a campaign to the agent's contacts, dispatched and sent in this process
    (batches `threads` at a time on one event loop, as one worker process runs them), under
    pyinstrument. Prints the profile; returns the rate."""
    from pyinstrument import Profiler

    from api.campaigns import dispatch, sender
    from api.campaigns.service import send_campaign
    from api.core.database import close_db, fetch, init_db

    await init_db()
    try:
        admin, campaign_id = await _new_campaign(admin_id, "Bench profile", owner_id=agent_id)
        await send_campaign(admin, campaign_id)
        await dispatch.dispatch(campaign_id)
        batch_ids = [
            r["id"]
            for r in await fetch(
                "SELECT id FROM campaign_batch WHERE campaign_id = $1 ORDER BY seq", campaign_id
            )
        ]
        gate = asyncio.Semaphore(threads)

        async def one(batch_id: int) -> None:
            async with gate:
                await sender.send_batch(batch_id)

        sent_before = await _sent(campaign_id)
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        t, cpu = time.perf_counter(), time.process_time()
        profiler.start()
        await asyncio.gather(*(one(b) for b in batch_ids))
        profiler.stop()
        ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
        sent = await _sent(campaign_id) - sent_before
    finally:
        await close_db()
    print(
        f"\n===== profile: {sent:,} messages in {len(batch_ids)} batches, {threads} at a time,"
        f" one process: {ms / 1000:.2f} s ({sent / (ms / 1000):,.0f} messages/s), CPU"
        f" {cpu_ms / 1000:.2f} s ====="
    )
    flat = profiler.output_text(unicode=True, color=False, flat=True)
    print("self time by function (top 40):")
    print("\n".join(flat.splitlines()[:48]))
    print(profiler.output_text(unicode=True, color=False))
    return {"ms": ms, "cpu_ms": cpu_ms, "sent": sent}


async def _sent(campaign_id: int) -> int:
    from api.core.database import fetch

    rows = await fetch(
        "SELECT COUNT(*) AS n FROM delivery WHERE campaign_id = $1 AND state = 'SENT'",
        campaign_id,
    )
    return int(rows[0]["n"])


# --------------------------------------------------------------------------- measuring


@dataclass
class DispatchRun:
    ms: float
    cpu_ms: float
    counts: dict[str, int]  # PENDING, and each skip reason
    batches: int
    enqueued: int  # batches whose message reached Redis


@dataclass
class DispatchAnatomy:
    total_ms: float
    statements: list[tuple[float, str]]  # (ms, SQL) in the order run
    plan: list[str]  # the resolving INSERT's plan, summarised

    def lines(self, *, slow_ms: float = 2.0) -> list[str]:
        slow = [(ms, sql) for ms, sql in self.statements if ms >= slow_ms]
        rest = [ms for ms, _ in self.statements if ms < slow_ms]
        in_sql = sum(ms for ms, _ in self.statements)
        out = [f"- {_s(ms)}: `{_short_sql(sql)}`" for ms, sql in slow]
        out.append(f"- {_s(sum(rest))}: {len(rest)} other statements")
        out.append(
            f"- {_s(self.total_ms - in_sql)}: the rest (Python, handing the batches to Redis)"
        )
        return out


def _short_sql(sql: str, limit: int = 160) -> str:
    sql = re.sub(r"IN \((\$\d+,?)+\)", lambda m: f"IN (…{m[0].count('$')} params)", sql)
    return sql if len(sql) <= limit else sql[: limit - 1] + "…"


@dataclass
class SendRun:
    recipients: int
    timings: dict[str, Any]  # the driver's: moments from the call of send_campaign, in ms
    states: dict[str, int]  # deliveries by state
    activities: int  # EMAIL_SENT activities of the campaign's contacts
    sink_messages: int  # what smtp-sink's counter grew by
    cpu: CpuUse
    load: tuple[float, float]  # one-minute load average before and after

    @property
    def ms(self) -> float:
        return self.timings["total_ms"]

    @property
    def rate(self) -> float:
        return self.recipients / (self.ms / 1000)


@dataclass
class Reference:
    ms: float
    cpu_ms: float
    bytes: int
    count: int

    @property
    def rate(self) -> float:
        return self.count / (self.ms / 1000)


@dataclass
class SendSetup:
    workers: int
    threads: int
    batch_size: int
    worker_errors: list[str] = field(default_factory=list)


@dataclass
class CampaignResult:
    office: CampaignOffice
    dispatch: list[DispatchRun]
    references: list[Reference]
    sends: list[SendRun]
    setup: SendSetup | None
    problems: list[str]
    skipped_send: str | None = None  # why the send was not measured
    anatomy: DispatchAnatomy | None = None
    other_contacts: int = 0  # contacts of the other offices in the same table

    def dispatch_ok(self) -> bool:
        want = {"PENDING": self.office.recipients, **self.office.skipped}
        return all(r.counts == want for r in self.dispatch)


async def _dispatch_counts(conn: asyncpg.Connection, campaign_id: int) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT COALESCE(skip_reason, state) AS what, count(*) AS n FROM delivery"
        " WHERE campaign_id = $1 GROUP BY 1",
        campaign_id,
    )
    return {r["what"]: r["n"] for r in rows}


async def _delete_campaign(conn: asyncpg.Connection, campaign_id: int) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM delivery WHERE campaign_id = $1", campaign_id)
        await conn.execute("DELETE FROM campaign_batch WHERE campaign_id = $1", campaign_id)
        await conn.execute("DELETE FROM campaign WHERE id = $1", campaign_id)
    await conn.execute("VACUUM (ANALYZE) delivery, campaign_batch, campaign")


async def measure_dispatch(
    conn: asyncpg.Connection, office: CampaignOffice, redis: RedisServer, env: dict[str, str],
    runs: int,
) -> list[DispatchRun]:  # fmt: skip
    out = []
    for run in range(1, runs + 1):
        child = run_child(["dispatch", str(office.admin_id), str(run)], env)
        campaign_id = child["campaign_id"]
        counts = await _dispatch_counts(conn, campaign_id)
        batches = await conn.fetchval(
            "SELECT count(*) FROM campaign_batch WHERE campaign_id = $1", campaign_id
        )
        enqueued = await conn.fetchval(
            "SELECT count(*) FROM campaign_batch WHERE campaign_id = $1"
            " AND enqueued_at IS NOT NULL",
            campaign_id,
        )
        out.append(DispatchRun(child["ms"], child["cpu_ms"], counts, batches, enqueued))
        print(
            f"  dispatch run {run}: {child['ms'] / 1000:.2f} s, {batches} batches, {counts}",
            flush=True,
        )
        await _delete_campaign(conn, campaign_id)
        redis.flush()  # the batches' messages: nothing consumes them
    return out


async def dispatch_anatomy(
    conn: asyncpg.Connection, office: CampaignOffice, redis: RedisServer, env: dict[str, str]
) -> DispatchAnatomy:
    """One more dispatch, untimed by the measure, taken apart (see `_child_explain`)."""
    child = run_child(["explain", str(office.admin_id)], env)
    for campaign_id in child["campaign_ids"]:
        await _delete_campaign(conn, campaign_id)
    redis.flush()
    return DispatchAnatomy(
        child["total_ms"], [(ms, sql) for ms, sql in child["statements"]], child["plan"]
    )


async def measure_send(
    conn: asyncpg.Connection,
    office: CampaignOffice,
    sink: SmtpSink,
    redis_pid: int,
    env: dict[str, str],
    workdir: Path,
    *,
    workers: int,
    threads: int,
    runs: int,
) -> tuple[list[Reference], list[SendRun], SendSetup]:
    """`runs` turns of the reference then the send, with the same workers throughout."""
    from api.core.settings import get_settings

    batch_size = int(env.get("CAMPAIGN_BATCH_SIZE") or get_settings().campaign_batch_size)
    setup = SendSetup(workers, threads, batch_size)
    references, sends = [], []
    pool = Workers(env, workdir, count=workers, threads=threads)
    try:
        roots = {"workers": pool.pids, "smtp-sink": [sink.proc.pid], "Redis": [redis_pid]}
        for turn in range(1, runs + 1):
            ref = run_child(["reference", str(sink.port), str(office.send)], env)
            references.append(Reference(**ref))
            sink_before = sink.messages()
            activities_before = await _sent_activities(conn, office)
            timings = run_child(
                ["send", str(office.admin_id), str(office.agent_id), json.dumps(roots)], env
            )
            # The sink's counter moves when a session ends too: let the workers' QUITs land.
            await asyncio.sleep(0.2)
            run = await _send_run(
                conn,
                timings,
                sink.messages() - sink_before,
                await _sent_activities(conn, office) - activities_before,
            )
            sends.append(run)
            print(
                f"    turn {turn}: reference {ref['ms'] / 1000:.2f} s"
                f" ({references[-1].rate:,.0f} messages/s); the campaign {run.ms / 1000:.2f} s"
                f" ({run.rate:,.0f} messages/s), deliveries {run.states}",
                flush=True,
            )
        marks = ("[ERROR]", "[CRITICAL]", "[WARNING]", "Traceback")
        setup.worker_errors = [
            line for line in pool.tail(2000).splitlines() if any(m in line for m in marks)
        ][:20]
    finally:
        pool.stop()
    return references, sends, setup


async def _sent_activities(conn: asyncpg.Connection, office: CampaignOffice) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM activity WHERE office_id = $1 AND kind = 'EMAIL_SENT'",
        office.office_id,
    )


async def _send_run(
    conn: asyncpg.Connection, timings: dict[str, Any], sink_messages: int, activities: int
) -> SendRun:
    campaign_id = timings["campaign_id"]
    states = {
        r["state"]: r["n"]
        for r in await conn.fetch(
            "SELECT state, count(*) AS n FROM delivery WHERE campaign_id = $1 GROUP BY state",
            campaign_id,
        )
    }
    return SendRun(
        recipients=sum(n for state, n in states.items() if state != "SKIPPED"),
        timings=timings,
        states=states,
        activities=activities,
        sink_messages=sink_messages,
        cpu=CpuUse(**timings["cpu"]),
        load=tuple(timings["load"]),
    )


async def measure(
    db_url: str,
    base_env: dict[str, str],
    workdir: Path,
    *,
    recipients: int = DISPATCH_RECIPIENTS,
    send: int = SEND_RECIPIENTS,
    dispatch_runs: int = 3,
    send_runs: int = 3,
    workers: int = 2,
    threads: int = 8,
    profile: bool = False,
    keep: bool = True,
) -> CampaignResult:
    """The whole section: the office, the dispatch runs and their anatomy, then turns of the
    reference and the send. The office goes afterwards when the database is kept (a dropped
    database takes it along)."""
    conn = await asyncpg.connect(db_url)
    redis = sink = None
    try:
        print(f"  building the campaigns' office: {recipients:,} recipients and skipped ones")
        office = await build_office(conn, recipients=recipients, send=send)
        print(f"    {office.contacts:,} contacts in {office.build_s:.1f} s", flush=True)
        redis = RedisServer(workdir)
        app_env = {
            **base_env,
            "DATABASE_URL": db_url.replace("postgresql://", "postgres://", 1),
            "REDIS_URL": redis.url,
        }
        print(f"  dispatch of {recipients:,} recipients, {dispatch_runs} run(s), fresh processes")
        dispatch = await measure_dispatch(conn, office, redis, _child_env(app_env), dispatch_runs)
        anatomy = await dispatch_anatomy(conn, office, redis, _child_env(app_env))
        result = CampaignResult(office, dispatch, [], [], None, [], anatomy=anatomy)
        missing = tool_problems()
        if missing:
            result.skipped_send = "; ".join(missing)
            print(f"  the send is not measured: {result.skipped_send}")
        else:
            sink = SmtpSink(workdir)
            mail_env = _child_env({**app_env, "SMTP_URL": sink.url})
            print(
                f"  {send_runs} turn(s): the reference (one aiosmtplib connection, {send:,}"
                f" messages into smtp-sink), then the campaign ({send:,} recipients,"
                f" {workers} `crm worker` × {threads} threads, Redis, smtp-sink)"
            )
            result.references, result.sends, result.setup = await measure_send(
                conn,
                office,
                sink,
                redis.proc.pid,
                mail_env,
                workdir,
                workers=workers,
                threads=threads,
                runs=send_runs,
            )
            if profile:
                print("  --profile: one process sending a campaign of the same size")
                run_child(
                    ["profile", str(office.admin_id), str(office.second_agent_id), str(threads)],
                    mail_env,
                )
        result.other_contacts = await conn.fetchval(
            "SELECT count(*) FROM contact WHERE office_id <> $1", office.office_id
        )
        result.problems = check(result)
        return result
    finally:
        if sink is not None:
            sink.stop()
        if redis is not None:
            redis.stop()
        if keep:
            await drop_office(conn)
        await conn.close()


def check(result: CampaignResult) -> list[str]:
    """What went wrong, as sentences."""
    problems = [] if result.dispatch_ok() else ["the dispatch did not resolve as built"]
    want = {"PENDING": result.office.recipients, **result.office.skipped}
    for k, run in enumerate(result.dispatch, 1):
        if run.counts != want:
            problems.append(f"dispatch run {k}: deliveries {run.counts}, built {want}")
        if run.enqueued != run.batches:
            problems.append(f"dispatch run {k}: {run.enqueued} of {run.batches} batches enqueued")
    problems += send_problems(result)
    return problems


def send_problems(result: CampaignResult) -> list[str]:
    problems = []
    n = result.office.send
    for k, s in enumerate(result.sends, 1):
        if s.timings["state"] != "SENT" or s.states != {"SENT": n}:
            problems.append(f"send {k} ended {s.timings['state']} with deliveries {s.states}")
        if s.activities != n:
            problems.append(f"send {k} wrote {s.activities:,} EMAIL_SENT activities, not {n:,}")
        if s.sink_messages != n:
            problems.append(f"send {k}: smtp-sink received {s.sink_messages:,} messages, not {n:,}")
    if result.setup is not None and result.setup.worker_errors:
        problems.append("the workers logged: " + " / ".join(result.setup.worker_errors[:5]))
    return problems


# --------------------------------------------------------------------------- the report


def rows(result: CampaignResult) -> list[Any]:
    """The results table's rows of issue 4."""
    from bench.run import Row, TextRow, Timing

    out: list[Any] = []
    office, setup = result.office, result.setup
    if result.sends and setup is not None:
        label = (
            f"campaign of {office.send:,} recipients: `sendCampaign` → SENT, {setup.workers}"
            f" `crm worker` × {setup.threads} threads, Redis, smtp-sink"
        )
        total = Timing([s.ms for s in result.sends])
        ref_name = "one aiosmtplib connection, a prebuilt message, same sink"
        ref = Timing([r.ms for r in result.references])
        ok = not send_problems(result)
        share = f"≥ {TARGET_SHARE:.0%} of the reference's rate (time ≤ {1 / TARGET_SHARE:.2f}×)"
        out += [
            Row(label, total, ref_name, ref, f"≥ {TARGET_RATE} messages/s", TARGET_RATE,
                holds=ok, rows=office.send, rate=True, unit="messages"),
            Row(label, total, ref_name, ref, share, 1 / TARGET_SHARE, holds=ok,
                rows=office.send, unit="messages"),
            Row("… of which the dispatch: `sendCampaign` → its batches committed",
                Timing([s.timings["dispatched_ms"] for s in result.sends]), "—", None, "—",
                None),
        ]  # fmt: skip
    else:
        out.append(
            TextRow(
                f"campaign of {office.send:,} recipients through Redis and `crm worker`",
                "not measured",
                "—",
                "—",
                f"≥ {TARGET_RATE} messages/s",
                False,
            )
        )
    if result.dispatch:
        out.append(
            Row(
                f"dispatch of {office.recipients:,} recipients ({office.contacts:,} contacts):"
                " `dispatch(campaign_id)`, fresh process",
                Timing([r.ms for r in result.dispatch]),
                "—",
                None,
                f"≤ {TARGET_DISPATCH_MS / 1000:.0f} s",
                TARGET_DISPATCH_MS,
                absolute=True,
                holds=result.dispatch_ok(),
                rows=office.contacts,
            )
        )
    return out


def _s(ms: float | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


_MOMENTS = (
    ("call_ms", "`send_campaign` returned (the campaign SCHEDULED, its dispatch in Redis)"),
    ("started_ms", "a worker started the dispatch (`started_at`)"),
    ("dispatched_ms", "the batches committed (polled every 5 ms)"),
    ("first_sent_ms", "the first message accepted (first `sent_at`)"),
    ("last_sent_ms", "the last message accepted (last `sent_at`)"),
    ("finished_ms", "the campaign SENT (`finished_at`)"),
)


def report_section(result: CampaignResult) -> list[str]:
    office, others = result.office, result.other_contacts
    skipped = ", ".join(f"{n:,} {reason}" for reason, n in office.skipped.items())
    beside = f"beside the {others:,} contacts of the other offices" if others else "alone"
    lines = [
        "",
        "## Campaigns",
        "",
        f"An office of their own (`bench/campaigns.py`), {beside} in the same tables, loaded"
        f" with COPY: {office.recipients:,} contacts that can be sent to (unique valid"
        f" addresses, ACTIVE or no status, 85 % with a company), the first {office.send:,}"
        " owned by one agent, the rest by nine others; then, unassigned, the contacts each"
        f" skip rule takes: {skipped} (NO_EMAIL: half without an address, half with a"
        " malformed one; BOUNCED: their addresses in the office's suppression list;"
        " DUPLICATE: a recipient's address again, in capitals). The campaign: an HTML"
        " newsletter with five merge fields and four tracked links. Redis is a private"
        " `redis-server` on a free port (no persistence); the mail server Postfix's"
        " `smtp-sink`.",
        "",
        "Dispatch: an OFFICE campaign to All contacts; a fresh process creates and sends it"
        " through the services, then times `api.campaigns.dispatch.dispatch(campaign_id)`"
        " (the claim, one `INSERT … SELECT` resolving every contact into a delivery row, one"
        " cutting the batches, the batches handed to Redis, which nothing consumes then)."
        " Each run's campaign is deleted and the tables vacuumed before the next.",
        "",
        "| Run | `dispatch` | its process's CPU | batches (enqueued) | deliveries |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k, r in enumerate(result.dispatch, 1):
        counts = ", ".join(f"{what} {n:,}" for what, n in sorted(r.counts.items()))
        lines.append(
            f"| {k} | {_s(r.ms)} | {_s(r.cpu_ms)} | {r.batches} ({r.enqueued}) | {counts} |"
        )
    anatomy = result.anatomy
    if anatomy is not None:
        lines += [
            "",
            "Where a dispatch's time goes: one more run, untimed by the measure"
            f" ({_s(anatomy.total_ms)}), each statement as the ORM's client ran it (the bench"
            " wraps the client; the app is unchanged):",
            "",
            *anatomy.lines(),
            "",
            "The resolving `INSERT … SELECT`'s plan, for another campaign (EXPLAIN (ANALYZE,"
            " BUFFERS) in a transaction rolled back; costs, filters and sort keys left out;"
            " EXPLAIN's own clock reading adds to the times):",
            "",
            "```",
            *anatomy.plan,
            "```",
        ]
    setup = result.setup
    if not result.sends or setup is None:
        lines += ["", f"**The send was not measured:** {result.skipped_send}."]
    else:
        ref = result.references[0]
        turns = range(1, len(result.sends) + 1)
        lines += [
            "",
            f"The send, {len(result.sends)} turn(s), each: first the reference, in a fresh"
            f" process: one aiosmtplib connection sending {ref.count:,} copies of one message"
            f" ({ref.bytes:,} bytes) of the campaign, rendered and composed once by"
            " `templates.Body` and `messages.compose`, with `sendmail` (MAIL, RCPT, DATA, as"
            " the sender's transport). Then an OFFICE campaign to a custom audience (the"
            f" agent's {office.send:,} contacts), created and sent by the admin through the"
            " services (`create_campaign`, `send_campaign`) in a fresh process with the"
            f" workers' settings; {setup.workers} `crm worker --processes 1 --threads"
            f" {setup.threads}` processes, started once before the first turn, on the private"
            f" Redis (batches of {setup.batch_size}) send it into smtp-sink. Its time runs from"
            " the call of `send_campaign` until a poll of the campaign row (every 10 ms) sees"
            " it SENT.",
            "",
            "| Moment, from the call of `send_campaign` | "
            + " | ".join(f"Turn {k}" for k in turns)
            + " |",
            "| --- |" + " --- |" * len(result.sends),
        ]
        for key, label in _MOMENTS:
            lines.append(
                f"| {label} | " + " | ".join(_s(s.timings[key]) for s in result.sends) + " |"
            )
        lines += [
            "| the poll saw it SENT: **the measure** | "
            + " | ".join(f"{_s(s.ms)} ({s.rate:,.0f} messages/s)" for s in result.sends)
            + " |",
            f"| the reference before it: {ref.count:,} messages on one connection | "
            + " | ".join(
                f"{_s(r.ms)} ({r.rate:,.0f} messages/s; its CPU {_s(r.cpu_ms)})"
                for r in result.references
            )
            + " |",
            "| the campaign's rate over the reference's | "
            + " | ".join(
                f"{s.rate / r.rate:.0%}"
                for s, r in zip(result.sends, result.references, strict=True)
            )
            + " |",
            "",
            f"Where the machine's time went during each send ({os.cpu_count()} cores; CPU time"
            " from /proc, read by the driver when it calls `send_campaign` and when it sees"
            " the campaign SENT; PostgreSQL: every postgres process, those that ended"
            " meanwhile not counted):",
            "",
        ]
        for k, s in zip(turns, result.sends, strict=True):
            lines.append(
                f"- turn {k}: {s.cpu.wall:.1f} s, the cores busy {s.cpu.share:.0%} of it"
                f" ({s.cpu.busy:.1f} s): {s.cpu.text()}; per message: workers"
                f" {s.cpu.seconds['workers'] / s.recipients * 1e6:,.0f} µs, PostgreSQL"
                f" {s.cpu.seconds['PostgreSQL'] / s.recipients * 1e6:,.0f} µs (the reference:"
                f" {result.references[k - 1].cpu_ms / ref.count * 1000:,.0f} µs); load"
                f" average {s.load[0]:.2f} before, {s.load[1]:.2f} after."
            )
        lines += [
            "",
            "Checked after each turn: deliveries "
            + "; ".join(str(s.states) for s in result.sends)
            + "; EMAIL_SENT activities written "
            + ", ".join(f"{s.activities:,}" for s in result.sends)
            + "; smtp-sink's counter grew by "
            + ", ".join(f"{s.sink_messages:,}" for s in result.sends)
            + ". `--profile` prints a profile of one process sending a campaign of the same"
            " size (its batches as many at a time as a worker's threads, in process, untimed"
            " here).",
        ]
    if result.problems:
        lines += ["", "**The campaigns went wrong:** " + "; ".join(result.problems) + "."]
    return lines


# --------------------------------------------------------------------------- children's main


def _child_main(argv: list[str]) -> None:
    from api.core.settings import get_settings

    get_settings.cache_clear()
    mode, args = argv[0], [int(a) for a in argv[1:] if a.isdigit()]
    if mode == "dispatch":
        result = asyncio.run(_child_dispatch(*args))
    elif mode == "send":  # admin id, agent id, the process trees to watch as JSON
        result = asyncio.run(_child_send(*args, json.loads(argv[3])))
    elif mode == "reference":
        result = asyncio.run(_child_reference(*args))
    elif mode == "explain":
        result = asyncio.run(_child_explain(*args))
    elif mode == "profile":
        result = asyncio.run(_child_profile(*args))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
