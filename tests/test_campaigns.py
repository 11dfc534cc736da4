"""Campaigns (R14–R17) through GraphQL and the workers' services: who may create and send
them, who receives them and who is skipped and why, what each message carries, live stats,
scheduling and cancelling, and redelivery of every message without a second copy.

The workers' steps run here in the test's process (dispatch, then each batch), into the
embedded Maildir; tests/test_campaign_delivery.py runs them in `crm worker` processes on
Redis against a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.campaigns import dispatch, sender
from api.campaigns import service as campaigns
from api.campaigns.models import (
    Campaign,
    CampaignBatch,
    CampaignState,
    Delivery,
    DeliveryState,
    Suppression,
)
from api.contacts.models import Activity, ActivityKind, Contact, ContactStatus
from api.core import ids
from api.core.settings import get_settings
from tests.conftest import assert_clean, error_codes, make_user, the_error

CREATE = """
mutation($input: CampaignInput!) {
  createCampaign(input: $input) { id name state account sender { id } audience { id name } }
}"""
SEND = """
mutation($id: ID!, $at: DateTime) { sendCampaign(id: $id, at: $at) { id state scheduledAt } }"""
CANCEL = "mutation($id: ID!) { cancelCampaign(id: $id) { id state } }"
CAMPAIGN = """
query($id: ID!) {
  campaign(id: $id) {
    id state startedAt finishedAt
    stats { recipients sent failed skippedInactive skippedUnsubscribed skippedNoEmail
            skippedArchived skippedDuplicate skippedBounced bounced unknown pending opened clicked }
  }
}"""
BODY = '<p>Hello {{first_name}},</p><p>News from {{agent_name}} at {{office_name}}.</p><p><a href="https://example.com/listing/1">See the listing</a></p>'


async def office_audience(world: Any, key: str = "all") -> str:
    audience = await system_audience(world.office.id, SendAccount.OFFICE, None, key)
    return ids.encode("Audience", audience.id)


async def my_audience(user: Any) -> str:
    audience = await system_audience(user.office_id, SendAccount.USER, user.id, "mine")
    return ids.encode("Audience", audience.id)


async def create(gql: Any, user: Any, audience_id: str, **extra: Any) -> dict[str, Any]:
    variables = {
        "name": extra.pop("name", "Spring listings"),
        "subject": extra.pop("subject", "New homes for you, {{first_name}}"),
        "bodyHtml": extra.pop("body_html", BODY),
        "audienceId": audience_id,
        "account": extra.pop("account", "OFFICE"),
        **extra,
    }
    return (await gql.ok(CREATE, {"input": variables}, as_=user))["createCampaign"]


async def run_workers(campaign_gid: str) -> None:
    """What the workers do, here and now: the dispatch, then every batch."""
    campaign_id = ids.decode("Campaign", campaign_gid)
    await dispatch.dispatch(campaign_id)
    for batch_id in await CampaignBatch.filter(campaign_id=campaign_id).values_list(
        "id", flat=True
    ):
        await sender.send_batch(batch_id)


async def send_now(gql: Any, user: Any, campaign_gid: str) -> dict[str, Any]:
    await gql.ok(SEND, {"id": campaign_gid}, as_=user)
    await run_workers(campaign_gid)
    return (await gql.ok(CAMPAIGN, {"id": campaign_gid}, as_=user))["campaign"]


def maildir_messages(campaign_gid: str) -> list[email.message.EmailMessage]:
    """Messages of one campaign in the embedded Maildir (Message-ID names the campaign)."""
    campaign_id = ids.decode("Campaign", campaign_gid)
    box = mailbox.Maildir(get_settings().data_dir / "maildir", create=True)
    found = []
    for key in box.iterkeys():
        with box.get_file(key) as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        if message["Message-ID"] and f"<c{campaign_id}." in message["Message-ID"]:
            found.append(message)
    return found


# --- who may --------------------------------------------------------------------------------


async def test_office_campaigns_need_admin_or_office_wide_access(gql: Any, world: Any) -> None:
    """R14/R3: an agent cannot create an OFFICE campaign; admins and office-wide users can."""
    audience = await office_audience(world)
    body = await gql(
        CREATE,
        {
            "input": {
                "name": "x",
                "subject": "x",
                "bodyHtml": "<p>x</p>",
                "audienceId": await my_audience(world.agent),
                "account": "OFFICE",
            }
        },
        as_=world.agent,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    for user in (world.admin, world.office_wide):
        created = await create(gql, user, audience)
        assert created["account"] == "OFFICE" and created["sender"] is None
        assert created["state"] == "DRAFT"


async def test_a_campaign_is_seen_by_its_account_only(gql: Any, world: Any) -> None:
    """R1/R3: another agent and another office get NOT_FOUND; admins see agents' campaigns."""
    mine = await create(gql, world.agent, await my_audience(world.agent), account="USER")
    assert mine["sender"]["id"] == ids.encode("User", world.agent.id)
    for outsider in (world.other_agent, world.office_wide, world.foreign_admin):
        body = await gql(CAMPAIGN, {"id": mine["id"]}, as_=outsider)
        assert error_codes(body) == ["NOT_FOUND"], outsider
        body = await gql(SEND, {"id": mine["id"]}, as_=outsider)
        assert error_codes(body) == ["NOT_FOUND"]
    assert (await gql.ok(CAMPAIGN, {"id": mine["id"]}, as_=world.admin))["campaign"]
    # The admin reads it but does not send from the agent's account.
    assert error_codes(await gql(SEND, {"id": mine["id"]}, as_=world.admin)) == ["FORBIDDEN"]
    listed = await gql.ok(
        "{ campaigns { totalCount edges { node { id } } } }", as_=world.other_agent
    )
    assert mine["id"] not in {e["node"]["id"] for e in listed["campaigns"]["edges"]}


@pytest.mark.parametrize(
    ("field", "value", "code_field"),
    [
        ("bodyHtml", "<p>{{ password }}</p>", "bodyHtml"),
        ("bodyHtml", "<p>{{ first_name.__class__ }}</p>", "bodyHtml"),
        ("bodyHtml", "<p>{% for x in y %}</p>", "bodyHtml"),
        ("subject", "", "subject"),
        ("name", "  ", "name"),
        ("audienceId", "QXVkaWVuY2U6OTk5OTk5OTk=", "audienceId"),
        ("audienceId", "not an id!", "audienceId"),
        ("senderMode", "OWNER_OR_OFFICE", "senderMode"),
    ],
)
async def test_bad_campaign_input_is_refused_and_writes_nothing(
    gql: Any, world: Any, field: str, value: str, code_field: str
) -> None:
    """R20: each bad value is BAD_USER_INPUT naming its field; nothing is written."""
    before = await Campaign.filter(office_id=world.office.id).count()
    variables = {
        "name": "n",
        "subject": "s",
        "bodyHtml": "<p>b</p>",
        "audienceId": await my_audience(world.agent),
        "account": "USER",
        field: value,
    }
    body = await gql(CREATE, {"input": variables}, as_=world.agent)
    assert_clean(body)
    error = the_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == code_field
    assert await Campaign.filter(office_id=world.office.id).count() == before


# --- who receives it ------------------------------------------------------------------------


async def test_user_campaign_reaches_only_the_senders_contacts(gql: Any, world: Any) -> None:
    """R14: even to the office-wide "All contacts", a USER campaign reaches only its sender's."""
    own = [await world.contact(owner=world.office_wide) for _ in range(3)]
    await world.contact(owner=world.agent)
    await world.contact()  # unassigned
    campaign = await create(gql, world.office_wide, await office_audience(world), account="USER")
    stats = (await send_now(gql, world.office_wide, campaign["id"]))["stats"]
    assert stats["recipients"] == 3 and stats["sent"] == 3
    received = {m["To"].addresses[0].addr_spec for m in maildir_messages(campaign["id"])}
    assert received == {c.email for c in own}


async def test_skips_are_counted_by_reason_and_one_address_gets_one_copy(
    gql: Any, world: Any
) -> None:
    """R15 (and R11): inactive, archived, unsubscribed, no or invalid email and a second
    contact with the same address are skipped and counted; the rest receive it once."""
    ok = [await world.contact() for _ in range(2)]
    inactive = await world.contact()
    await Contact.filter(id=inactive.id).update(status=ContactStatus.INACTIVE)
    archived = await world.contact()
    await Contact.filter(id=archived.id).update(archived=True)
    unsubscribed = await world.contact()
    await Contact.filter(id=unsubscribed.id).update(unsubscribed=True)
    await world.contact(email=None)
    invalid = await world.contact()
    await Contact.filter(id=invalid.id).update(email="not-an-address")
    twin = await world.contact()
    await Contact.filter(id=twin.id).update(email=ok[0].email.upper())
    campaign = await create(gql, world.admin, await office_audience(world))
    result = await send_now(gql, world.admin, campaign["id"])
    stats = result["stats"]
    assert result["state"] == "SENT" and result["finishedAt"]
    assert stats == {
        "recipients": 2,
        "sent": 2,
        "failed": 0,
        "skippedInactive": 1,
        "skippedUnsubscribed": 1,
        "skippedNoEmail": 2,
        "skippedArchived": 1,
        "skippedDuplicate": 1,
        "skippedBounced": 0,
        "bounced": 0,
        "unknown": 0,
        "pending": 0,
        "opened": 0,
        "clicked": 0,
    }
    received = sorted(m["To"].addresses[0].addr_spec for m in maildir_messages(campaign["id"]))
    assert received == sorted(c.email for c in ok)


async def test_excluded_audiences_leave_their_members_out(gql: Any, world: Any) -> None:
    """A campaign may exclude audiences: here the unassigned contacts."""
    owned = await world.contact(owner=world.agent)
    await world.contact()
    campaign = await create(
        gql,
        world.admin,
        await office_audience(world),
        excludeAudienceIds=[await office_audience(world, "unassigned")],
    )
    stats = (await send_now(gql, world.admin, campaign["id"]))["stats"]
    assert stats["recipients"] == 1
    assert [m["To"].addresses[0].addr_spec for m in maildir_messages(campaign["id"])] == [
        owned.email
    ]


# --- what each message carries ---------------------------------------------------------------


async def test_messages_carry_sender_unsubscribe_headers_pixel_and_tracked_links(
    gql: Any, world: Any
) -> None:
    """R17: a USER campaign is from the agent; List-Unsubscribe (a URL under PUBLIC_BASE_URL)
    with One-Click, a Message-ID, an open pixel, tracked links and a plain-text part."""
    contact = await world.contact(owner=world.agent, first_name="Ada")
    campaign = await create(gql, world.agent, await my_audience(world.agent), account="USER")
    await send_now(gql, world.agent, campaign["id"])
    (message,) = maildir_messages(campaign["id"])
    assert message["From"].addresses[0].addr_spec == world.agent.email
    assert message["From"].addresses[0].display_name == world.agent.name
    assert message["Reply-To"].addresses[0].addr_spec == world.agent.email
    assert message["Subject"] == "New homes for you, Ada"
    base = get_settings().public_base_url
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe.startswith(f"<{base}/u/") and unsubscribe.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"]
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "Hello Ada" in html and "Hello Ada" in text
    assert f"{base}/t/o/" in html  # the open pixel
    assert f"{base}/t/c/" in html and "https://example.com/listing/1" not in html
    assert world.agent.name in html and world.office.name in html
    delivery = await Delivery.get(contact_id=contact.id)
    assert delivery.state == DeliveryState.SENT and delivery.sent_at is not None


async def test_office_campaigns_come_from_the_office_or_each_contacts_agent(
    gql: Any, world: Any
) -> None:
    """R17 and senderMode OWNER_OR_OFFICE: from the office, or from each contact's own agent
    with the office for the unassigned."""
    await gql.ok(
        'mutation { updateOfficeSettings(input: {senderEmail: "hello@harbour.example"}) { id } }',
        as_=world.admin,
    )
    owned = await world.contact(owner=world.agent)
    loose = await world.contact()
    plain = await create(gql, world.admin, await office_audience(world))
    await send_now(gql, world.admin, plain["id"])
    senders = {m["From"].addresses[0].addr_spec for m in maildir_messages(plain["id"])}
    assert senders == {"hello@harbour.example"}
    by_owner = await create(
        gql, world.admin, await office_audience(world), senderMode="OWNER_OR_OFFICE"
    )
    await send_now(gql, world.admin, by_owner["id"])
    got = {
        m["To"].addresses[0].addr_spec: m["From"].addresses[0]
        for m in maildir_messages(by_owner["id"])
    }
    assert got[owned.email].addr_spec == world.agent.email
    assert got[loose.email].addr_spec == "hello@harbour.example"
    assert got[loose.email].display_name == world.office.name


async def test_sending_logs_email_sent_activities_once(gql: Any, world: Any) -> None:
    """EMAIL_SENT activities, written in bulk, once per delivery even when a batch runs twice;
    they touch lastActivityAt like every activity (R10)."""
    contact = await world.contact(owner=world.agent)
    campaign = await create(gql, world.agent, await my_audience(world.agent), account="USER")
    await send_now(gql, world.agent, campaign["id"])
    campaign_id = ids.decode("Campaign", campaign["id"])
    for batch in await CampaignBatch.filter(campaign_id=campaign_id):
        await CampaignBatch.filter(id=batch.id).update(state="QUEUED")  # a redelivery
        await sender.send_batch(batch.id)
    activities = await Activity.filter(contact_id=contact.id, kind=ActivityKind.EMAIL_SENT)
    assert len(activities) == 1 and activities[0].user_id == world.agent.id
    assert (await Contact.get(id=contact.id)).last_activity_at is not None
    assert len(maildir_messages(campaign["id"])) == 1


# --- exactly once ---------------------------------------------------------------------------


async def test_dispatch_and_batches_delivered_twice_send_once(gql: Any, world: Any) -> None:
    """R16: a second dispatch finds the campaign started; a batch message delivered twice
    (even at once) sends each message once."""
    import asyncio

    for _ in range(7):
        await world.contact()
    campaign = await create(gql, world.admin, await office_audience(world))
    await gql.ok(SEND, {"id": campaign["id"]}, as_=world.admin)
    campaign_id = ids.decode("Campaign", campaign["id"])
    await asyncio.gather(dispatch.dispatch(campaign_id), dispatch.dispatch(campaign_id))
    assert await Delivery.filter(campaign_id=campaign_id).count() == 7
    batches = await CampaignBatch.filter(campaign_id=campaign_id).values_list("id", flat=True)
    await asyncio.gather(*(sender.send_batch(b) for b in [*batches, *batches]))
    for b in batches:
        await sender.send_batch(b)
    assert len(maildir_messages(campaign["id"])) == 7
    state = (await gql.ok(CAMPAIGN, {"id": campaign["id"]}, as_=world.admin))["campaign"]
    assert state["state"] == "SENT" and state["stats"]["sent"] == 7


async def test_a_delivery_left_sending_by_a_dead_worker_is_never_sent_again(
    gql: Any, world: Any
) -> None:
    """R16: a worker that died while the mail server had a message leaves it SENDING; the
    worker that takes the batch over reports it UNKNOWN and sends everything else once."""
    for _ in range(3):
        await world.contact()
    campaign = await create(gql, world.admin, await office_audience(world))
    await gql.ok(SEND, {"id": campaign["id"]}, as_=world.admin)
    campaign_id = ids.decode("Campaign", campaign["id"])
    await dispatch.dispatch(campaign_id)
    (batch,) = await CampaignBatch.filter(campaign_id=campaign_id)
    first = await Delivery.filter(campaign_id=campaign_id, state="PENDING").order_by("id").first()
    past = datetime.now(UTC) - timedelta(seconds=1)
    await Delivery.filter(id=first.id).update(state=DeliveryState.SENDING)
    await CampaignBatch.filter(id=batch.id).update(state="RUNNING", lease_until=past)
    await sender.send_batch(batch.id)
    assert (await Delivery.get(id=first.id)).state == DeliveryState.UNKNOWN
    stats = (await gql.ok(CAMPAIGN, {"id": campaign["id"]}, as_=world.admin))["campaign"]["stats"]
    assert stats["sent"] == 2 and stats["unknown"] == 1 and stats["pending"] == 0
    assert len(maildir_messages(campaign["id"])) == 2


async def test_a_batch_held_by_a_live_worker_is_left_alone(gql: Any, world: Any) -> None:
    await world.contact()
    campaign = await create(gql, world.admin, await office_audience(world))
    await gql.ok(SEND, {"id": campaign["id"]}, as_=world.admin)
    campaign_id = ids.decode("Campaign", campaign["id"])
    await dispatch.dispatch(campaign_id)
    (batch,) = await CampaignBatch.filter(campaign_id=campaign_id)
    later = datetime.now(UTC) + timedelta(minutes=1)
    await CampaignBatch.filter(id=batch.id).update(state="RUNNING", lease_until=later)
    await sender.send_batch(batch.id)
    assert maildir_messages(campaign["id"]) == []


# --- scheduling and cancelling --------------------------------------------------------------


async def test_a_scheduled_send_starts_when_due_and_survives_a_lost_message(
    gql: Any, world: Any
) -> None:
    """Scheduled sends are rows: a dispatch before the time does nothing, and the clock's
    resend starts the campaign once due even if the broker lost its message."""
    await world.contact()
    campaign = await create(gql, world.admin, await office_audience(world))
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = (await gql.ok(SEND, {"id": campaign["id"], "at": at.isoformat()}, as_=world.admin))[
        "sendCampaign"
    ]
    assert scheduled["state"] == "SCHEDULED"
    campaign_id = ids.decode("Campaign", campaign["id"])
    await dispatch.dispatch(campaign_id)
    assert (await Campaign.get(id=campaign_id)).state == CampaignState.SCHEDULED
    assert await campaigns.resend_lost(now=datetime.now(UTC)) >= 0
    assert (await Campaign.get(id=campaign_id)).state == CampaignState.SCHEDULED
    await dispatch.dispatch(campaign_id, now=at + timedelta(seconds=1))
    assert (await Campaign.get(id=campaign_id)).state == CampaignState.SENDING


async def test_cancel_before_start_and_conflicts_after(gql: Any, world: Any) -> None:
    await world.contact()
    campaign = await create(gql, world.admin, await office_audience(world))
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await gql.ok(SEND, {"id": campaign["id"], "at": at}, as_=world.admin)
    cancelled = await gql.ok(CANCEL, {"id": campaign["id"]}, as_=world.admin)
    assert cancelled["cancelCampaign"]["state"] == "CANCELLED"
    campaign_id = ids.decode("Campaign", campaign["id"])
    await dispatch.dispatch(campaign_id, now=datetime.now(UTC) + timedelta(hours=2))
    assert await Delivery.filter(campaign_id=campaign_id).count() == 0
    for query in (CANCEL, SEND):
        assert error_codes(await gql(query, {"id": campaign["id"]}, as_=world.admin)) == [
            "CONFLICT"
        ]


async def test_send_refuses_a_past_time(gql: Any, world: Any) -> None:
    campaign = await create(gql, world.admin, await office_audience(world))
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body = await gql(SEND, {"id": campaign["id"], "at": past}, as_=world.admin)
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": "at"}
    assert (await Campaign.get(id=ids.decode("Campaign", campaign["id"]))).state == "DRAFT"


# --- bounces --------------------------------------------------------------------------------


async def test_a_bounced_address_is_suppressed_from_later_sends(gql: Any, world: Any) -> None:
    """A 5xx for an address marks it BOUNCED and later campaigns skip it."""
    contact = await world.contact()
    first = await create(gql, world.admin, await office_audience(world))
    await gql.ok(SEND, {"id": first["id"]}, as_=world.admin)
    campaign_id = ids.decode("Campaign", first["id"])
    await dispatch.dispatch(campaign_id)
    await Delivery.filter(campaign_id=campaign_id).update(
        state=DeliveryState.BOUNCED, error="550 no such user"
    )
    for batch_id in await CampaignBatch.filter(campaign_id=campaign_id).values_list(
        "id", flat=True
    ):
        await sender.send_batch(batch_id)
    assert await Suppression.filter(office_id=world.office.id, address=contact.email).exists()
    second = await create(gql, world.admin, await office_audience(world))
    stats = (await send_now(gql, world.admin, second["id"]))["stats"]
    assert stats["skippedBounced"] == 1 and stats["recipients"] == 0


async def test_agents_of_another_office_never_receive_ids(gql: Any, world: Any) -> None:
    """R1: a foreign admin's campaign cannot name this office's audience."""
    other_user = await make_user(world.foreign_office, "ADMIN")
    body = await gql(
        CREATE,
        {
            "input": {
                "name": "x",
                "subject": "x",
                "bodyHtml": "<p>x</p>",
                "audienceId": await office_audience(world),
                "account": "OFFICE",
            }
        },
        as_=other_user,
    )
    assert the_error(body)["extensions"] == {"code": "BAD_USER_INPUT", "field": "audienceId"}


async def test_a_campaign_whose_audience_was_deleted_cannot_be_sent(gql: Any, world: Any) -> None:
    created = await gql.ok(
        'mutation { createAudience(input: {name: "Soon gone", account: OFFICE, filter: {}}) { id } }',
        as_=world.admin,
    )
    audience = created["createAudience"]["id"]
    campaign = await create(gql, world.admin, audience)
    await gql.ok(
        "mutation($id: ID!) { deleteAudience(id: $id) { id } }", {"id": audience}, as_=world.admin
    )
    body = await gql(SEND, {"id": campaign["id"]}, as_=world.admin)
    assert error_codes(body) == ["CONFLICT"]
    assert (await Campaign.get(id=ids.decode("Campaign", campaign["id"]))).state == "DRAFT"


# --- over SMTP ------------------------------------------------------------------------------


async def test_smtp_outcomes_sent_bounced_and_retried(
    gql: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a real SMTP server: a 550 marks the delivery BOUNCED and suppresses the address;
    a 451 leaves it PENDING, the batch asks for a retry, and the retry delivers it once."""
    import dramatiq

    from tests.mail_server import smtp_server

    fine, gone, busy = [await world.contact() for _ in range(3)]
    campaign = await create(gql, world.admin, await office_audience(world))
    campaign_id = ids.decode("Campaign", campaign["id"])
    with smtp_server() as (url, received):
        monkeypatch.setattr(get_settings(), "smtp_url", url)
        received.refuse[gone.email] = "550 5.1.1 No such mailbox"
        received.refuse[busy.email] = "451 4.2.0 Mailbox busy, try later"
        await gql.ok(SEND, {"id": campaign["id"]}, as_=world.admin)
        await dispatch.dispatch(campaign_id)
        (batch,) = await CampaignBatch.filter(campaign_id=campaign_id)
        with pytest.raises(dramatiq.Retry):
            await sender.send_batch(batch.id)
        states = dict(await Delivery.filter(campaign_id=campaign_id).values_list("email", "state"))
        assert states == {fine.email: "SENT", gone.email: "BOUNCED", busy.email: "PENDING"}
        assert (await CampaignBatch.get(id=batch.id)).state == "QUEUED"
        assert (await Campaign.get(id=campaign_id)).state == CampaignState.SENDING
        del received.refuse[busy.email]
        await sender.send_batch(batch.id)  # the retry
        assert received.per_recipient() == {fine.email: 1, busy.email: 1}
    assert await Suppression.filter(office_id=world.office.id, address=gone.email).exists()
    result = (await gql.ok(CAMPAIGN, {"id": campaign["id"]}, as_=world.admin))["campaign"]
    assert result["state"] == "SENT"
    assert result["stats"]["sent"] == 2 and result["stats"]["bounced"] == 1


@pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode (no REDIS_URL) only")
async def test_embedded_workers_send_a_campaign_into_the_maildir(gql: Any, world: Any) -> None:
    """The embedded default: sendCampaign's messages are carried out by the in-process
    worker (dispatch, then batches) into the Maildir under DATA_DIR."""
    from tests.workers_for_tests import drain_in_process

    for _ in range(3):
        await world.contact()
    campaign = await create(gql, world.admin, await office_audience(world))
    await gql.ok(SEND, {"id": campaign["id"]}, as_=world.admin)
    await drain_in_process("campaigns")
    result = (await gql.ok(CAMPAIGN, {"id": campaign["id"]}, as_=world.admin))["campaign"]
    assert result["state"] == "SENT" and result["stats"]["sent"] == 3
    assert len(maildir_messages(campaign["id"])) == 3
