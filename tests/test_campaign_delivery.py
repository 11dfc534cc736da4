"""R16 end to end: every recipient exactly once, through a killed worker, a restarted broker
and a broker that is down when the send is asked for.

Real parts only: `crm worker` processes on a Redis server of this test's own (so it can be
stopped and restarted without touching anyone else's), PostgreSQL or SQLite as the run has
it, and an aiosmtpd server counting what it receives. The clock's step
(`campaigns.resend_lost`) is called here where the clock process would call it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.campaigns import service as campaigns
from api.campaigns.models import BatchState, Campaign, CampaignBatch, CampaignState, Delivery
from api.contacts.models import Contact
from tests.mail_server import free_port, smtp_server
from tests.workers_for_tests import crm_worker, kill_hard

pytestmark = [
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (the PG+Redis run)"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


class PrivateRedis:
    """A redis-server of this test's own that can be stopped and started on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 (starts at once; nothing to wait for)
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis.asyncio as redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                await client.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        await client.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # as a crash: nothing saved, every queued message gone
            self.proc.wait()
            self.proc = None


@asynccontextmanager
async def redis_for_actors(
    monkeypatch: pytest.MonkeyPatch, actors: tuple[Any, ...]
) -> AsyncIterator[PrivateRedis]:
    """A private redis-server, with `actors` of this process sending to it meanwhile."""
    from dramatiq.brokers.redis import RedisBroker

    server = PrivateRedis()
    await server.start()
    broker = RedisBroker(url=server.url + "?socket_timeout=2&socket_connect_timeout=2")
    for actor in actors:
        broker.declare_queue(actor.queue_name)
        monkeypatch.setattr(actor, "broker", broker)
    try:
        yield server
    finally:
        server.stop()
        broker.close()


@pytest.fixture
async def private_redis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PrivateRedis]:
    """The private server, with this process's campaign actors sending to it."""
    from workers import campaigns as actors

    async with redis_for_actors(monkeypatch, (actors.dispatch_campaign, actors.send_batch)) as s:
        yield s


async def contacts_with_email(world: Any, n: int) -> None:
    tag = uuid.uuid4().hex[:8]
    await Contact.bulk_create(
        [
            Contact(
                office_id=world.office.id,
                first_name=f"C{i}",
                last_name=tag,
                email=f"c{i}.{tag}@client.example",
                search_text="",
            )
            for i in range(n)
        ],
        batch_size=1000,
    )


async def office_campaign(world: Any) -> Campaign:
    audience = await system_audience(world.office.id, SendAccount.OFFICE, None, "all")
    draft = campaigns.CampaignDraft(
        name="R16",
        subject="Hello {{first_name}}",
        body_html='<p>Hi {{first_name}}</p><a href="https://example.com/x">x</a>',
        audience_id=audience.id,
    )
    return await campaigns.create_campaign(world.admin, SendAccount.OFFICE, draft)


async def until(condition: Callable[[], Any], *, seconds: float, what: str) -> None:
    """Poll `condition` (sync or async) until true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def campaign_finished(campaign_id: int) -> bool:
    state = (await Campaign.get(id=campaign_id)).state
    return state in (CampaignState.SENT, CampaignState.FAILED)


async def leases_lapsed(campaign_id: int) -> bool:
    now = datetime.now(UTC)
    return not await CampaignBatch.filter(
        campaign_id=campaign_id, state=BatchState.RUNNING, lease_until__gt=now
    ).exists()


def worker_env(redis: PrivateRedis, smtp_url: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis.url,
        "SMTP_URL": smtp_url,
        "CAMPAIGN_BATCH_SIZE": "100",
        "CAMPAIGN_LEASE_SECONDS": "3",
    }


async def recipients_of(campaign_id: int) -> set[str]:
    emails = (
        await Delivery.filter(campaign_id=campaign_id)
        .exclude(state="SKIPPED")
        .values_list("email", flat=True)
    )
    return {e.lower() for e in emails}


async def test_a_worker_killed_mid_send_leaves_no_duplicate_and_loses_nothing(
    world: Any, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """(a) SIGKILL the worker in the middle of a 5,000-recipient campaign, start a new one:
    every recipient exactly once, except at most one message per killed connection, which
    the stats report as unknown."""
    await contacts_with_email(world, 5000)
    campaign = await office_campaign(world)
    threads = 2
    with smtp_server() as (smtp_url, received):
        env = worker_env(private_redis, smtp_url)
        await campaigns.send_campaign(world.admin, campaign.id)
        async with crm_worker(tmp_path / "worker.log", env=env, threads=threads) as proc:
            await until(lambda: received.count() >= 1000, seconds=120, what="1,000 messages")
            kill_hard(proc)
            await proc.wait()
        assert received.count() < 5000, "the worker finished before it could be killed"
        await until(lambda: leases_lapsed(campaign.id), seconds=30, what="leases to lapse")
        async with crm_worker(tmp_path / "worker2.log", env=env, threads=threads):
            # The clock's step: what the dead worker held, and what it had fetched, goes again.
            await campaigns.resend_lost(now=datetime.now(UTC) + timedelta(minutes=5))
            await until(lambda: campaign_finished(campaign.id), seconds=180, what="the send")
        counts = received.per_recipient()
    expected = await recipients_of(campaign.id)
    assert len(expected) == 5000
    assert max(counts.values()) == 1, "a recipient received the campaign twice"
    unknown = {
        e.lower()
        for e in await Delivery.filter(campaign_id=campaign.id, state="UNKNOWN").values_list(
            "email", flat=True
        )
    }
    assert len(unknown) <= threads
    assert expected - set(counts) <= unknown  # anything missing is reported as unknown
    assert (await Campaign.get(id=campaign.id)).state == CampaignState.SENT
    sent = await Delivery.filter(campaign_id=campaign.id, state="SENT").count()
    assert sent == 5000 - len(unknown)


async def test_a_broker_restarted_mid_send_loses_nothing_and_doubles_nothing(
    world: Any, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """(b) Restart Redis (nothing kept on disk) in the middle of a send: the batches it lost
    are handed over again from the database and every recipient receives it once."""
    await contacts_with_email(world, 3000)
    campaign = await office_campaign(world)
    with smtp_server() as (smtp_url, received):
        env = worker_env(private_redis, smtp_url)
        await campaigns.send_campaign(world.admin, campaign.id)
        async with crm_worker(tmp_path / "worker.log", env=env, threads=2):
            await until(lambda: received.count() >= 600, seconds=120, what="600 messages")
            private_redis.stop()
            await private_redis.start()
            assert received.count() < 3000, "the send finished before Redis was restarted"
            await campaigns.resend_lost(now=datetime.now(UTC) + timedelta(minutes=5))
            await until(lambda: campaign_finished(campaign.id), seconds=180, what="the send")
        counts = received.per_recipient()
    assert set(counts) == await recipients_of(campaign.id)
    assert set(counts.values()) == {1}
    assert await Delivery.filter(campaign_id=campaign.id, state="SENT").count() == 3000


async def test_a_send_asked_for_while_the_broker_is_down_goes_out_when_it_is_back(
    world: Any, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """sendCampaign while Redis is down is recorded (the campaign is SCHEDULED in the
    database, the transactional outbox) and dispatched once the broker is back."""
    await contacts_with_email(world, 50)
    campaign = await office_campaign(world)
    private_redis.stop()
    sent = await campaigns.send_campaign(world.admin, campaign.id)
    assert sent.state == CampaignState.SCHEDULED
    assert (await Campaign.get(id=campaign.id)).dispatch_enqueued_at is None
    await private_redis.start()
    with smtp_server() as (smtp_url, received):
        env = worker_env(private_redis, smtp_url)
        async with crm_worker(tmp_path / "worker.log", env=env):
            assert await campaigns.resend_lost() >= 1
            await until(lambda: campaign_finished(campaign.id), seconds=60, what="the send")
        counts = received.per_recipient()
    assert len(counts) == 50 and set(counts.values()) == {1}
