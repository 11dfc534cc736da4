"""Builds the benchmark office: a fresh PostgreSQL database, the project's migrations, then
users, companies and contacts loaded with COPY (secondary indexes and constraints of `contact`
are dropped for the load and recreated from their own definitions, as a restore would)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from api.contacts.filters import search_text

SEED = 20240601
RISK = timedelta(days=90)  # the office's riskDays
AUTO_INACTIVATE = timedelta(days=365)  # the office's autoInactivateDays
OFFICE_NAME = "Bench Realty"
ADMIN_EMAIL = "admin@bench-realty.example"


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words(
    "Anna Maria Piotr Jan Katarzyna Tomasz Agnieszka Paweł Ewa Michał Olivia Liam Emma "
    "Noah Ava Oliver Sophia Elijah Isabella James Mia William Amelia Benjamin Harper "
    "Lucas Evelyn Henry Abigail Alexander Emily Daniel Elizabeth Matthew Sofia Jackson "
    "Avery Sebastian Ella Jack Scarlett Aiden Grace Owen Chloe Samuel Victoria David "
    "Riley Joseph Aria Carter Lily Wyatt Aubrey John Zoey Luke Penelope Gabriel Lillian "
    "Anthony Addison Isaac Layla Dylan Natalie Leo Camila Lincoln Hannah Jaxon Brooklyn "
    "Asher Zoe Christopher Nora Josiah Leah Andrew Savannah Thomas Audrey Joshua Claire "
    "Ezra Eleanor Hudson Skylar Charles Ellie Caleb Samantha Isaiah Stella Ryan Paisley "
    "Nathan Violet Adrian Mila Christian Allison"
)
_ROOTS = _words(
    "kowal now wisz wojc kamin lewand zielin szyman wozni dabrow kozlow jankow mazur "
    "krawc piotr grab pawl michal zajac krol wiecz jablon wrob majew olszew stepn malin "
    "jaworsk adam dud nowick pawlak gorsk sikor walcz baran rutk michalsk szewc ostrow "
    "tomaszew pietrz marcin zalew jasins wrobl kaczm sobczak czarn kubiak smith john will "
    "brown jon garc mill davi rodri marti hern lope gonz wils ander thom tayl moor jack "
    "mart lee pere thomp white harr sanch clark ramir lewi robin walk young"
)
_ENDINGS = _words("ski ska czyk ak ek iak son ton ley ez ers man er ins ford wood well ridge berg")
# Addresses the audit reports as INVALID_EMAIL (one contact in 499 with an address): each
# breaks one rule of api.core.validation.email. "{f}"/"{l}"/"{d}": first, last name, domain.
BAD_EMAILS = (
    "{f}..{l}@{d}",
    "{f}.{l}@{d}.",
    "{f} {l}@{d}",
    "{f}.{l}@@{d}",
    ".{f}{l}@{d}",
    "{f}.{l}@-{d}",
    "{f}_{l}@mail_{d}",
    "{f}.{l}.{d}",
)
# A surname root about one contact in a hundred carries: the planner's hard case for `search`.
COMMON_TERM = _ROOTS[0]
DOMAINS = _words("gmail.com outlook.com wp.pl onet.pl yahoo.com proton.me icloud.com")
COMPANY_WORDS = _words(
    "Nord Baltic Vista Prime Urban Green Royal Metro Silver Oak River Stone Bright Alpha "
    "Delta Summit Harbor Capital Pioneer Golden Crystal Maple Cedar Atlas Orion Nova "
    "Zenith"
)
COMPANY_KINDS = _words("Holdings Estates Logistics Group Partners Labs Builders Invest Media Foods")


@dataclass
class Office:
    """What the measurements need to know about the built office."""

    office_id: int
    admin_id: int
    contacts: int
    users: int
    companies: int
    unassigned: int
    search_term: str
    timings: dict[str, float] = field(default_factory=dict)


def last_names() -> list[str]:
    return [(root + end).capitalize() for root in _ROOTS for end in _ENDINGS]


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def migrate() -> None:
    """The project's own migrations, through the same entry point `crm migrate` uses."""
    from api.core.database import close_db, migrate_db

    try:
        await migrate_db()
    finally:
        await close_db()


def _users(office_id: int, password_hash: str, now: datetime) -> list[tuple]:
    """31 users: an admin, an office-wide agent, 26 agents with CRM ids, 2 without, and a
    deactivated one whose CRM id (CRM-GONE0) unowned contacts still carry (OWNER_DEACTIVATED)."""
    rows = [
        ("Bench Admin", ADMIN_EMAIL, "ADMIN", None, False, True, True, True),
        ("Office Desk", "desk@bench-realty.example", "AGENT", "CRM-W01", True, False, False, True),
    ]
    for i in range(1, 27):
        rows.append((f"Agent {i:02d}", f"agent{i:02d}@bench-realty.example", "AGENT",
                     f"CRM-A{i:02d}", False, i % 5 == 0, False, True))  # fmt: skip
    for i in (27, 28):
        rows.append((f"Agent {i:02d}", f"agent{i:02d}@bench-realty.example", "AGENT",
                     None, False, False, False, True))  # fmt: skip
    rows.append(("Former Agent", "former@bench-realty.example", "AGENT", "CRM-GONE0",
                 False, False, False, False))  # fmt: skip
    return [
        (uid, office_id, email, name, password_hash, role, crm, wide, export, delete, active, now)
        for uid, (name, email, role, crm, wide, export, delete, active) in enumerate(rows, 1)
    ]


def _companies(office_id: int, n: int, rnd: random.Random) -> list[tuple]:
    names: set[str] = set()
    while len(names) < n:
        names.add(
            f"{rnd.choice(COMPANY_WORDS)} {rnd.choice(COMPANY_WORDS)} {rnd.choice(COMPANY_KINDS)}"
            + (f" {rnd.randint(2, 99)}" if rnd.random() < 0.6 else "")
        )
    return [(cid, office_id, name, name.lower()) for cid, name in enumerate(sorted(names), 1)]


def _contacts(
    office_id: int,
    n: int,
    owners: list[tuple[int, str]],
    companies: list[tuple],
    now: datetime,
    rnd: random.Random,
) -> list[tuple]:
    """Contact rows in COPY column order (see CONTACT_COLUMNS); id grows with created_at."""
    firsts, lasts = FIRST_NAMES, last_names()
    # Agents own unequal books: weights between 1 and 6.
    weights = [1 + 5 * rnd.random() for _ in owners]
    total = sum(weights)
    cum = []
    acc = 0.0
    for w in weights:
        acc += w / total
        cum.append(acc)
    span = timedelta(days=3 * 365).total_seconds()
    start = now - timedelta(days=3 * 365)
    rows = []
    rand = rnd.random
    for i in range(1, n + 1):
        first = firsts[int(rand() * len(firsts))]
        last = lasts[int(rand() * len(lasts))]
        created = start + timedelta(seconds=span * i / n)
        email = (
            f"{first}.{last}{i % 1000}@{DOMAINS[i % len(DOMAINS)]}".lower()
            if rand() < 0.93
            else None
        )
        if email and i % 499 == 0:
            form = BAD_EMAILS[(i // 499) % len(BAD_EMAILS)]
            email = form.format(f=first, l=last, d=DOMAINS[i % len(DOMAINS)]).lower()
        phone = f"+48 6{i % 100:02d} {(i * 7919) % 1000:03d} {(i * 104729) % 1000:03d}" if rand() < 0.7 else None  # fmt: skip
        company = companies[int(rand() * len(companies))] if rand() < 0.85 else None
        r = rand()
        if r < 0.08:  # no owner in the CRM
            crm_owner, owner_id, owner_source = None, None, None
        elif r < 0.10:  # an owner without an account here
            crm_owner, owner_id, owner_source = f"CRM-GONE{i % 7}", None, None
        else:
            x = rand()
            k = 0
            while cum[k] < x and k < len(cum) - 1:
                k += 1
            owner_id, crm_owner = owners[k]
            owner_source = "MANUAL" if rand() < 0.01 else "CRM"
        r = rand()
        age = (now - created).total_seconds()
        if r < 0.55:
            status, source = "ACTIVE", ("IMPORT", "USER", "ENGAGEMENT")[i % 3]
        elif r < 0.75:
            status, source = "INACTIVE", ("USER", "AUDIT", "IMPORT")[i % 3]
        else:
            status, source = None, None
        status_at = created + timedelta(seconds=age * rand()) if status else None
        last_activity = created + timedelta(seconds=age * rand()) if rand() < 0.6 else None
        archived = rand() < 0.005
        # As the nightly audit leaves it (R18): at risk exactly when idle for riskDays, and
        # inactivated (by the audit, when it crossed the line) when idle autoInactivateDays.
        idle_since = last_activity or created
        at_risk = idle_since + RISK if now - idle_since > RISK and not archived else None
        if now - idle_since > AUTO_INACTIVATE and status != "INACTIVE" and not archived:
            status, source = "INACTIVE", "AUDIT"
            status_at = idle_since + AUTO_INACTIVATE
        rows.append(
            (
                i,
                office_id,
                f"EXT-{i}",
                first,
                last,
                email,
                phone,
                company[0] if company else None,
                crm_owner,
                owner_id,
                owner_source,
                status,
                source,
                status_at,
                last_activity,
                at_risk,
                rand() < 0.03,
                archived,
                created + timedelta(seconds=age / 2) if archived else None,
                created,
                status_at or created,
                search_text(first, last, email, company[2] if company else None),
            )
        )
    return rows


CONTACT_COLUMNS = [
    "id", "office_id", "external_id", "first_name", "last_name", "email", "phone", "company_id",
    "crm_owner_id", "owner_id", "owner_source", "status", "status_source", "status_updated_at",
    "last_activity_at", "at_risk_since", "unsubscribed", "archived", "archived_at", "created_at",
    "updated_at", "search_text",
]  # fmt: skip
USER_COLUMNS = [
    "id", "office_id", "email", "name", "password_hash", "role", "crm_agent_id",
    "office_wide_access", "can_export", "can_delete", "active", "created_at",
]  # fmt: skip


async def _secondary_schema(conn: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """Definitions of contact's constraints (but the primary key) and plain indexes."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = 'contact'::regclass AND contype <> 'p'"
    )
    indexes = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'contact'"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname"
        " AND c.conrelid = 'contact'::regclass)"
    )
    for row in constraints:
        await conn.execute(f'ALTER TABLE contact DROP CONSTRAINT "{row["conname"]}"')
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    return (
        [f'ALTER TABLE contact ADD CONSTRAINT "{r["conname"]}" {r["def"]}' for r in constraints],
        [r["indexdef"] for r in indexes],
    )


async def _run_all(url: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def build(url: str, *, contacts: int, companies: int = 2000) -> Office:
    """Fill the (migrated, empty) database at `url`; returns what the measures need."""
    from api.users.auth import hash_password

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rnd = random.Random(SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    conn = await asyncpg.connect(url)
    try:
        office_id = await conn.fetchval(
            "INSERT INTO office (name, timezone, risk_days, stale_days, auto_inactivate_days,"
            " created_at) VALUES ($1, 'Europe/Warsaw', $3, 180, $4, $2) RETURNING id",
            OFFICE_NAME,
            now,
            RISK.days,
            AUTO_INACTIVATE.days,
        )
        users = _users(office_id, hash_password("bench-password"), now)
        await conn.copy_records_to_table("app_user", records=users, columns=USER_COLUMNS)
        company_rows = _companies(office_id, companies, rnd)
        await conn.copy_records_to_table(
            "company", records=company_rows, columns=["id", "office_id", "name", "name_key"]
        )
        owners = [(u[0], u[6]) for u in users if u[6] and u[10]]
        rows = _contacts(office_id, contacts, owners, company_rows, now, rnd)
        timings["generate rows"] = time.perf_counter() - t0

        t = time.perf_counter()
        constraints, indexes = await _secondary_schema(conn)
        await conn.copy_records_to_table("contact", records=rows, columns=CONTACT_COLUMNS)
        for table in ("app_user", "company", "contact"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        timings["COPY contacts"] = time.perf_counter() - t

        # Two cores: the trigram GIN index on one connection, everything else on another.
        t = time.perf_counter()
        gin = [sql for sql in indexes if "gin" in sql.lower()]
        rest = [sql for sql in indexes if sql not in gin] + constraints
        await asyncio.gather(_run_all(url, gin), _run_all(url, rest))
        timings["indexes and constraints"] = time.perf_counter() - t

        t = time.perf_counter()
        # VACUUM sets the visibility map (index-only counts) as autovacuum would have by now.
        await conn.execute("VACUUM (ANALYZE) contact")
        await conn.execute("ANALYZE")
        timings["VACUUM ANALYZE"] = time.perf_counter() - t

        admin_id = users[0][0]
        unassigned = sum(1 for r in rows if r[9] is None and not r[17])
        term = _search_term(rows)
    finally:
        await conn.close()
    timings["total"] = time.perf_counter() - t0
    return Office(
        office_id=office_id,
        admin_id=admin_id,
        contacts=contacts,
        users=len(users),
        companies=len(company_rows),
        unassigned=unassigned,
        search_term=term,
        timings=timings,
    )


def _search_term(rows: list[tuple]) -> str:
    """A last-name fragment as a person would type it: the first 6 letters of a surname."""
    return rows[len(rows) // 2][4][:6].lower()
