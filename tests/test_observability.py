"""Operating the service: /readyz, Prometheus /metrics (HTTP and GraphQL latency, error codes,
actor runs, queue depths, other processes' metrics), JSON logs with a request id that follows
the request into the actors it enqueues, and no secrets in any log line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import api.users.auth as auth
from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.core import ids, logs, metrics
from api.core.settings import get_settings
from tests.conftest import PASSWORD
from tests.mail_server import free_port

ROOT = Path(__file__).resolve().parent.parent

CREATE_CAMPAIGN = """
mutation($input: CampaignInput!) { createCampaign(input: $input) { id } }"""
SEND_CAMPAIGN = "mutation SendIt($id: ID!) { sendCampaign(id: $id) { id state } }"
LOGIN = """mutation LogIn($email: String!, $password: String!) {
  login(email: $email, password: $password) { token } }"""


# --- helpers --------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> dict:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


@contextmanager
def captured_logs(log_format: str, *loggers: str) -> Iterator[io.StringIO]:
    """What the app's own handler (its filter and formatter) writes, at DEBUG for `loggers`
    (the root when none are named)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RequestContext())
    handler.setFormatter(logs.JsonFormatter() if log_format == "json" else logs.TextFormatter())
    root = logging.getLogger()
    targets = [logging.getLogger(name) for name in loggers] or [root]
    levels = [target.level for target in targets]
    root.addHandler(handler)
    for target in targets:
        target.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for target, level in zip(targets, levels, strict=True):
            target.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def send_a_campaign(client: httpx.AsyncClient, world: Any, request_id: str) -> int:
    """A campaign to two contacts, sent by a request carrying `request_id`; its id."""
    for _ in range(2):
        await world.contact()
    audience = await system_audience(world.office.id, SendAccount.OFFICE, None, "all")
    headers = {"Authorization": f"Bearer {auth.issue_token(world.admin)}"}
    draft = {
        "name": "Observed",
        "subject": "Hello {{first_name}}",
        "bodyHtml": "<p>Hi {{first_name}}</p>",
        "audienceId": ids.encode("Audience", audience.id),
        "account": "OFFICE",
    }
    response = await client.post(
        "/graphql",
        json={"query": CREATE_CAMPAIGN, "variables": {"input": draft}},
        headers=headers,
    )
    campaign_gid = response.json()["data"]["createCampaign"]["id"]
    response = await client.post(
        "/graphql",
        json={"query": SEND_CAMPAIGN, "variables": {"id": campaign_gid}},
        headers={**headers, "X-Request-ID": request_id},
    )
    assert response.json()["data"]["sendCampaign"]["state"] == "SCHEDULED", response.text
    assert response.headers["x-request-id"] == request_id
    return ids.decode("Campaign", campaign_gid)


embedded_only = pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="actors run in process only without REDIS_URL"
)


# --- health ---------------------------------------------------------------------------------


async def test_readyz_answers_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"].get("redis", "ok") == "ok"
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_is_503_when_redis_is_configured_but_unreachable(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which check failed is said; nothing of the configuration (no URL, no password)."""
    dead = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(get_settings(), "redis_url", dead)
    started = time.monotonic()
    response = await client.get("/readyz")
    assert time.monotonic() - started < 5  # bounded by the checks' short timeouts
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "error"},
    }
    assert "hunter2" not in response.text and "127.0.0.1" not in response.text
    assert (await client.get("/healthz")).status_code == 200  # alive all the same


# --- metrics --------------------------------------------------------------------------------


async def test_metrics_show_named_operations_and_error_codes(
    client: httpx.AsyncClient, gql: Any, world: Any
) -> None:
    """A named operation's latency sample; errors counted by the code clients receive,
    those set by the view (a syntax error) as well as the resolvers' (UNAUTHENTICATED)."""
    before = await scrape(client)
    await gql.ok("query ObservedMe { me { id } }", as_=world.agent)
    body = await gql("query ObservedAnonymous { me { id } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body = await gql("query { me { id ")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    after = await scrape(client)

    count = "crm_graphql_operation_duration_seconds_count"
    assert (
        value(after, count, operation="ObservedMe")
        == value(before, count, operation="ObservedMe") + 1
    )
    assert value(after, count, operation="anonymous") > value(before, count, operation="anonymous")
    errors = "crm_graphql_errors_total"
    for code in ("UNAUTHENTICATED", "BAD_USER_INPUT"):
        assert value(after, errors, code=code) == value(before, errors, code=code) + 1, code
    http = "crm_http_request_duration_seconds_count"
    labels = {"route": "/graphql", "method": "POST", "status": "200"}
    assert value(after, http, **labels) >= value(before, http, **labels) + 2


async def test_http_latency_is_labelled_by_route_template_not_path(
    client: httpx.AsyncClient,
) -> None:
    """Ids and tokens in paths never become label values (nor do unknown paths)."""
    token = uuid.uuid4().hex
    assert (await client.get(f"/u/{token}")).status_code == 404
    assert (await client.get(f"/no/such/{token}")).status_code == 404
    text = (await client.get("/metrics")).text
    assert token not in text
    scraped = samples(text)
    http = "crm_http_request_duration_seconds_count"
    assert value(scraped, http, route="/u/{token}", method="GET", status="404") >= 1
    assert value(scraped, http, route="unmatched", method="GET", status="404") >= 1


async def test_operation_names_past_the_cap_count_as_other(
    client: httpx.AsyncClient, gql: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients name operations freely; the number of label values stays bounded."""
    monkeypatch.setattr(metrics, "MAX_OPERATION_NAMES", len(metrics._graphql_tallies))
    name = f"Invented{uuid.uuid4().hex[:8]}"
    before = await scrape(client)
    await gql.ok(f"query {name} {{ me {{ id }} }}", as_=world.agent)
    after = await scrape(client)
    count = "crm_graphql_operation_duration_seconds_count"
    assert not any(name in dict(labels).values() for _, labels in after)
    assert value(after, count, operation="other") == value(before, count, operation="other") + 1


@embedded_only
async def test_actor_runs_are_timed_by_actor(client: httpx.AsyncClient, world: Any) -> None:
    from tests.workers_for_tests import drain_in_process

    before = await scrape(client)
    await send_a_campaign(client, world, f"actors-{uuid.uuid4().hex[:8]}")
    await drain_in_process("campaigns")
    after = await scrape(client)
    count = "crm_actor_duration_seconds_count"
    for actor in ("dispatch_campaign", "send_batch"):
        assert value(after, count, actor=actor) >= value(before, count, actor=actor) + 1, actor
    sent = "crm_campaign_messages_total"
    assert value(after, sent, outcome="sent") == value(before, sent, outcome="sent") + 2
    # Nothing is left waiting once the queue is drained.
    assert value(after, "crm_queue_messages", queue="campaigns", kind="ready") == 0


async def test_queue_depth_counts_messages_waiting(client: httpx.AsyncClient, world: Any) -> None:
    """A message enqueued and not yet carried out shows in the queue's depth."""
    from workers.audit import run_status_audit
    from workers.broker import setup_broker

    broker = setup_broker()
    queue = run_status_audit.queue_name
    before = value(await scrape(client), "crm_queue_messages", queue=queue, kind="ready")
    message = run_status_audit.message(0)
    broker.enqueue(message)
    try:
        after = value(await scrape(client), "crm_queue_messages", queue=queue, kind="ready")
        assert after == before + 1
    finally:
        broker.flush(queue)


async def test_other_processes_metrics_are_added_up(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multiprocess mode: what a worker process recorded (in its own files under the
    shared directory) shows in the web's /metrics."""
    actor = f"elsewhere_{uuid.uuid4().hex[:8]}"
    script = (
        "from api.core import metrics\n"
        f"metrics.observe_actor({actor!r}, 0.25, failed=False)\n"
        f"metrics.observe_actor({actor!r}, 0.5, failed=True)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(  # noqa: ASYNC221 (a short, bounded child)
        [sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60, check=False
    )
    assert done.returncode == 0
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    scraped = await scrape(client)
    assert value(scraped, "crm_actor_duration_seconds_count", actor=actor) == 2
    assert value(scraped, "crm_actor_duration_seconds_sum", actor=actor) == 0.75
    assert value(scraped, "crm_actor_failures_total", actor=actor) == 1


# --- request ids and logs -------------------------------------------------------------------


async def test_request_id_is_taken_when_sane_and_made_otherwise(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "edge-7f3a.1:2"})
    assert response.headers["x-request-id"] == "edge-7f3a.1:2"
    for bad in ("has spaces in it", "x" * 200, "<script>"):
        response = await client.get("/healthz", headers={"X-Request-ID": bad})
        made = response.headers["x-request-id"]
        assert made != bad and len(made) == 32 and set(made) <= set("0123456789abcdef")
    first = (await client.get("/healthz")).headers["x-request-id"]
    assert first != (await client.get("/healthz")).headers["x-request-id"]


@embedded_only
async def test_request_id_reaches_the_log_lines_of_the_actors_it_enqueued(
    client: httpx.AsyncClient, world: Any
) -> None:
    """The id of the request that sent the campaign is on the dispatch actor's log line
    (written on the worker's side, from the message's options), as JSON."""
    from tests.workers_for_tests import drain_in_process

    request_id = f"campaign-{uuid.uuid4().hex[:12]}"
    campaign_id = await send_a_campaign(client, world, request_id)
    with captured_logs("json", "api.campaigns.dispatch") as stream:
        await drain_in_process("campaigns")
    lines = json_lines(stream)
    started = [
        line
        for line in lines
        if line["logger"] == "api.campaigns.dispatch"
        and line["message"].startswith(f"campaign {campaign_id} started")
    ]
    assert len(started) == 1, lines
    (line,) = started
    assert line["request_id"] == request_id
    assert line["level"] == "INFO"
    assert {"time", "level", "logger", "message", "request_id"} <= set(line)


async def test_log_lines_of_a_request_carry_its_id_in_both_formats(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line logged while a request is handled names it: a JSON field, or [id] in text.
    (The line used: a failed readiness check's warning.)"""
    log = logging.getLogger("api.test_observability")
    monkeypatch.setattr(get_settings(), "redis_url", f"redis://127.0.0.1:{free_port()}/0")
    for log_format in ("json", "text"):
        with captured_logs(log_format, "api.health") as stream:
            request_id = f"fmt-{log_format}-{uuid.uuid4().hex[:8]}"
            await client.get("/readyz", headers={"X-Request-ID": request_id})
            log.warning("outside any request", extra={"batch": 7})
        text = stream.getvalue()
        if log_format == "json":
            lines = json_lines(stream)
            inside = [line for line in lines if line["logger"] == "api.health"]
            assert inside and all(line["request_id"] == request_id for line in inside)
            outside = [line for line in lines if line["message"] == "outside any request"]
            assert outside == [{**outside[0], "request_id": None, "batch": 7, "level": "WARNING"}]
        else:
            assert f"WARNING api.health [{request_id}]: readiness check redis failed" in text
            assert "WARNING api.test_observability: outside any request" in text


async def test_passwords_and_tokens_never_reach_the_logs(
    client: httpx.AsyncClient, gql: Any, world: Any
) -> None:
    """Everything logged at DEBUG through a login (right and wrong password) and requests
    with a bearer token, in both formats; and the lines libraries write with credentials
    in them (URLs, headers, query strings, signed links) come out redacted."""
    token = auth.issue_token(world.agent)
    wrong = f"Wrong-{uuid.uuid4().hex}"
    for log_format in ("json", "text"):
        with captured_logs(log_format) as stream:
            ok = await gql(LOGIN, {"email": world.agent.email, "password": PASSWORD})
            issued = ok["data"]["login"]["token"]
            refused = await gql(LOGIN, {"email": world.agent.email, "password": wrong})
            assert refused["errors"]
            await gql("query Me { me { id } }", token=token)
            await gql("query Me { me { id } }", token=token + "x")
            library = logging.getLogger("some.library")
            library.info("connecting to %s", f"smtp://mailer:{wrong}@mail.example:587")
            library.info("connecting to redis://:%s@cache.example:6379/0", wrong)
            library.debug("sending headers %s", {"Authorization": f"Bearer {token}"})
            library.info('"GET /exports/E1/download?token=1.2.%s HTTP/1.1" 200', wrong)
            library.info('"GET /u/%s HTTP/1.1" 200', wrong)
            library.info("payload %s", json.dumps({"email": "a@b.example", "password": wrong}))
            try:
                raise ValueError(f"could not use password={wrong}")
            except ValueError:
                library.exception("failed")
        written = stream.getvalue()
        assert written.count("[redacted]") >= 7, written
        for secret in (PASSWORD, wrong, token, issued, token.split(".")[-1]):
            assert secret not in written, (log_format, secret)


# --- a real server --------------------------------------------------------------------------


def written(path: Path) -> str:
    return path.read_text()


async def wait_for_text(path: Path, needle: str, proc: subprocess.Popen, seconds: float) -> None:
    """Until `needle` is in the file a process writes (bounded, and by the process living)."""
    deadline = time.monotonic() + seconds
    while needle not in written(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never appeared in:\n{written(path)}")
        await asyncio.sleep(0.1)


async def test_crm_serve_logs_json_lines_and_adds_up_its_processes_metrics(
    tmp_path: Path,
) -> None:
    """`crm serve` with LOG_FORMAT=json: uvicorn's own and access lines are JSON objects
    carrying the request id (and no token from a path); its /metrics is read from the
    multiprocess files under METRICS_DIR."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),  # a database of its own
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "METRICS_DIR": str(metrics_dir),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    output = tmp_path / "serve.log"
    with output.open("w") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (started at once; waited for below)
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    request_id = f"served-{uuid.uuid4().hex[:8]}"
    link_token = uuid.uuid4().hex
    try:
        await wait_for_text(output, "Application startup complete", proc, 90)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.get("/healthz", headers={"X-Request-ID": request_id})
            assert response.headers["x-request-id"] == request_id
            assert (await http.get(f"/u/{link_token}")).status_code == 404
            scraped = samples((await http.get("/metrics")).text)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 30)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = written(output)
    assert link_token not in text
    lines = [line for line in text.splitlines() if line.strip()]
    # The one line not from logging: the migrate step's report on stdout.
    records = [json.loads(line) for line in lines if line != "migrations applied"]
    assert any(r["logger"] == "uvicorn.error" for r in records)
    (health,) = [r for r in records if r["logger"] == "uvicorn.access" and r["path"] == "/healthz"]
    assert health["request_id"] == request_id
    assert health["status"] == 200 and health["method"] == "GET"
    http = "crm_http_request_duration_seconds_count"
    assert value(scraped, http, route="/healthz", method="GET", status="200") == 1
    assert value(scraped, http, route="/u/{token}", method="GET", status="404") == 1
    assert list(metrics_dir.glob("histogram_*.db"))


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
async def test_a_crm_worker_s_metrics_and_request_ids_reach_the_web(
    client: httpx.AsyncClient, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REDIS_URL: a `crm worker` records into the machine's metrics directory, which
    the web's /metrics reads (multiprocess mode), and its JSON log line for the dispatch
    names the request that sent the campaign."""
    from api.campaigns.models import Campaign, CampaignState
    from tests.workers_for_tests import crm_worker

    metrics_dir = tmp_path / "metrics"
    log_path = tmp_path / "worker.log"
    env = {"METRICS_DIR": str(metrics_dir), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    request_id = f"redis-{uuid.uuid4().hex[:8]}"
    async with crm_worker(log_path, env={**env, "PROMETHEUS_MULTIPROC_DIR": ""}) as proc:
        campaign_id = await send_a_campaign(client, world, request_id)
        deadline, state = time.monotonic() + 60, None
        while proc.returncode is None and time.monotonic() < deadline:
            state = (await Campaign.get(id=campaign_id)).state
            if state in (CampaignState.SENT, CampaignState.FAILED):
                break
            await asyncio.sleep(0.1)
        assert state == CampaignState.SENT, written(log_path)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    scraped = await scrape(client)
    assert value(scraped, "crm_actor_duration_seconds_count", actor="dispatch_campaign") >= 1
    assert value(scraped, "crm_campaign_messages_total", outcome="sent") >= 2
    lines = [json.loads(line) for line in written(log_path).splitlines() if line.startswith("{")]
    dispatched = [line for line in lines if line["logger"] == "api.campaigns.dispatch"]
    assert dispatched and all(line["request_id"] == request_id for line in dispatched)
