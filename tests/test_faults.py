"""Faults, with real parts: PostgreSQL restarted under traffic, Redis stopped, and the
introspection setting.

- PostgreSQL: a cluster of this test's own (initdb into a temporary directory, a free port),
  never the machine's shared one. `crm serve` runs against it under a steady stream of
  GraphQL requests while the cluster is stopped and started again: during the gap every
  answer is a clean SERVICE_UNAVAILABLE error, and afterwards requests succeed again within
  a few seconds, from the same server process.
- Redis: a redis-server of this test's own is the app's REDIS_URL, and is stopped. Reads and
  logins keep working; mutations that hand work to the workers answer normally, their jobs
  recorded QUEUED (the campaign SCHEDULED); once Redis is back, the clock's step hands them
  over again and a `crm worker` finishes them.
- GRAPHQL_INTROSPECTION: off by default with PostgreSQL, on with SQLite, else as set.

Skipped without the PostgreSQL binaries (/usr/lib/postgresql/*/bin) or redis-server, and the
Redis test without REDIS_URL (it runs in the PostgreSQL + Redis pass of tests/run.py)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import workers.audit
import workers.campaigns
import workers.exports
import workers.imports
from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.audit import service as audits
from api.audit.models import AuditRun
from api.campaigns import service as campaigns
from api.core import ids
from api.core.jobs import JobState
from api.core.ratelimit import RedisCounter
from api.core.settings import Settings, get_settings
from api.transfers import exporter, importer
from api.users import auth
from api.users.auth import issue_token
from tests.conftest import PASSWORD, assert_clean, error_codes, make_user
from tests.mail_server import free_port
from tests.test_campaign_delivery import redis_for_actors
from tests.workers_for_tests import crm_worker, stop

ROOT = Path(__file__).resolve().parent.parent
CRM = [sys.executable, "-m", "api.cli"]
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
# How soon after PostgreSQL is back requests must succeed again.
RECOVERY_SECONDS = 5.0


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian's layout: /usr/lib/postgresql/15/bin)."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


PG_BIN = _postgres_bin()
# initdb and postgres refuse to run as root: the cluster then belongs to the postgres user.
AS_ROOT = os.geteuid() == 0
PG_USABLE = PG_BIN is not None and (
    not AS_ROOT or (shutil.which("runuser") is not None and _user_exists("postgres"))
)

needs_postgres_binaries = pytest.mark.skipif(
    not PG_USABLE,
    reason="needs PostgreSQL's server binaries under /usr/lib/postgresql/*/bin (initdb, pg_ctl)"
    " and, as root, runuser and a postgres user",
)


def log_text(path: Path) -> str:
    """A process's output, for a failure message."""
    return path.read_text() if path.exists() else "(no output)"


async def until(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# --- the parts ------------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own: trust authentication, 127.0.0.1 on a free
    port, its socket and files in a temporary directory; stopped and started at will."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="crm-faults-pg-"))
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        if AS_ROOT:
            shutil.chown(self.home, "postgres")

    async def create_database(self, name: str) -> str:
        """A new database on the cluster; its URL."""
        await self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if AS_ROOT else command

    async def _run(self, tool: str, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._command(tool, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await proc.communicate()
        assert proc.returncode == 0, f"{tool} {' '.join(args)} failed:\n{output.decode()}"

    async def create(self) -> None:
        await self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        await self.start()

    async def start(self) -> None:
        # fsync off: a throwaway cluster, started and stopped in a hurry.
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    async def stop(self) -> None:
        # fast: open sessions are ended at once, as in a restart for an upgrade or a failover.
        await self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def remove(self) -> None:
        subprocess.run(
            self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    assert PG_BIN is not None
    cluster = PrivatePostgres(PG_BIN)
    try:
        await cluster.create()
        yield cluster
    finally:
        cluster.remove()


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    log: Path


@asynccontextmanager
async def crm_serve(env: dict[str, str], log: Path) -> AsyncIterator[Server]:
    """`crm serve` (migrations, then the app under uvicorn) with this run's environment and
    `env` on top, on a free port, until the block ends."""
    port = free_port()
    full_env = {**os.environ, **env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    # The server's own defaults for these, not whatever this process was given.
    for name in ("GRAPHQL_INTROSPECTION", "PROMETHEUS_MULTIPROC_DIR", "METRICS_DIR"):
        full_env.pop(name, None)
    with log.open("w") as output:
        proc = await asyncio.create_subprocess_exec(
            *CRM,
            "serve",
            "--port",
            str(port),
            "--no-access-log",
            cwd=ROOT,
            env=full_env,
            stdout=output,
            stderr=output,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=2) as probe:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, f"crm serve exited:\n{log_text(log)}"
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"crm serve did not answer:\n{log_text(log)}"
                await asyncio.sleep(0.1)
        yield server
    finally:
        await stop(proc)


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def ok(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    body = await post(client, query, variables, token=token)
    assert not body.get("errors"), body["errors"]
    return body["data"]


LOGIN = """mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) { token }
}"""
READ = "{ me { email } contacts(first: 5) { edges { node { id } } } }"


# --- PostgreSQL restarted under traffic ------------------------------------------------------


@dataclass
class Answer:
    """One request of the stream and what came back."""

    kind: str
    sent: float
    received: float
    status: int | None = None
    body: dict[str, Any] | None = None
    failure: str | None = None  # a dropped connection, or a body that is not JSON

    @property
    def succeeded(self) -> bool:
        return self.status == 200 and bool(self.body) and not self.body.get("errors")

    @property
    def unavailable(self) -> bool:
        codes = error_codes(self.body or {})
        return bool(codes) and set(codes) == {SERVICE_UNAVAILABLE}


async def stream(
    client: httpx.AsyncClient,
    kind: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    answers: list[Answer],
    done: asyncio.Event,
) -> None:
    """Send one kind of request after another until `done`, recording every answer."""
    while not done.is_set():
        answer = Answer(kind, sent=time.monotonic(), received=0.0)
        try:
            response = await client.post("/graphql", json=payload, headers=headers)
            answer.status = response.status_code
            answer.body = response.json()
        except (httpx.TransportError, ValueError) as exc:
            answer.failure = repr(exc)
        answer.received = time.monotonic()
        answers.append(answer)
        await asyncio.sleep(0.02)  # a steady pace, not a flood


@needs_postgres_binaries
async def test_a_postgresql_restart_under_traffic_answers_clean_errors_then_recovers(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    cluster = private_postgres
    # No REDIS_URL: the embedded worker and clock run in the server too, on that database.
    env = {
        "DATABASE_URL": await cluster.create_database("crm"),
        "REDIS_URL": "",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "text",
    }
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@faults.example"
    bootstrap = await asyncio.create_subprocess_exec(
        *CRM,
        "bootstrap",
        "--office",
        "Faults",
        "--admin-email",
        admin_email,
        "--admin-password",
        PASSWORD,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await bootstrap.communicate()
    assert bootstrap.returncode == 0, output.decode()

    async with (
        crm_serve(env, tmp_path / "serve.log") as server,
        httpx.AsyncClient(base_url=server.url, timeout=20) as client,
    ):
        credentials = {"email": admin_email, "password": PASSWORD}
        token = (await ok(client, LOGIN, credentials))["login"]["token"]
        # With PostgreSQL and no GRAPHQL_INTROSPECTION, the schema is not handed out.
        refused = await post(client, "{ __schema { queryType { name } } }", token=token)
        assert set(error_codes(refused)) == {"BAD_USER_INPUT"}, refused
        assert "introspection has been disabled" in refused["errors"][0]["message"]

        answers: list[Answer] = []
        done = asyncio.Event()
        kinds = {
            # The caller's token is read before any resolver runs...
            "read": ({"query": READ}, {"Authorization": f"Bearer {token}"}),
            # ...and a login reads the database inside one.
            "login": ({"query": LOGIN, "variables": credentials}, {}),
        }
        streams = [
            asyncio.create_task(stream(client, kind, payload, headers, answers, done))
            for kind, (payload, headers) in kinds.items()
        ]

        def count(kind: str, check: Callable[[Answer], bool], since: float) -> int:
            return sum(1 for a in answers if a.kind == kind and a.sent >= since and check(a))

        try:
            start = time.monotonic()
            await until(
                lambda: all(count(k, lambda a: a.succeeded, start) >= 3 for k in kinds),
                seconds=20,
                what="answers before the restart",
            )
            await cluster.stop()
            down = time.monotonic()
            await until(
                lambda: all(count(k, lambda a: a.unavailable, down) >= 5 for k in kinds),
                seconds=20,
                what="answers while PostgreSQL is down",
            )
            readiness = await client.get("/readyz")
            assert readiness.status_code == 503
            assert readiness.json()["checks"]["database"] == "error"
            starting = time.monotonic()
            await cluster.start()
            up = time.monotonic()
            await until(
                lambda: all(count(k, lambda a: a.succeeded, up) >= 10 for k in kinds),
                seconds=30,
                what="answers after PostgreSQL is back",
            )
        finally:
            done.set()
            await asyncio.gather(*streams)

        # Every answer, whenever it came: JSON, 200, nothing internal, and either data or
        # the one code that says "try again".
        for answer in answers:
            assert answer.failure is None, answer
            assert answer.status == 200, answer
            assert_clean(answer.body or {})
            assert answer.succeeded or answer.unavailable, answer
        # While the server was surely down, nothing succeeded.
        gap = [a for a in answers if a.sent >= down and a.received <= starting]
        assert len(gap) >= 10 and all(a.unavailable for a in gap), gap
        # Back within seconds, and for good, from the same process.
        for kind in kinds:
            after = [a for a in answers if a.kind == kind and a.sent >= up]
            first_success = next(a for a in after if a.succeeded)
            assert first_success.received - up < RECOVERY_SECONDS, (kind, first_success)
            assert all(a.succeeded for a in after if a.sent >= first_success.received), kind
        assert server.proc.returncode is None
        created = await ok(
            client,
            'mutation { createContact(input: { firstName: "Ada", lastName: "After" }) { id } }',
            token=token,
        )
        assert created["createContact"]["id"]
        assert (await client.get("/readyz")).status_code == 200

    assert "Exception in ASGI application" not in log_text(server.log)


# --- Redis stopped --------------------------------------------------------------------------

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL") or shutil.which("redis-server") is None,
    reason="needs REDIS_URL (the PostgreSQL + Redis run) and redis-server",
)


@pytest.fixture
async def private_redis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """A private redis-server, with this process's actors (where the clock's step sends)
    pointed at it."""
    actors = (
        workers.exports.export_contacts,
        workers.imports.run_import,
        workers.audit.run_status_audit,
        workers.campaigns.dispatch_campaign,
        workers.campaigns.send_batch,
    )
    async with redis_for_actors(monkeypatch, actors) as server:
        yield server


EXPORT = "mutation { exportContacts { id state } }"
IMPORT = "mutation($rows: [ContactImportRow!]!) { importContacts(rows: $rows) { id state } }"
AUDIT = "mutation { runStatusAudit { id state } }"
CREATE_CAMPAIGN = """
mutation($audience: ID!) {
  createCampaign(input: { name: "Redis down", account: OFFICE, audienceId: $audience,
    subject: "Hello {{first_name}}", bodyHtml: "<p>Hi {{first_name}}</p>" }) { id state }
}"""
SEND = "mutation($id: ID!) { sendCampaign(id: $id) { id state } }"
STATES = """
query($export: ID!, $import: ID!, $campaign: ID!) {
  exportJob(id: $export) { state }
  importJob(id: $import) { state }
  campaign(id: $campaign) { state }
  auditRuns(first: 1) { id state }
}"""


@needs_redis
async def test_with_redis_stopped_reads_and_logins_work_and_queued_work_is_done_once_it_is_back(
    world: Any, private_redis: Any, tmp_path: Path
) -> None:
    redis = private_redis
    for _ in range(3):
        await world.contact(owner=world.agent)
    audience = await system_audience(world.office.id, SendAccount.OFFICE, None, "all")
    locked_out = await make_user(world.office)
    admin = issue_token(world.admin)

    # Files (the export, the campaign's Maildir) stay in this test's own directory.
    env = {"REDIS_URL": redis.url, "DATA_DIR": str(tmp_path / "data"), "SMTP_URL": ""}
    async with (
        crm_serve(env, tmp_path / "serve.log") as server,
        httpx.AsyncClient(base_url=server.url, timeout=20) as client,
    ):
        assert (await client.get("/readyz")).json()["checks"]["redis"] == "ok"
        redis.stop()
        readiness = await client.get("/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["checks"]["redis"] == "error"

        # Reads need no Redis.
        data = await ok(
            client,
            "{ me { email } contacts(first: 10) { edges { node { id } } }"
            " reports { statusBreakdown { status count } unassignedCount } }",
            token=admin,
        )
        assert data["me"]["email"] == world.admin.email
        assert len(data["contacts"]["edges"]) == 3
        assert data["reports"]["unassignedCount"] == 0

        # Logins work; failures are counted in the server's memory meanwhile, and still count.
        login = {"email": world.admin.email, "password": PASSWORD}
        token = (await ok(client, LOGIN, login))["login"]["token"]
        me = await ok(client, "{ me { email } }", token=token)
        assert me["me"]["email"] == world.admin.email
        limit = get_settings().login_max_failures_per_account
        wrong = {"email": locked_out.email, "password": "not-the-password"}
        codes = [error_codes(await post(client, LOGIN, wrong)) for _ in range(limit + 1)]
        assert codes == [["UNAUTHENTICATED"]] * limit + [["RATE_LIMITED"]]

        # Work for the workers is recorded and answered at once, waiting for Redis.
        asked = time.monotonic()
        export = (await ok(client, EXPORT, token=admin))["exportContacts"]
        row = {"externalId": f"redis-{uuid.uuid4().hex[:8]}", "firstName": "Ivy", "lastName": "I"}
        imported = (await ok(client, IMPORT, {"rows": [row]}, token=admin))["importContacts"]
        audit = (await ok(client, AUDIT, token=admin))["runStatusAudit"]
        audience_id = ids.encode("Audience", audience.id)
        campaign = (await ok(client, CREATE_CAMPAIGN, {"audience": audience_id}, token=admin))[
            "createCampaign"
        ]
        sent = (await ok(client, SEND, {"id": campaign["id"]}, token=admin))["sendCampaign"]
        assert time.monotonic() - asked < 10
        assert [export["state"], imported["state"], audit["state"]] == ["QUEUED"] * 3
        assert sent["state"] == "SCHEDULED"
        job_ids = {"export": export["id"], "import": imported["id"], "campaign": campaign["id"]}
        states = await ok(client, STATES, job_ids, token=admin)
        assert states["exportJob"]["state"] == states["importJob"]["state"] == "QUEUED"
        assert states["campaign"]["state"] == "SCHEDULED"
        assert states["auditRuns"] == [{"id": audit["id"], "state": "QUEUED"}]

        # Redis is back. The clock's step, a while later as the clock would see it, hands the
        # work over again, and a worker does it.
        await redis.start()
        worker_log = tmp_path / "worker.log"
        async with crm_worker(worker_log, env=env, threads=2) as worker:
            # Handed over once the worker has connected the ORM (Dramatiq's worker threads
            # may take messages before its boot hooks have run).
            await until(
                lambda: "ready for action" in log_text(worker_log),
                seconds=30,
                what="the worker to start",
            )
            later = datetime.now(UTC) + timedelta(minutes=15)
            assert await importer.resend_lost(later) >= 1
            assert await exporter.resend_lost(later) >= 1
            assert await campaigns.resend_lost(later) >= 1
            # The clock's audit step (api.audit.schedule.enqueue_due) would also record
            # tonight's audit of every office in the shared test database: this office's
            # queued run is sent again as that step sends it.
            queued_runs = await AuditRun.filter(office_id=world.office.id, state=JobState.QUEUED)
            assert len(queued_runs) == 1
            await audits.enqueue(queued_runs[0])

            finished: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while True:
                finished = await ok(client, STATES, job_ids, token=admin)
                if (
                    finished["exportJob"]["state"] == "DONE"
                    and finished["importJob"]["state"] == "DONE"
                    and finished["auditRuns"][0]["state"] == "DONE"
                    and finished["campaign"]["state"] == "SENT"
                ):
                    break
                assert worker.returncode is None, log_text(worker_log)
                assert time.monotonic() < deadline, f"not finished: {finished}"
                await asyncio.sleep(0.2)


async def test_logins_work_and_failures_still_count_while_redis_cannot_be_reached(
    gql: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The login-failure counter on a Redis that is not there (a free port): it counts in
    memory instead, in both passes of the suite."""
    unreachable = RedisCounter(f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(auth, "failure_counter", lambda: unreachable)
    login = {"email": world.agent.email, "password": PASSWORD}
    assert (await gql.ok(LOGIN, login))["login"]["token"]
    limit = get_settings().login_max_failures_per_account
    wrong = {"email": world.agent.email, "password": "not-the-password"}
    codes = [error_codes(await gql(LOGIN, wrong)) for _ in range(limit + 1)]
    assert codes == [["UNAUTHENTICATED"]] * limit + [["RATE_LIMITED"]]


# --- GRAPHQL_INTROSPECTION -------------------------------------------------------------------


def test_introspection_is_off_by_default_with_postgresql_and_on_with_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GRAPHQL_INTROSPECTION", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    postgres = "postgresql://crm@db.internal:5432/crm"
    assert Settings(_env_file=None).graphql_introspection is True
    assert Settings(_env_file=None, DATABASE_URL=postgres).graphql_introspection is False
    on = Settings(_env_file=None, DATABASE_URL=postgres, GRAPHQL_INTROSPECTION="true")
    assert on.graphql_introspection is True
    off = Settings(_env_file=None, GRAPHQL_INTROSPECTION="false")
    assert off.graphql_introspection is False
    # Set but empty counts as unset.
    assert Settings(_env_file=None, GRAPHQL_INTROSPECTION=" ").graphql_introspection is True


async def test_with_introspection_off_the_schema_is_refused_and_queries_still_answer(
    gql: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema_query = "{ __schema { queryType { name } } }"
    type_query = '{ __type(name: "Contact") { name } }'
    monkeypatch.setattr(get_settings(), "graphql_introspection_value", False)
    for query in (schema_query, type_query):
        body = await gql(query, as_=world.agent)
        assert set(error_codes(body)) == {"BAD_USER_INPUT"}, body
        assert "introspection has been disabled" in body["errors"][0]["message"]
        assert body.get("data") is None
    # Not introspection: what clients use to tell types apart, and every ordinary query.
    assert await gql.ok("{ __typename me { email } }", as_=world.agent) == {
        "__typename": "Query",
        "me": {"email": world.agent.email},
    }

    monkeypatch.setattr(get_settings(), "graphql_introspection_value", True)
    data = await gql.ok(schema_query, as_=world.agent)
    assert data == {"__schema": {"queryType": {"name": "Query"}}}
    assert (await gql.ok(type_query))["__type"] == {"name": "Contact"}
