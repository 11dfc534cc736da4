"""Live progress over WebSockets (graphql-transport-ws), end to end: a real server on a port
of its own and the `websockets` client speaking the protocol (connection_init/ack,
subscribe, next…, complete), as an SPA's GraphQL client does.

The work reported on runs here, in the test's process, step by step (dispatch, then each
batch; an export; an import), as the workers would. Without REDIS_URL the server runs in this
process too (events stay in process, as with the embedded workers); with REDIS_URL it is a
real `crm serve` process and every event crosses Redis pub/sub. Either way the server's
safety-net polling is pushed out of reach, so a frame that follows a step was brought by that
step's event; one test turns events off to see the polling alone carry a job to its end."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.exceptions import InvalidStatus

from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.campaigns import dispatch, sender
from api.campaigns import service as campaigns
from api.campaigns.models import CampaignBatch
from api.contacts.filters import ContactFilterSpec
from api.core import events, ids
from api.core.settings import get_settings
from api.transfers import exporter, importer
from api.transfers.models import ImportSource
from api.users.auth import issue_token
from api.users.models import User
from tests.conftest import make_user
from tests.mail_server import free_port
from tests.workers_for_tests import stop

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = "graphql-transport-ws"
# Far beyond any wait below: frames come from events, not from the server's polling.
NO_POLLING = 600.0
WAIT = 15.0

CAMPAIGN_PROGRESS = """
subscription($id: ID!) {
  campaignProgress(id: $id) { id state stats { recipients sent pending } }
}"""
JOB_PROGRESS = """
subscription($id: ID!) {
  jobProgress(id: $id) {
    __typename
    ... on ExportJob { id state rowCount downloadUrl }
    ... on ImportJob { id state total processed created }
  }
}"""


# --- the server -------------------------------------------------------------------------------


@dataclass
class Server:
    url: str  # ws://127.0.0.1:PORT/graphql


@asynccontextmanager
async def in_process_server(app: Any) -> AsyncIterator[Server]:
    """uvicorn on this event loop (the ORM's connection belongs to it), on a socket of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert not task.done(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in time"
        await asyncio.sleep(0.01)
    try:
        yield Server(f"ws://127.0.0.1:{port}/graphql")
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def crm_serve(log_path: Path) -> AsyncIterator[Server]:
    """A real `crm serve` process on this run's database, secret key and Redis."""
    port = free_port()
    env = {**os.environ, "SUBSCRIPTION_POLL_SECONDS": str(NO_POLLING)}
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log"]
    with log_path.open("a") as output:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                assert proc.returncode is None, "crm serve ended; see its log in " + str(log_path)
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "crm serve did not start in time"
                await asyncio.sleep(0.1)
        yield Server(f"ws://127.0.0.1:{port}/graphql")
    finally:
        await stop(proc)


@pytest.fixture(scope="module")
async def server(app: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    """With REDIS_URL a `crm serve` process (events cross Redis), else a server in here;
    one for the module (a process takes seconds to start)."""
    if os.environ.get("REDIS_URL"):
        async with crm_serve(tmp_path_factory.mktemp("serve") / "serve.log") as running:
            yield running
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(get_settings(), "subscription_poll_seconds", NO_POLLING)
        async with in_process_server(app) as running:
            yield running


@pytest.fixture(autouse=True)
def workers_are_this_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing goes to a broker: this test carries each step out itself."""

    async def nothing(*args: Any, **kwargs: Any) -> int:
        return 0

    monkeypatch.setattr(campaigns, "enqueue_dispatch", nothing)
    monkeypatch.setattr(campaigns, "enqueue_batches", nothing)
    monkeypatch.setattr(exporter, "enqueue", nothing)
    monkeypatch.setattr(importer, "enqueue", nothing)


# --- the client -------------------------------------------------------------------------------


class Socket:
    """One graphql-transport-ws connection, acknowledged."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._ids = 0

    async def subscribe(self, query: str, variables: dict[str, Any]) -> str:
        self._ids += 1
        op_id = str(self._ids)
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return op_id

    async def receive(self, seconds: float = WAIT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), seconds))

    async def next_frame(self, op_id: str) -> dict[str, Any]:
        """The operation's next `next` payload (asserting it is one)."""
        message = await self.receive()
        assert message["id"] == op_id, message
        assert message["type"] == "next", message
        return message["payload"]

    async def until_end(self, op_id: str) -> list[dict[str, Any]]:
        """Every `next` payload until `complete`."""
        frames = []
        while True:
            message = await self.receive()
            assert message.get("id") == op_id, message
            if message["type"] == "complete":
                return frames
            assert message["type"] == "next", message
            frames.append(message["payload"])


@asynccontextmanager
async def connect(
    server: Server, *, token: str | None = None, origin: str | None = None
) -> AsyncIterator[Socket]:
    async with websockets.connect(
        server.url, subprotocols=[PROTOCOL], origin=origin, open_timeout=WAIT
    ) as ws:
        assert ws.subprotocol == PROTOCOL
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        socket_ = Socket(ws)
        assert (await socket_.receive())["type"] == "connection_ack"
        yield socket_


def connect_as(server: Server, user: Any) -> Any:
    return connect(server, token=issue_token(user))


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in payload.get("errors") or []]


async def refusal(sock: Socket, query: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors of a subscription refused before its first frame: the protocol's `error`
    message, which also ends the operation (no `complete` follows)."""
    op = await sock.subscribe(query, variables)
    message = await sock.receive()
    assert (message["id"], message["type"]) == (op, "error"), message
    return message["payload"]


async def refused(server: Server, user: Any, query: str, variables: dict[str, Any]) -> list[str]:
    """The error codes a subscription of `user` is refused with."""
    async with connect_as(server, user) as sock:
        return codes({"errors": await refusal(sock, query, variables)})


# --- what is followed -------------------------------------------------------------------------


async def campaign_to_send(world: Any, owner: Any, *, recipients: int) -> int:
    """A USER campaign of `owner` to `recipients` contacts of theirs, SCHEDULED now."""
    tag = uuid.uuid4().hex[:6]
    for i in range(recipients):
        await world.contact(owner=owner, first_name=f"R{i}", email=f"r{i}.{tag}@client.example")
    audience = await system_audience(world.office.id, SendAccount.USER, owner.id, "mine")
    draft = campaigns.CampaignDraft(
        name=f"Live {tag}",
        subject="Hello {{first_name}}",
        body_html="<p>Hi {{first_name}}</p>",
        audience_id=audience.id,
    )
    campaign = await campaigns.create_campaign(owner, SendAccount.USER, draft)
    await campaigns.send_campaign(owner, campaign.id)
    return campaign.id


async def batches_of(campaign_id: int) -> list[int]:
    return list(
        await CampaignBatch.filter(campaign_id=campaign_id)
        .order_by("seq")
        .values_list("id", flat=True)
    )


# --- tests ------------------------------------------------------------------------------------


async def test_campaign_progress_follows_each_step_of_a_send_to_sent(
    server: Server, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "campaign_batch_size", 2)
    campaign_id = await campaign_to_send(world, world.agent, recipients=3)
    gid = ids.encode("Campaign", campaign_id)
    async with connect_as(server, world.agent) as sock:
        op = await sock.subscribe(CAMPAIGN_PROGRESS, {"id": gid})
        first = (await sock.next_frame(op))["data"]["campaignProgress"]
        assert first["id"] == gid
        assert first["state"] == "SCHEDULED"
        assert first["stats"] == {"recipients": 0, "sent": 0, "pending": 0}

        await dispatch.dispatch(campaign_id)
        started = (await sock.next_frame(op))["data"]["campaignProgress"]
        assert started["state"] == "SENDING"
        assert started["stats"] == {"recipients": 3, "sent": 0, "pending": 3}

        first_batch, last_batch = await batches_of(campaign_id)
        await sender.send_batch(first_batch)
        halfway = (await sock.next_frame(op))["data"]["campaignProgress"]
        assert halfway["state"] == "SENDING"
        assert halfway["stats"] == {"recipients": 3, "sent": 2, "pending": 1}

        await sender.send_batch(last_batch)
        rest = await sock.until_end(op)
    # The last batch's end and the campaign's end may come as one frame or two.
    assert rest, "no frame after the last batch"
    assert all(not frame.get("errors") for frame in rest), rest
    last = rest[-1]["data"]["campaignProgress"]
    assert last["state"] == "SENT"
    assert last["stats"] == {"recipients": 3, "sent": 3, "pending": 0}


async def test_a_finished_campaign_is_shown_once_and_completes(server: Server, world: Any) -> None:
    campaign_id = await campaign_to_send(world, world.agent, recipients=1)
    await campaigns.cancel_campaign(world.agent, campaign_id)
    async with connect_as(server, world.agent) as sock:
        op = await sock.subscribe(CAMPAIGN_PROGRESS, {"id": ids.encode("Campaign", campaign_id)})
        frames = await sock.until_end(op)
    assert [f["data"]["campaignProgress"]["state"] for f in frames] == ["CANCELLED"]


async def test_cancelling_a_followed_campaign_ends_its_subscription(
    server: Server, world: Any
) -> None:
    campaign_id = await campaign_to_send(world, world.agent, recipients=1)
    async with connect_as(server, world.agent) as sock:
        op = await sock.subscribe(CAMPAIGN_PROGRESS, {"id": ids.encode("Campaign", campaign_id)})
        assert (await sock.next_frame(op))["data"]["campaignProgress"]["state"] == "SCHEDULED"
        await campaigns.cancel_campaign(world.agent, campaign_id)
        frames = await sock.until_end(op)
    assert [f["data"]["campaignProgress"]["state"] for f in frames] == ["CANCELLED"]


async def test_export_progress_runs_to_done_with_its_link(
    server: Server, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter, "BATCH_SIZE", 2)
    exporting = await make_user(
        world.office, crm_agent_id=f"X-{uuid.uuid4().hex[:6]}", can_export=True
    )
    for _ in range(5):
        await world.contact(owner=exporting)
    job = await exporter.request_export(exporting, ContactFilterSpec())
    gid = ids.encode("ExportJob", job.id)
    async with connect_as(server, exporting) as sock:
        op = await sock.subscribe(JOB_PROGRESS, {"id": gid})
        first = (await sock.next_frame(op))["data"]["jobProgress"]
        assert first == {
            "__typename": "ExportJob",
            "id": gid,
            "state": "QUEUED",
            "rowCount": None,
            "downloadUrl": None,
        }
        await exporter.execute_export(job.id)
        frames = [f["data"]["jobProgress"] for f in await sock.until_end(op)]
    counts = [f["rowCount"] for f in frames]
    assert counts == sorted(counts), frames
    assert frames[-1]["state"] == "DONE"
    assert frames[-1]["rowCount"] == 5
    assert frames[-1]["downloadUrl"]


async def test_import_progress_runs_to_done(
    server: Server, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    tag = uuid.uuid4().hex[:6]
    rows = [
        {"external_id": f"{tag}-{i}", "first_name": f"I{i}", "last_name": tag} for i in range(5)
    ]
    job = await importer.request_import(world.admin, rows, source=ImportSource.GRAPHQL)
    gid = ids.encode("ImportJob", job.id)
    async with connect_as(server, world.admin) as sock:
        op = await sock.subscribe(JOB_PROGRESS, {"id": gid})
        first = (await sock.next_frame(op))["data"]["jobProgress"]
        assert first["__typename"] == "ImportJob"
        assert (first["state"], first["total"], first["processed"]) == ("QUEUED", 5, 0)
        await importer.execute_import(job.id)
        frames = [f["data"]["jobProgress"] for f in await sock.until_end(op)]
    processed = [f["processed"] for f in frames]
    assert processed == sorted(processed), frames
    assert frames[-1]["state"] == "DONE"
    assert (frames[-1]["processed"], frames[-1]["created"]) == (5, 5)


async def test_subscriptions_answer_not_found_like_the_queries(server: Server, world: Any) -> None:
    """R1: another agent's campaign, another office's, and ids that name nothing answer alike."""
    campaign_id = await campaign_to_send(world, world.agent, recipients=1)
    gid = ids.encode("Campaign", campaign_id)
    assert await refused(server, world.other_agent, CAMPAIGN_PROGRESS, {"id": gid}) == ["NOT_FOUND"]
    assert await refused(server, world.foreign_admin, CAMPAIGN_PROGRESS, {"id": gid}) == [
        "NOT_FOUND"
    ]
    missing = ids.encode("Campaign", 2**40)
    assert await refused(server, world.agent, CAMPAIGN_PROGRESS, {"id": missing}) == ["NOT_FOUND"]
    # Another office's import, and an id of neither job kind.
    job = await importer.request_import(
        world.admin, [{"external_id": "x"}], source=ImportSource.GRAPHQL
    )
    job_gid = ids.encode("ImportJob", job.id)
    assert await refused(server, world.foreign_admin, JOB_PROGRESS, {"id": job_gid}) == [
        "NOT_FOUND"
    ]
    assert await refused(server, world.admin, JOB_PROGRESS, {"id": gid}) == ["NOT_FOUND"]
    # As for importJob(id): an agent may not follow imports at all.
    assert await refused(server, world.agent, JOB_PROGRESS, {"id": job_gid}) == ["FORBIDDEN"]


async def test_without_a_valid_token_subscriptions_are_unauthenticated(
    server: Server, world: Any
) -> None:
    campaign_id = await campaign_to_send(world, world.agent, recipients=1)
    variables = {"id": ids.encode("Campaign", campaign_id)}
    async with connect(server) as sock:
        errors = await refusal(sock, CAMPAIGN_PROGRESS, variables)
    assert codes({"errors": errors}) == ["UNAUTHENTICATED"]
    async with connect(server, token="not-a-token") as sock:
        errors = await refusal(sock, CAMPAIGN_PROGRESS, variables)
    assert codes({"errors": errors}) == ["UNAUTHENTICATED"]
    assert errors[0]["message"] == "The token is not valid"


async def test_a_deactivated_caller_is_cut_off_at_the_next_frame(
    server: Server, world: Any
) -> None:
    campaign_id = await campaign_to_send(world, world.agent, recipients=1)
    async with connect_as(server, world.agent) as sock:
        op = await sock.subscribe(CAMPAIGN_PROGRESS, {"id": ids.encode("Campaign", campaign_id)})
        assert (await sock.next_frame(op))["data"]["campaignProgress"]["state"] == "SCHEDULED"
        await User.filter(id=world.agent.id).update(active=False)
        await dispatch.dispatch(campaign_id)
        frames = await sock.until_end(op)
    assert [codes(f) for f in frames] == [["UNAUTHENTICATED"]]


async def test_a_lost_event_is_made_up_for_by_polling(
    app: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def lost(kind: str, object_id: int) -> None:
        return None

    monkeypatch.setattr(events, "publish", lost)
    monkeypatch.setattr(get_settings(), "subscription_poll_seconds", 0.2)
    job = await importer.request_import(
        world.admin, [{"external_id": uuid.uuid4().hex}], source=ImportSource.GRAPHQL
    )
    async with in_process_server(app) as running, connect_as(running, world.admin) as sock:
        op = await sock.subscribe(JOB_PROGRESS, {"id": ids.encode("ImportJob", job.id)})
        assert (await sock.next_frame(op))["data"]["jobProgress"]["state"] == "QUEUED"
        await importer.execute_import(job.id)
        frames = await sock.until_end(op)
    assert frames[-1]["data"]["jobProgress"]["state"] == "DONE"


async def test_browsers_connect_from_this_origin_and_the_allowed_ones_only(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app

    monkeypatch.setattr(get_settings(), "cors_origins", ("https://app.example.com",))
    async with in_process_server(create_app(embedded_workers=False)) as running:
        with pytest.raises(InvalidStatus) as refusal:
            async with connect(running, origin="https://evil.example"):
                pass
        assert refusal.value.response.status_code == 403
        own = running.url.replace("ws://", "http://").removesuffix("/graphql")
        for origin in ("https://app.example.com", own, None):
            async with connect(running, origin=origin) as sock:
                await sock.ws.send(json.dumps({"type": "ping"}))
                assert (await sock.receive())["type"] == "pong"


async def test_work_goes_on_when_its_events_cannot_be_published(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis that is down costs the work reported on nothing: no error, no long wait."""
    monkeypatch.setattr(get_settings(), "redis_url", f"redis://127.0.0.1:{free_port()}/0")
    campaign_id = await campaign_to_send(world, world.agent, recipients=1)
    try:
        started = time.monotonic()
        cancelled = await campaigns.cancel_campaign(world.agent, campaign_id)
        await events.publish("Campaign", campaign_id)
        elapsed = time.monotonic() - started
    finally:
        await events.close()
    assert cancelled.state == "CANCELLED"
    assert elapsed < 2 * events.PUBLISH_TIMEOUT


async def test_queries_over_the_socket_read_afresh_each_time(server: Server, world: Any) -> None:
    """A connection keeps one context for its life; no operation sees another's cached rows."""
    campaign_id = await campaign_to_send(world, world.agent, recipients=2)
    query = "query($id: ID!) { campaign(id: $id) { state stats { recipients } } }"
    variables = {"id": ids.encode("Campaign", campaign_id)}
    async with connect_as(server, world.agent) as sock:
        before = await sock.until_end(await sock.subscribe(query, variables))
        await dispatch.dispatch(campaign_id)
        after = await sock.until_end(await sock.subscribe(query, variables))
    assert before == [{"data": {"campaign": {"state": "SCHEDULED", "stats": {"recipients": 0}}}}]
    assert after == [{"data": {"campaign": {"state": "SENDING", "stats": {"recipients": 2}}}}]
