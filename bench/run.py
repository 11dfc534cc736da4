"""`make bench`: the 1,000,000-contact benchmark on PostgreSQL; rewrites BENCHMARKS.md.

One run: a fresh database (migrated by the project, filled with COPY); the status audit run
in this process beside hand-written SQL doing the same work (bench.audit); then the real app
under uvicorn (`crm serve`) and a plain Starlette JSON route (bench.plain_app) against it, and
sequential keep-alive requests (the contact list, search, counts and the reports of
bench.reports), each measure beside raw SQL returning the same rows.
SQL statements per request are counted at the wire (bench.pgwire) on a second start of
both servers, so counting costs the timed runs nothing. Last, with no server running, the
CSV export of the whole office and the CRM imports (bench.transfers), each beside raw COPY.
Then the campaigns (bench.campaigns): the dispatch of 100,000 recipients, and a 10,000-recipient
send through Redis and `crm worker` processes into Postfix's smtp-sink beside a bare aiosmtplib
loop into the same sink.

    python -m bench.run [--keep] [--reuse] [--requests 200] [--audit-runs 2] [--profile]
                        [--import-rows 100000] [--skip-campaigns]
    python -m bench.run --campaigns-only [--reuse] [--output FILE]   (just the campaigns: a
        small database of their own unless --reuse names a kept one; prints, writes FILE if given)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx

PG_HOST, PG_PORT = "127.0.0.1", 5432
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

LIST_QUERY = """query Bench($first: Int!) {
  contacts(first: $first) {
    edges { cursor node { id firstName lastName email status owner { id name } company { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
SEARCH_QUERY = """query Bench($first: Int!, $search: String!) {
  contacts(first: $first, filter: {search: $search}) {
    edges { cursor node { id firstName lastName email status owner { id name } company { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
COUNT_QUERY = "query Bench { contacts(filter: {unassigned: true}) { totalCount } }"
COUNT_PATH = "/contacts/unassigned/count"  # the plain route's count (bench.plain_app)
PAGE = 100
SECOND_RUN_COUNTS = ("flagged", "cleared", "auto_inactivated")


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_child(module: str, argv: list[str], env: dict[str, str], *, timeout: float = 1800) -> Any:
    """`python -m MODULE ARGV…` in a fresh process (a measure of its own memory or start-up);
    its last stdout line is JSON, which is returned; the lines before it are printed."""
    out = subprocess.run(  # noqa: S603 (our own argv)
        [sys.executable, "-m", module, *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} {argv} failed:\n{out.stderr[-5000:]}")
    lines = out.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    return json.loads(lines[-1])


def start_server(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Server:
    log = workdir / f"{name}.log"
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 (our own argv)
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(name, port, proc, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.tail()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not answer /healthz within 90 s:\n{server.tail()}")


def start_both(
    db_url: str, base_env: dict[str, str], workdir: Path, tag: str
) -> tuple[Server, Server]:
    app_env = {**base_env, "DATABASE_URL": db_url}
    app = start_server(
        f"app{tag}", [str(BIN / "crm"), "serve", "--port", "{port}"], app_env, workdir
    )
    try:
        plain_env = {**base_env, "BENCH_PG_URL": db_url.replace("postgres://", "postgresql://", 1)}
        plain = start_server(
            f"plain{tag}",
            [
                str(BIN / "uvicorn"),
                "bench.plain_app:app",
                "--port",
                "{port}",
                "--log-level",
                "info",
            ],
            plain_env,
            workdir,
        )
    except Exception:
        app.stop()
        raise
    return app, plain


async def wait_quiet(db_url: str, *, quiet: float = 5.0, limit: float = 900.0) -> float:
    """Wait until no other session works in the database for `quiet` seconds (the app's
    background jobs, autovacuum); returns the seconds waited."""
    conn = await asyncpg.connect(db_url)
    start = time.monotonic()
    calm_since = start
    try:
        while time.monotonic() - start < limit:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'"
            )
            now = time.monotonic()
            if busy:
                calm_since = now
            elif now - calm_since >= quiet:
                return calm_since - start
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the database stayed busy for {limit:.0f} s")
    finally:
        await conn.close()


async def settle(db_url: str, base_env: dict[str, str], workdir: Path) -> float:
    """Start the app once and let its start-up work finish (the embedded clock catches up
    on the night's status audit), so it does not run during the measurements; then VACUUM."""
    app = start_server(
        "app-settle",
        [str(BIN / "crm"), "serve", "--port", "{port}"],
        {**base_env, "DATABASE_URL": db_url.replace("postgresql://", "postgres://", 1)},
        workdir,
    )
    try:
        waited = await wait_quiet(db_url)
    finally:
        app.stop()
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("VACUUM (ANALYZE) contact")
    finally:
        await conn.close()
    return waited


# --------------------------------------------------------------------------- measuring


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    await fn()
    return (time.perf_counter() - t) * 1000


async def measure(
    contenders: dict[str, Callable[[], Awaitable[Any]]], *, warmup: int, requests: int
) -> dict[str, Timing]:
    """Sequential calls, interleaved (one of each in turn) so drift hits all alike."""
    for _ in range(warmup):
        for fn in contenders.values():
            await fn()
    out = {name: Timing() for name in contenders}
    for _ in range(requests):
        for name, fn in contenders.items():
            out[name].samples.append(await timed(fn))
    return out


# Both servers answer uncompressed: the app gzips only for clients that ask (GZIP_MIN_BYTES),
# the plain route never does, and like is compared with like.
IDENTITY = {"Accept-Encoding": "identity"}


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", **IDENTITY}

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        r = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=self.headers
        )
        body = r.json()
        if r.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"GraphQL failed: {r.status_code} {r.text[:500]}")
        return body["data"]


class PlainClient:
    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", **IDENTITY}

    async def __call__(self, path: str = "/contacts", **params: Any) -> Any:
        r = await self.client.get(path, params=params, headers=self.headers)
        if r.status_code != 200:
            raise RuntimeError(f"plain route failed: {r.status_code} {r.text[:500]}")
        return r.json()["data"]


class RawSQL:
    """The same statements on one asyncpg connection: what the database alone costs."""

    def __init__(self, conn: asyncpg.Connection, office_id: int, admin_id: int) -> None:
        self.conn, self.office_id, self.admin_id = conn, office_id, admin_id

    async def page(self, search: str | None = None) -> Any:
        from bench.plain_app import AUTH_SQL, fetch_page

        await self.conn.fetchrow(AUTH_SQL, [self.admin_id])
        return await fetch_page(self.conn, self.office_id, PAGE, search)

    async def count_unassigned(self) -> int:
        from bench.plain_app import COUNT_UNASSIGNED_SQL

        return await self.conn.fetchval(COUNT_UNASSIGNED_SQL, self.office_id, False)


def same_rows(graphql: Any, plain: Any, raw: Any) -> bool:
    rows = raw[0][:PAGE]
    raw_ids = [r["id"] for r in rows]
    gql_nodes = [e["node"] for e in graphql["contacts"]["edges"]]
    from api.core import ids

    return (
        graphql == plain
        and [n["id"] for n in gql_nodes] == [ids.encode("Contact", i) for i in raw_ids]
        and all(
            (n["owner"] or {}).get("name")
            == (raw[1][r["owner_id"]]["name"] if r["owner_id"] else None)
            and (n["company"] or {}).get("name")
            == (raw[2][r["company_id"]]["name"] if r["company_id"] else None)
            for n, r in zip(gql_nodes, rows, strict=True)
        )
    )


# --------------------------------------------------------------------------- SQL counting

_COLUMNS = re.compile(r"^SELECT (?!COUNT\().*? FROM", re.S)
_IN_LIST = re.compile(r"IN \((\$\d+,? ?)+\)")


def short_sql(sql: str) -> str:
    sql = " ".join(sql.split())
    sql = _COLUMNS.sub("SELECT … FROM", sql)
    return _IN_LIST.sub(lambda m: f"IN (…{m.group(0).count('$')} params)", sql)


def is_reset(kind: str, sql: str) -> bool:
    return kind == "simple" and "RESET ALL" in sql


@dataclass
class Conversation:
    statements: list[tuple[str, str]]

    @property
    def queries(self) -> list[str]:
        return [
            short_sql(sql)
            for kind, sql in self.statements
            if kind != "parse" and not is_reset(kind, sql)
        ]

    @property
    def prepares(self) -> int:
        return sum(1 for kind, _ in self.statements if kind == "parse")

    def summary(self) -> str:
        return (
            f"{len(self.queries)} queries + {self.resets} pool resets"
            f" ({self.prepares} prepared anew)"
        )

    @property
    def resets(self) -> int:
        return sum(1 for kind, sql in self.statements if is_reset(kind, sql))


async def count_statements(
    recorder: Any, call: Callable[[], Awaitable[Any]], *, repeat: int = 3
) -> Conversation:
    # Warm every pooled connection's statement cache first (the pool hands them out in turn).
    for _ in range(12):
        await call()
    recorder.take()
    seen = []
    for _ in range(repeat):
        await call()
        await asyncio.sleep(0.05)  # the pool's release reset runs after the response
        seen.append(recorder.take())
    counts = {len(s) for s in seen}
    if len(counts) != 1:
        print(f"  note: statements per request varied: {sorted(counts)}")
    return Conversation(seen[-1])


# --------------------------------------------------------------------------- plans


async def explain(conn: asyncpg.Connection, sql: str, *args: Any) -> str:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    plan = json.loads(rows[0][0])[0]
    nodes = []

    def walk(node: dict[str, Any]) -> None:
        label = node["Node Type"]
        if node.get("Scan Direction") == "Backward":
            label += " Backward"
        if node.get("Index Name"):
            label += f" {node['Index Name']}"
        nodes.append(f"{label} ({node['Actual Total Time']:.1f} ms, rows {node['Actual Rows']})")
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan["Plan"])
    return f"{plan['Execution Time']:.1f} ms: " + " → ".join(nodes)


# --------------------------------------------------------------------------- machine


LIBRARIES = ("strawberry-graphql", "tortoise-orm", "asyncpg", "starlette", "uvicorn")


def machine(libraries: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """The CPU, cores, RAM, Python and the versions of `libraries`, for a report's header."""
    cpu, ram = "unknown", "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
        "libs": ", ".join(f"{name} {metadata.version(name)}" for name in libraries),
    }


# --------------------------------------------------------------------------- the run


@dataclass
class Row:
    measure: str
    result: Timing
    baseline_name: str
    baseline: Timing | None
    target: str
    limit: float | None  # ratio limit, absolute ms when absolute=True, rows/s when rate=True
    absolute: bool = False
    holds: bool = True  # a further condition of the target (the second audit changed nothing)
    rows: int | None = None  # rows each run moves (both contenders): rows/s shown
    rate: bool = False  # the limit is a floor of rows/s (rows over the median time)
    unit: str = "rows"  # what `rows` counts (messages, for a campaign)

    @property
    def ratio(self) -> float | None:
        return self.result.median / self.baseline.median if self.baseline else None

    @property
    def verdict(self) -> str:
        if self.limit is None:
            # A target that is a condition only (the re-run of an import changes nothing).
            return "—" if self.target == "—" else ("pass" if self.holds else "**FAIL**")
        if self.rate:
            ok = self.rows is not None and self.rows / (self.result.median / 1000) >= self.limit
        else:
            value = self.result.median if self.absolute else self.ratio
            ok = value is not None and value <= self.limit
        return "pass" if ok and self.holds else "**FAIL**"

    def shown(self, t: Timing | None) -> str:
        text = _ms(t)
        if t is None or self.rows is None:
            return text
        rate = f"{self.rows / (t.median / 1000):,.0f} {self.unit}/s"
        return f"{text[:-1]}; {rate})" if text.endswith(")") else f"{text} ({rate})"

    def cells(self) -> list[str]:
        ratio = f"{self.ratio:.2f}×" if self.ratio is not None else "—"
        return [
            self.measure,
            self.shown(self.result),
            self.baseline_name,
            self.shown(self.baseline),
            ratio,
            self.target,
            self.verdict,
        ]

    def line(self) -> str:
        measure, result, base_name, base, ratio, target, verdict = self.cells()
        base = f" vs {base_name} {base}" if self.baseline else ""
        return f"  {measure} [{target}]: {result}{base} → {ratio} {verdict}"


@dataclass
class TextRow:
    """A row of the results table that is no timing (the export's memory)."""

    measure: str
    result: str
    baseline_name: str
    baseline: str
    target: str
    ok: bool | None  # None: no target

    def cells(self) -> list[str]:
        verdict = "—" if self.ok is None else ("pass" if self.ok else "**FAIL**")
        return [self.measure, self.result, self.baseline_name, self.baseline, "—", self.target,
                verdict]  # fmt: skip

    def line(self) -> str:
        measure, result, base_name, base, _, target, verdict = self.cells()
        return f"  {measure} [{target}]: {result} vs {base_name} {base} → {verdict}"


async def _build_or_reuse(args: argparse.Namespace, admin_url: str, db_url: str) -> Any:
    from bench import data

    if args.reuse:
        conn = await asyncpg.connect(db_url)
        try:
            meta = await conn.fetchval("SELECT meta FROM bench_meta")
        finally:
            await conn.close()
        print(f"reusing database {args.db}")
        office = data.Office(**json.loads(meta))
        office.timings = {}
        return office
    print(f"creating database {args.db} and applying migrations")
    await data.create_database(admin_url, args.db)
    t = time.perf_counter()
    await data.migrate()
    migrate_s = time.perf_counter() - t
    print(f"building {args.contacts:,} contacts with COPY")
    office = await data.build(db_url, contacts=args.contacts)
    office.timings = {"migrations": migrate_s, **office.timings}
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("CREATE TABLE bench_meta (meta text)")
        await conn.execute("INSERT INTO bench_meta VALUES ($1)", json.dumps(asdict(office)))
    finally:
        await conn.close()
    for step, seconds in office.timings.items():
        print(f"  {step}: {seconds:.1f} s")
    return office


def server_env(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    """The environment of the servers and workers the bench starts (each adds DATABASE_URL)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "LOG_LEVEL")
    }
    env.update(
        DATA_DIR=str(workdir / "data"),
        SECRET_KEY=os.environ["SECRET_KEY"],
        LOG_LEVEL=args.log_level,
        PYTHONPATH=str(ROOT),
    )
    return env


def measure_campaigns(
    db_url: str, base_env: dict[str, str], workdir: Path, args: argparse.Namespace
) -> Awaitable[Any]:
    from bench import campaigns as bench_campaigns

    return bench_campaigns.measure(
        db_url,
        base_env,
        workdir,
        recipients=args.dispatch_recipients,
        send=args.send_recipients,
        dispatch_runs=args.dispatch_runs,
        send_runs=args.send_runs,
        workers=args.campaign_workers,
        threads=args.campaign_threads,
        profile=args.profile,
        keep=args.keep,
    )


def kept_sections(path: Path) -> str:
    """Sections other benchmarks write into the same file (`make load`), kept as they are."""
    from bench.load import MARK_BEGIN, MARK_END

    text = path.read_text() if path.exists() else ""
    start, end = text.find(MARK_BEGIN), text.find(MARK_END)
    if start < 0 or end < start:
        return ""
    return "\n" + text[start : end + len(MARK_END)] + "\n"


def write_campaigns_report(path: Path, rows: list[Any], section: list[str]) -> None:
    m = machine()
    lines = [
        "# Benchmarks: the campaigns alone",
        "",
        "Written by `python -m bench.run --campaigns-only`.",
        "",
        f"- **Date:** {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['ram']} RAM",
        f"- **Software:** Python {m['python']}; {m['libs']}",
        "",
        "| Measure | Result (median; p95 or runs) | Baseline | Baseline (median; p95 or runs)"
        " | Ratio | Target | Pass |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *("| " + " | ".join(r.cells()) + " |" for r in rows),
        *section,
    ]
    path.write_text("\n".join(lines) + "\n" + kept_sections(path))


async def run_campaigns_only(args: argparse.Namespace) -> int:
    """`--campaigns-only`: the campaigns' section alone, for quick turns."""
    from bench import campaigns as bench_campaigns
    from bench import data

    admin_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    db_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{args.db}"
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    try:
        if args.reuse:
            print(f"reusing database {args.db}")
        else:
            print(f"creating database {args.db} and applying migrations")
            await data.create_database(admin_url, args.db)
            await data.migrate()
        print("campaigns")
        result = await measure_campaigns(db_url, server_env(workdir, args), workdir, args)
        rows = bench_campaigns.rows(result)
        section = bench_campaigns.report_section(result)
        for r in rows:
            print(r.line())
        for line in section[3:]:
            if line:
                print(f"  {line}")
        if args.output:
            write_campaigns_report(Path(args.output), rows, section)
            print(f"wrote {args.output}")
        return 1 if result.problems else 0
    finally:
        if not args.keep:
            await data.drop_database(admin_url, args.db)
            print(f"dropped database {args.db} (--keep keeps it)")
        shutil.rmtree(workdir, ignore_errors=True)


async def run(args: argparse.Namespace) -> int:
    from api.users.auth import issue_token
    from bench import audit as bench_audit
    from bench import data
    from bench.reports import REPORTS, RawReports, plan_statements

    admin_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    db_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{args.db}"
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    base_env = server_env(workdir, args)
    servers: list[Server] = []
    recorder = None
    conn: asyncpg.Connection | None = None
    try:
        office = await _build_or_reuse(args, admin_url, db_url)
        print("first start of the app: waiting for its start-up jobs to finish")
        settle_s = await settle(db_url, base_env, workdir)
        print(f"  {settle_s:.1f} s")

        # ---- the status audit, in this process, before any server runs beside it
        print(
            f"status audit: {args.audit_runs} turn(s) of hand-written SQL, then the app's run,"
            " on the same data; then a second run"
        )
        t = time.perf_counter()
        audit = await bench_audit.measure_audit(
            db_url, office.office_id, office.admin_id, args.audit_runs
        )
        print(f"  {time.perf_counter() - t:.1f} s; the night's work: {audit.prepared}")
        for problem in audit.mismatches:
            print(f"  note: the two audits disagree on {problem}")

        conn = await asyncpg.connect(db_url)
        # A token names the user's token version: the admin's as the database holds it.
        admin = await conn.fetchrow(
            "SELECT id, office_id, token_version FROM app_user WHERE id = $1", office.admin_id
        )
        token = issue_token(SimpleNamespace(**admin))
        pg_version = await conn.fetchval("SHOW server_version")
        raw = RawSQL(conn, office.office_id, office.admin_id)
        raw_reports = RawReports(conn, office.office_id, office.admin_id)
        term = office.search_term

        matches = {
            t: await conn.fetchval(
                "SELECT count(*) FROM contact"
                " WHERE NOT archived AND CAST(search_text AS VARCHAR) LIKE $1",
                f"%{t}%",
            )
            for t in (term, data.COMMON_TERM)
        }

        # ---- timed: both servers straight on PostgreSQL
        print("starting the app (crm serve) and the plain route (bench.plain_app)")
        app, plain = start_both(
            db_url.replace("postgresql://", "postgres://", 1), base_env, workdir, ""
        )
        servers += [app, plain]
        await wait_quiet(db_url, quiet=2.0)
        async with (
            httpx.AsyncClient(base_url=app.url, timeout=60) as ac,
            httpx.AsyncClient(base_url=plain.url, timeout=60) as pc,
        ):
            gql, rest = GraphQLClient(ac, token), PlainClient(pc, token)
            list_vars, search_vars = {"first": PAGE}, {"first": PAGE, "search": term}

            # The same rows, three ways, before any timing.
            checks = {
                "list": same_rows(
                    await gql(LIST_QUERY, list_vars), await rest(first=PAGE), await raw.page()
                ),
                "search": same_rows(
                    await gql(SEARCH_QUERY, search_vars),
                    await rest(first=PAGE, search=term),
                    await raw.page(term),
                ),
                "count": (await gql(COUNT_QUERY))["contacts"]["totalCount"]
                == (await rest(COUNT_PATH))["contacts"]["totalCount"]
                == await raw.count_unassigned()
                == office.unassigned,
            }
            for report in REPORTS:
                checks[report.key] = report.same(
                    await gql(report.query, report.variables), await report.raw(raw_reports)
                )
            for name, ok in checks.items():
                if not ok:
                    raise RuntimeError(f"{name}: GraphQL, the plain route and raw SQL disagree")
            print("results agree (GraphQL = plain route = raw SQL); timing")

            n, w = args.requests, args.warmup
            load_before = os.getloadavg()[0]
            t_list = await measure(
                {
                    "graphql": lambda: gql(LIST_QUERY, list_vars),
                    "plain": lambda: rest(first=PAGE),
                    "raw": raw.page,
                },
                warmup=w,
                requests=n,
            )
            t_count = await measure(
                {
                    "graphql": lambda: gql(COUNT_QUERY),
                    "plain": lambda: rest(COUNT_PATH),
                    "raw": raw.count_unassigned,
                },
                warmup=w,
                requests=n,
            )
            t_search = await measure(
                {
                    "graphql": lambda: gql(SEARCH_QUERY, search_vars),
                    "plain": lambda: rest(first=PAGE, search=term),
                    "raw": lambda: raw.page(term),
                },
                warmup=w,
                requests=n,
            )
            common_vars = {"first": PAGE, "search": data.COMMON_TERM}
            t_common = await measure(
                {
                    "graphql": lambda: gql(SEARCH_QUERY, common_vars),
                    "raw": lambda: raw.page(data.COMMON_TERM),
                },
                warmup=max(3, w // 5),
                requests=max(20, n // 4),
            )
            t_reports = {
                report.key: await measure(
                    {
                        "graphql": functools.partial(gql, report.query, report.variables),
                        "raw": functools.partial(report.raw, raw_reports),
                    },
                    warmup=max(3, w // 3),
                    requests=n,
                )
                for report in REPORTS
            }
            load_after = os.getloadavg()[0]
        for s in (app, plain):
            s.stop()

        # ---- counted: both servers again, through the statement-recording proxy
        from bench.pgwire import StatementRecorder

        print("counting SQL statements per request at the wire")
        recorder = StatementRecorder((PG_HOST, PG_PORT))
        proxy_port = recorder.start()
        proxied = f"postgres://postgres@127.0.0.1:{proxy_port}/{args.db}"
        app, plain = start_both(proxied, base_env, workdir, "-counted")
        servers += [app, plain]
        await wait_quiet(db_url, quiet=2.0)
        recorder.take()
        raw_conn = await asyncpg.connect(proxied.replace("postgres://", "postgresql://", 1))
        async with (
            httpx.AsyncClient(base_url=app.url, timeout=60) as ac,
            httpx.AsyncClient(base_url=plain.url, timeout=60) as pc,
        ):
            gql, rest = GraphQLClient(ac, token), PlainClient(pc, token)
            proxied_reports = RawReports(raw_conn, office.office_id, office.admin_id)
            report_counts = {
                report.key: (
                    await count_statements(
                        recorder, functools.partial(gql, report.query, report.variables)
                    ),
                    await count_statements(
                        recorder, functools.partial(report.raw, proxied_reports)
                    ),
                )
                for report in REPORTS
            }
            sql_counts = {
                "list": (
                    await count_statements(recorder, lambda: gql(LIST_QUERY, list_vars)),
                    await count_statements(recorder, lambda: rest(first=PAGE)),
                ),
                "count": (await count_statements(recorder, lambda: gql(COUNT_QUERY)), None),
                "search": (
                    await count_statements(recorder, lambda: gql(SEARCH_QUERY, search_vars)),
                    await count_statements(recorder, lambda: rest(first=PAGE, search=term)),
                ),
            }
        await raw_conn.close()
        for s in (app, plain):
            s.stop()
        recorder.stop()
        recorder = None
        drift = sorted(
            set(sql_counts["list"][0].queries + sql_counts["search"][0].queries)
            - set(sql_counts["list"][1].queries + sql_counts["search"][1].queries)
        )
        report_drift = {
            key: (app_c.queries, raw_c.queries)
            for key, (app_c, raw_c) in report_counts.items()
            if sorted(app_c.queries) != sorted(raw_c.queries)
        }

        # ---- plans of the statements that touch contact
        from bench.plain_app import COUNT_UNASSIGNED_SQL, PAGE_SQL, SEARCH_PAGE_SQL, like_pattern

        oid = office.office_id
        plans = {
            "list page": await explain(conn, PAGE_SQL, oid, False, PAGE + 1),
            "unassigned count": await explain(conn, COUNT_UNASSIGNED_SQL, oid, False),
            f'search page, "{term}"': await explain(
                conn, SEARCH_PAGE_SQL, oid, False, like_pattern(term), PAGE + 1
            ),
            f'search page, "{data.COMMON_TERM}"': await explain(
                conn, SEARCH_PAGE_SQL, oid, False, like_pattern(data.COMMON_TERM), PAGE + 1
            ),
        }
        settings = await conn.fetchrow(
            "SELECT risk_days, stale_days FROM office WHERE id = $1", office.office_id
        )
        for key, (sql, *params) in plan_statements(
            office.office_id, settings["risk_days"], settings["stale_days"]
        ).items():
            plans[f"report {key}"] = await explain(conn, sql, *params)
        for kind in ("DUPLICATE_EMAIL", "INVALID_EMAIL"):
            plans[f"audit, {kind} (its SELECT)"] = await explain(
                conn,
                "SELECT c.id FROM contact c WHERE c.office_id = $1 AND NOT c.archived AND "
                + bench_audit.DISCREPANCY_WHERE[kind],
                office.office_id,
            )

        # ---- the export and the imports (issue 3): last, nothing else runs beside them
        from bench import transfers as bench_transfers

        print("export of the whole office: raw COPY, then the app's job, each in a fresh process")
        t = time.perf_counter()
        export = await bench_transfers.measure_export(
            db_url, office.office_id, office.admin_id, workdir / "data"
        )
        print(f"  {time.perf_counter() - t:.1f} s")
        print(
            f"imports of {args.import_rows:,} rows into a second office: raw COPY, then the"
            " app's job (new rows, changed rows, the same file again)"
        )
        t = time.perf_counter()
        imports = await bench_transfers.measure_imports(
            db_url, rows=args.import_rows, keep=args.keep
        )
        print(f"  {time.perf_counter() - t:.1f} s")
        for problem in imports.problems + export.problems:
            print(f"  note: {problem}")

        # ---- the campaigns (issue 4): their own office, Redis, workers and mail sink
        from bench import campaigns as bench_campaigns

        campaigns = None
        if not args.skip_campaigns:
            print(
                f"campaigns: dispatch of {args.dispatch_recipients:,} recipients, then"
                f" {args.send_recipients:,} messages through Redis and `crm worker` into"
                " smtp-sink beside a bare aiosmtplib loop"
            )
            t = time.perf_counter()
            campaigns = await measure_campaigns(db_url, base_env, workdir, args)
            print(f"  {time.perf_counter() - t:.1f} s")
            for problem in campaigns.problems:
                print(f"  note: {problem}")

        rows = [
            Row(
                f"`contacts(first: {PAGE})` with owner and company",
                t_list["graphql"],
                "plain Starlette route",
                t_list["plain"],
                "≤ 20 ms median",
                20.0,
                absolute=True,
            ),
            Row(
                f"`contacts(first: {PAGE})` with owner and company",
                t_list["graphql"],
                "plain Starlette route",
                t_list["plain"],
                "≤ 3× plain",
                3.0,
            ),
            Row(
                f"`contacts(first: {PAGE})` with owner and company",
                t_list["graphql"],
                "raw SQL (same 4 statements)",
                t_list["raw"],
                "—",
                None,
            ),
            Row(
                "`contacts(filter: {unassigned: true}) { totalCount }`",
                t_count["graphql"],
                "raw `SELECT count(*)`, same WHERE",
                t_count["raw"],
                "≤ 1.5× raw",
                1.5,
            ),
            Row(
                "… the same count from a plain Starlette route (token check, then the count)",
                t_count["plain"],
                "raw `SELECT count(*)`, same WHERE",
                t_count["raw"],
                "—",
                None,
            ),
            Row(
                f'`contacts(first: {PAGE}, filter: {{search: "{term}"}})`',
                t_search["graphql"],
                "plain Starlette route",
                t_search["plain"],
                "—",
                None,
            ),
            Row(
                f'`contacts(first: {PAGE}, filter: {{search: "{term}"}})`',
                t_search["graphql"],
                "raw SQL (same 4 statements)",
                t_search["raw"],
                "—",
                None,
            ),
        ]
        rows.append(
            Row(
                f'`contacts(first: {PAGE}, filter: {{search: "{data.COMMON_TERM}"}})`',
                t_common["graphql"],
                "raw SQL (same 4 statements)",
                t_common["raw"],
                "—",
                None,
            )
        )
        rows += [
            Row(
                "status audit, first run: `execute_run` (the worker's job), in process",
                Timing([o.ms for o in audit.app]),
                "hand-written SQL, one asyncpg transaction",
                Timing([o.ms for o in audit.hand]),
                "≤ 1.5× hand SQL",
                1.5,
                holds=not audit.mismatches,
            ),
            Row(
                "status audit, second run right after (must change nothing)",
                Timing([audit.second.ms]),
                "—",
                None,
                "≤ 3 s, changes nothing",
                3000.0,
                absolute=True,
                holds=audit.second_changed_nothing,
            ),
        ]
        for report in REPORTS:
            n_raw = len(report_counts[report.key][1].queries)
            rows.append(
                Row(
                    report.label,
                    t_reports[report.key]["graphql"],
                    f"raw SQL (same {n_raw} statements)",
                    t_reports[report.key]["raw"],
                    "≤ 2× raw",
                    2.0,
                )
            )
        rows += transfer_rows(imports, export)
        if campaigns is not None:
            rows += bench_campaigns.rows(campaigns)
        write_report(
            Path(args.output),
            rows=rows,
            office=office,
            sql_counts=sql_counts,
            report_counts=report_counts,
            report_drift=report_drift,
            audit=audit,
            plans=plans,
            drift=drift,
            pg_version=pg_version,
            load=(load_before, load_after),
            settle_s=settle_s,
            matches=matches,
            args=args,
            transfers=bench_transfers.report_section(imports, export, office.contacts),
            campaigns=bench_campaigns.report_section(campaigns)
            if campaigns is not None
            else ["", "## Campaigns", "", "Not measured (`--skip-campaigns`)."],
        )
        for r in rows:
            print(r.line())
        for name, (g, p) in sql_counts.items():
            print(f"  SQL per request, {name}: GraphQL {g.summary()}")
            for q in g.queries:
                print(f"      {q}")
            if p is not None:
                print(f"    plain route {p.summary()}")
        print(
            "  second audit run: "
            + ", ".join(f"{k} {audit.second.counts[k]}" for k in SECOND_RUN_COUNTS)
            + (
                f" (contacts that crossed a line between the runs: {audit.second_explained})"
                if any(audit.second_explained.values())
                else ""
            )
        )
        for name, (g, r) in report_counts.items():
            print(f"  SQL per request, {name}: GraphQL {g.summary()}; raw {r.summary()}")
        for name, (g, r) in report_drift.items():
            print(f"  note: {name}: the app sends {g}, the raw contender {r}")
        for name, plan in plans.items():
            print(f"  plan, {name}: {plan}")
        print(f"wrote {args.output}")

        if args.profile:
            await profile(office, token, term)
            await bench_transfers.profile_imports(db_url, rows=args.import_rows)
        return 0
    finally:
        if conn is not None:
            await conn.close()
        for s in servers:
            s.stop()
        if recorder is not None:
            recorder.stop()
        if not args.keep:
            await data.drop_database(admin_url, args.db)
            print(f"dropped database {args.db} (--keep keeps it)")
        else:
            print(f"kept database {args.db}: rerun with --reuse, drop it with DROP DATABASE")
        shutil.rmtree(workdir, ignore_errors=True)


def transfer_rows(imports: Any, export: Any) -> list[Row | TextRow]:
    """The results table's rows of issue 3: the imports against the raw COPY of the same rows
    into `contact`, and the export's memory and time against a raw COPY of the same cells."""
    n = imports.rows
    raw = Timing([imports.raw["every index"][0]])
    raw_name = "raw COPY of the new rows into `contact`, every index (rolled back)"
    runs = imports.runs
    ok = {
        "new": (runs["new"].created, runs["new"].updated, runs["new"].errors) == (n, 0, 0),
        "changed": (runs["changed"].created, runs["changed"].updated, runs["changed"].errors)
        == (0, n, 0),
        "rerun": (runs["rerun"].created, runs["rerun"].updated, runs["rerun"].errors) == (0, 0, 0),
    }
    out: list[Row | TextRow] = []
    for key, measure in (
        ("new", f"import of {n:,} new rows: `execute_import` (the worker's job), in process"),
        ("changed", f"import of the same {n:,} rows changed (new phone, status moves)"),
    ):
        t = Timing([runs[key].ms])
        out += [
            Row(measure, t, raw_name, raw, "≥ 50,000 rows/s", 50_000, holds=ok[key], rows=n,
                rate=True),
            Row(measure, t, raw_name, raw, "≤ 4× raw COPY", 4.0, holds=ok[key], rows=n),
        ]  # fmt: skip
        if key == "changed":
            out.append(
                Row(
                    measure,
                    t,
                    "hand-written SQL: staging COPY, history INSERT, one UPDATE … FROM",
                    Timing([imports.raw_update[0]]),
                    "—",
                    None,
                    rows=n,
                )
            )
    out.append(
        Row(
            "import of the changed file again (must change nothing)",
            Timing([runs["rerun"].ms]),
            "—",
            None,
            "created 0, updated 0",
            None,
            holds=ok["rerun"],
            rows=n,
        )
    )
    app, raw_export = export.app, export.raw
    label = (
        f"export of {app.rows:,} contacts (the admin, no filter): `execute_export`, fresh process"
    )
    out += [
        TextRow(
            f"{label}, peak memory growth",
            f"{app.growth_mb:.1f} MB (RSS {app.rss_before_kb / 1024:.0f} → peak"
            f" {app.peak_kb / 1024:.0f} MB)",
            "raw `COPY (SELECT …) TO STDOUT`, same cells, fresh process",
            f"{raw_export.growth_mb:.1f} MB (RSS {raw_export.rss_before_kb / 1024:.0f} → peak"
            f" {raw_export.peak_kb / 1024:.0f} MB)",
            "< 100 MB",
            app.growth_mb < 100 and not export.problems,
        ),
        Row(
            f"{label}, time",
            Timing([app.ms]),
            "raw `COPY (SELECT …) TO STDOUT`, same cells, fresh process",
            Timing([raw_export.ms]),
            "—",
            None,
            rows=app.rows,
        ),
    ]
    return out


async def profile(office: Any, token: str, term: str) -> None:
    """pyinstrument over GraphQL requests served in this process (ASGI, no socket)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("--profile needs pyinstrument: .venv/bin/pip install pyinstrument")
        return
    from api.app import create_app
    from api.core.database import close_db, init_db

    await init_db()
    try:
        app = create_app(embedded_workers=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            gql = GraphQLClient(client, token)
            for query, variables, label in (
                (LIST_QUERY, {"first": PAGE}, "contacts(first: 100)"),
                (COUNT_QUERY, None, "unassigned totalCount"),
            ):
                for _ in range(20):
                    await gql(query, variables)
                profiler = Profiler(interval=0.0005, async_mode="enabled")
                profiler.start()
                for _ in range(200):
                    await gql(query, variables)
                profiler.stop()
                flat = profiler.output_text(unicode=True, color=False, flat=True)
                print(f"\n===== profile: 200 × {label}, self time by function (top 40) =====")
                print("\n".join(flat.splitlines()[:48]))
    finally:
        await close_db()


# --------------------------------------------------------------------------- report


def _dur(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.2f} ms"


def _ms(t: Timing | None) -> str:
    if t is None:
        return "—"
    if len(t.samples) >= 20:
        return f"{t.median:.2f} ms (p95 {t.p95:.2f})"
    if len(t.samples) == 1:
        return f"{_dur(t.median)} (one run)"
    return f"{_dur(t.median)} (runs: {', '.join(_dur(s) for s in t.samples)})"


def write_report(
    path: Path,
    *,
    rows: list[Row | TextRow],
    office: Any,
    sql_counts: dict[str, tuple[Conversation, Conversation | None]],
    report_counts: dict[str, tuple[Conversation, Conversation]],
    report_drift: dict[str, tuple[list[str], list[str]]],
    audit: Any,
    plans: dict[str, str],
    drift: list[str],
    pg_version: str,
    load: tuple[float, float],
    settle_s: float,
    matches: dict[str, int],
    args: argparse.Namespace,
    transfers: list[str],
    campaigns: list[str],
) -> None:
    from bench import data

    m = machine()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); every run rewrites this file.",
        "",
        f"- **Date:** {now}",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; client, servers and"
        " PostgreSQL all on this one machine, over 127.0.0.1",
        f"- **Software:** Python {m['python']}, PostgreSQL {pg_version}; {m['libs']}",
        f"- **Data:** one office of {office.contacts:,} contacts ({office.unassigned:,} unassigned"
        f" and not archived), {office.users} users (one deactivated), {office.companies:,}"
        f" companies; riskDays {data.RISK.days}, staleDays 180, autoInactivateDays"
        f" {data.AUTO_INACTIVATE.days}, the contacts as the nightly audits of those settings"
        " leave them; search terms: "
        + ", ".join(f'"{t}" matches {n:,} contacts' for t, n in matches.items()),
        f"- **Method:** {args.requests} sequential requests per contender after {args.warmup}"
        " warm-up rounds (the common search term: a quarter of that; the reports: a third of"
        " the warm-up), contenders interleaved"
        " request by request; one keep-alive httpx client"
        " per server; the caller is the office admin. One-minute load average"
        f" {load[0]:.2f} before timing, {load[1]:.2f} after (other work on the machine inflates"
        " every number; the ratios are the sturdier figures). The status audit, the imports,"
        " the export and the campaigns: see below",
        "",
        "## Results",
        "",
        "| Measure | Result (median; p95 or runs) | Baseline | Baseline (median; p95 or runs)"
        " | Ratio | Target | Pass |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append("| " + " | ".join(r.cells()) + " |")
    lines += audit_section(audit)
    lines += transfers
    lines += campaigns
    lines += [
        "",
        "## SQL statements per request",
        "",
        "Counted at the wire: a second start of both servers connects through a small proxy"
        " (`bench/pgwire.py`) that reads the PostgreSQL protocol and records each `Execute` and"
        " simple `Query` message. asyncpg's pool sends a reset (`RESET ALL` and friends) each"
        " time a connection goes back to the pool; those round trips are counted apart, and so"
        " are `Parse` messages (a statement missing from asyncpg's statement cache costs an"
        " extra round trip to prepare it).",
        "",
        "| Request | GraphQL app | Plain route |",
        "| --- | --- | --- |",
    ]
    for name, (g, p) in sql_counts.items():
        lines.append(f"| {name} | {g.summary()} | {p.summary() if p else '—'} |")
    lines += [
        "",
        "The reports beside their raw SQL contender (one asyncpg connection, counted through"
        " the same proxy):",
        "",
        "| Report | GraphQL app | Raw SQL |",
        "| --- | --- | --- |",
    ]
    for name, (g, r) in report_counts.items():
        lines.append(f"| {name} | {g.summary()} | {r.summary()} |")
    lines += ["", "Statements the app sends:", ""]
    for name, (g, _) in [*sql_counts.items(), *report_counts.items()]:
        lines.append(f"- {name}:")
        lines += [f"  - `{q}`" for q in g.queries]
    if report_drift:
        lines += [
            "",
            "**Note:** the raw contender of these reports no longer sends what the app sends;"
            " update `bench/reports.py`:",
            "",
            *[f"- {name}: app `{g}`, raw `{r}`" for name, (g, r) in report_drift.items()],
        ]
    if drift:
        lines += [
            "",
            "**Note:** the app now sends statements the plain route does not; update"
            " `bench/plain_app.py`:",
            "",
            *[f"- `{q}`" for q in drift],
        ]
    lines += ["", "## Plans (EXPLAIN ANALYZE, warm cache)", ""]
    lines += [f"- {name}: {plan}" for name, plan in plans.items()]
    lines += ["", "## Build", ""]
    if office.timings:
        lines.append(
            "Fresh database, the project's migrations, then COPY (`copy_records_to_table`)"
            " with contact's secondary indexes and constraints dropped and recreated from their"
            " own definitions, then `VACUUM (ANALYZE)`: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in office.timings.items())
            + "."
        )
    else:
        lines.append("Database reused from an earlier run (`--reuse`).")
    lines += [
        "",
        f"The app's first start then worked in the database for {settle_s:.1f} s (its embedded"
        " clock catches up on the night's status audit) before anything was measured; the"
        " bench waits for that, then vacuums again.",
    ]
    path.write_text("\n".join(lines) + "\n" + kept_sections(path))


def audit_section(audit: Any) -> list[str]:
    from bench.audit import KINDS

    keys = [
        "flagged",
        "cleared",
        "auto_inactivated",
        "at_risk",
        "stale",
        "no_status",
        "active",
        "inactive",
        "discrepancies",
        *KINDS,
    ]
    hand, app = audit.hand[0], audit.app[0]
    lines = [
        "",
        "## Status audit",
        "",
        "Both contenders start from the same data. The night's work, made before the first"
        " turn (`bench/audit.py`, `prepare_night`): "
        + ", ".join(f"{n:,} contacts {what}" for what, n in audit.prepared.items())
        + "; besides, the build gives"
        " some contacts malformed addresses (INVALID_EMAIL), some the same address"
        " (DUPLICATE_EMAIL), and some a CRM owner id of the deactivated user"
        " (OWNER_DEACTIVATED)."
        + (
            " The columns the audit writes (`at_risk_since`, `status`, `status_source`,"
            " `status_updated_at`) are then copied to a temporary table."
            if len(audit.app) > 1
            else ""
        ),
        "",
        f"{len(audit.app)} turn(s), each: the hand-written SQL runs `_apply` and"
        " `_record_discrepancies` of api/audit/service.py statement for statement (the same"
        " statements in the same order, the ORM's filters written as plain SQL, the AuditRun"
        " row's bookkeeping included) in one"
        " asyncpg transaction, which it rolls back after reading its counts; VACUUM; then the"
        " app's `execute_run(run_id)` on a run recorded as `runStatusAudit` records it, called"
        " in this process as the worker calls it (no broker, no server), committed. "
        + (
            "Between turns the app's run is undone from the copy (its history and discrepancy"
            " rows deleted) and the tables vacuumed again. "
            if len(audit.app) > 1
            else ""
        )
        + "So both meet the same rows and no dead ones (the rollback's are vacuumed away)."
        " The app's last run stays; the second run follows it at once, with no VACUUM between."
        " `--audit-runs N` times N turns.",
        "",
        "| Count | Hand-written SQL (turn 1) | App, first run (turn 1) | App, second run |",
        "| --- | --- | --- | --- |",
    ]
    for key in keys:
        lines.append(
            f"| {key} | {hand.counts.get(key, 0):,} | {app.counts.get(key, 0):,}"
            f" | {audit.second.counts.get(key, 0):,} |"
        )
    explained = {k: v for k, v in audit.second_explained.items() if v}
    lines += [
        "",
        "Counts that depend on the clock (a contact crossing riskDays or autoInactivateDays in"
        " the seconds between two runs) may differ by a few; "
        + (
            "the two contenders agree on every count."
            if not audit.mismatches
            else "**the two contenders disagree:** " + "; ".join(audit.mismatches) + "."
        )
        + (
            " The second run's changes are all contacts that crossed a line between the two"
            f" runs: {explained}."
            if explained and audit.second_changed_nothing
            else ""
        ),
        "",
        "Where the hand-written SQL's time goes (turn 1): "
        + ", ".join(f"{name} {_dur(ms)}" for name, ms in hand.steps.items())
        + ".",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--audit-runs", type=int, default=1, help="timed first runs of the audit, each way"
    )
    parser.add_argument("--db", help="crm_bench (--campaigns-only: crm_bench_campaigns)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a database kept with --keep")
    parser.add_argument(
        "--profile", action="store_true", help="pyinstrument the GraphQL path and the imports"
    )
    parser.add_argument(
        "--import-rows", type=int, default=100_000, help="rows of each timed import"
    )
    parser.add_argument("--log-level", default="INFO", help="the servers' LOG_LEVEL")
    parser.add_argument(
        "--output", help="the report (default: BENCHMARKS.md; none with --campaigns-only)"
    )
    parser.add_argument(
        "--campaigns-only",
        action="store_true",
        help="just the campaigns, in a database of their own",
    )
    parser.add_argument("--skip-campaigns", action="store_true", help="leave the campaigns out")
    parser.add_argument("--send-recipients", type=int, default=10_000)
    parser.add_argument("--dispatch-recipients", type=int, default=100_000)
    parser.add_argument("--dispatch-runs", type=int, default=3)
    parser.add_argument(
        "--send-runs", type=int, default=3, help="turns of the reference, then the campaign"
    )
    parser.add_argument(
        "--campaign-workers", type=int, default=2, help="`crm worker --processes 1` processes"
    )
    parser.add_argument(
        "--campaign-threads", type=int, default=8, help="--threads of each `crm worker`"
    )
    args = parser.parse_args(argv)
    if args.db is None:
        args.db = "crm_bench_campaigns" if args.campaigns_only and not args.reuse else "crm_bench"
    if args.output is None and not args.campaigns_only:
        args.output = str(ROOT / "BENCHMARKS.md")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db):
        parser.error("--db: lower-case letters, digits and _ only")
    if args.audit_runs < 1:
        parser.error("--audit-runs: at least 1")
    if args.import_rows < 1:
        parser.error("--import-rows: at least 1")
    if args.campaigns_only and args.skip_campaigns:
        parser.error("--campaigns-only and --skip-campaigns exclude each other")
    if not 1 <= args.send_recipients <= args.dispatch_recipients:
        parser.error("--send-recipients: at least 1 and at most --dispatch-recipients")
    if min(args.dispatch_runs, args.send_runs, args.campaign_workers, args.campaign_threads) < 1:
        parser.error("--dispatch-runs, --send-runs, --campaign-*: at least 1")
    if not args.skip_campaigns:
        from bench.campaigns import tool_problems

        missing = tool_problems()
        if missing:
            print("the campaigns' benchmark needs:", *missing, sep="\n  ", file=sys.stderr)
            print("(or leave the campaigns out with --skip-campaigns)", file=sys.stderr)
            return 2
    if args.reuse:
        args.keep = True
    # The bench process talks to the same database with the same key as the servers.
    os.environ["DATABASE_URL"] = f"postgres://postgres@{PG_HOST}:{PG_PORT}/{args.db}"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from api.core.settings import get_settings

    get_settings.cache_clear()
    return asyncio.run(run_campaigns_only(args) if args.campaigns_only else run(args))


if __name__ == "__main__":
    sys.exit(main())
