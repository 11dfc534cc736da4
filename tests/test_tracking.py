"""Links in campaign messages (R17, R10): the open pixel, tracked clicks and the unsubscribe
page, over HTTP as a mail client and a browser follow them; and record_activities_bulk, the
batch sender's way of recording what it sent."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import sys
import types
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from api.campaigns import links
from api.core import ids
from tests.conftest import make_office

LISTING = "https://homes.example/listing/42"
VALUATION = "https://homes.example/valuation?ref=mail"
BODY = (
    "<html><body><p>Hello {{ first_name }},</p>"
    f'<p><a href="{LISTING}">See the listing</a></p>'
    f'<p><a href="{VALUATION}">Book a valuation</a></p></body></html>'
)
PIXEL_GIF = b"GIF89a"

READ = """
query($id: ID!) {
  contact(id: $id) {
    status lastActivityAt atRiskSince
    statusHistory { from to source reason }
    activities(first: 50) { totalCount edges { node { kind note user { id } } } }
  }
}"""


@pytest.fixture(autouse=True)
def tracked_links_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message templates module is written alongside; until it is there, a stand-in
    with its contract: absolute http(s) hrefs of <a> tags, in order."""
    try:
        import api.campaigns.templates  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("api.campaigns.templates")
        hrefs = re.compile(r"<a\s[^>]*href=\"(https?://[^\"]+)\"", re.IGNORECASE)
        stand_in.tracked_links = lambda body: tuple(  # type: ignore[attr-defined]
            html.unescape(h) for h in hrefs.findall(body)
        )
        monkeypatch.setitem(sys.modules, "api.campaigns.templates", stand_in)


async def send_campaign(world: Any, contacts: list[Any], *, office: Any = None) -> list[Any]:
    """An office campaign with BODY, sent: one SENT delivery per contact."""
    from api.audiences.models import Audience, AudienceKind, SendAccount
    from api.campaigns.models import Campaign, CampaignState, Delivery, DeliveryState

    office = office or world.office
    audience = await Audience.create(
        office_id=office.id,
        account=SendAccount.OFFICE,
        account_key="office",
        kind=AudienceKind.SYSTEM,
        system_key=f"all-{uuid.uuid4().hex[:8]}",
        name="All contacts",
    )
    campaign = await Campaign.create(
        office_id=office.id,
        account=SendAccount.OFFICE,
        audience_id=audience.id,
        name="Spring listings",
        subject="New homes this spring",
        body_html=BODY,
        state=CampaignState.SENT,
    )
    now = datetime.now(UTC)
    return [
        await Delivery.create(
            office_id=office.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            email=contact.email,
            state=DeliveryState.SENT,
            sent_at=now,
        )
        for contact in contacts
    ]


def path(purpose: str, delivery: Any, link: int | None = None) -> str:
    """The path of the genuine link, as the message carries it under PUBLIC_BASE_URL."""
    return urlsplit(links.url(purpose, delivery.id, link)).path


async def fresh(delivery: Any) -> Any:
    from api.campaigns.models import Delivery

    return await Delivery.get(id=delivery.id)


async def read(gql: Any, world: Any, contact: Any) -> dict[str, Any]:
    data = await gql.ok(READ, {"id": ids.encode("Contact", contact.id)}, as_=world.admin)
    return data["contact"]


def kinds(contact: dict[str, Any]) -> list[str]:
    return [edge["node"]["kind"] for edge in contact["activities"]["edges"]]


async def activity_count(office: Any) -> int:
    from api.contacts.models import Activity

    return await Activity.filter(office_id=office.id).count()


async def make_inactive(contact: Any, source: str) -> None:
    """INACTIVE as the audit (AUDIT) or a person (USER) sets it."""
    from api.contacts.models import Contact, ContactStatus, StatusSource
    from api.contacts.status import change_status

    row = await Contact.get(id=contact.id)
    await change_status(
        row, ContactStatus.INACTIVE, source=StatusSource(source), at=datetime.now(UTC)
    )
    await row.save(update_fields=["status", "status_source", "status_updated_at"])


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


# --- the open pixel ------------------------------------------------------------------------


async def test_open_answers_a_gif_and_records_one_open(client, gql, world):
    """R17/R10: the pixel is a 1x1 GIF nobody caches; three opens set opened_at once and
    leave one EMAIL_OPENED activity, which made the contact without status ACTIVE."""
    contact = await world.contact(owner=world.agent)
    [delivery] = await send_campaign(world, [contact])

    first = await client.get(path(links.OPEN, delivery))
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/gif"
    assert first.headers["cache-control"].startswith("no-store")
    assert first.content.startswith(PIXEL_GIF)
    opened_at = (await fresh(delivery)).opened_at
    assert opened_at is not None

    for _ in range(2):
        assert (await client.get(path(links.OPEN, delivery))).status_code == 200
    assert (await fresh(delivery)).opened_at == opened_at

    seen = await read(gql, world, contact)
    assert kinds(seen) == ["EMAIL_OPENED"]
    [node] = [e["node"] for e in seen["activities"]["edges"]]
    assert node["note"] == "Spring listings"
    assert seen["status"] == "ACTIVE"
    assert seen["statusHistory"] == [
        {"from": None, "to": "ACTIVE", "source": "ENGAGEMENT", "reason": "EMAIL_OPENED"}
    ]
    assert ts(seen["lastActivityAt"]) == opened_at


async def test_concurrent_opens_record_once(client, gql, world):
    """Opens arriving together (a mail client loading the pixel twice) record one open."""
    contact = await world.contact(owner=world.agent)
    [delivery] = await send_campaign(world, [contact])
    answers = await asyncio.gather(*(client.get(path(links.OPEN, delivery)) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    seen = await read(gql, world, contact)
    assert kinds(seen) == ["EMAIL_OPENED"]
    assert len(seen["statusHistory"]) == 1


@pytest.mark.parametrize(
    ("set_by", "expected"), [("AUDIT", "ACTIVE"), ("USER", "INACTIVE")], ids=["audit", "person"]
)
async def test_open_reactivates_only_what_the_audit_inactivated(
    client, gql, world, set_by, expected
):
    """R10: an open moves INACTIVE set by the audit to ACTIVE; INACTIVE set by a person
    stays, and the open is recorded all the same."""
    contact = await world.contact(owner=world.agent)
    await make_inactive(contact, set_by)
    [delivery] = await send_campaign(world, [contact])

    assert (await client.get(path(links.OPEN, delivery))).status_code == 200

    seen = await read(gql, world, contact)
    assert seen["status"] == expected
    assert kinds(seen) == ["EMAIL_OPENED"]
    engagement = [c for c in seen["statusHistory"] if c["source"] == "ENGAGEMENT"]
    assert len(engagement) == (1 if expected == "ACTIVE" else 0)


# --- tracked clicks ------------------------------------------------------------------------


async def test_click_redirects_to_the_link_and_records_one_click(client, gql, world):
    """R17: each link number leads to that link of the message; the first click sets
    clicked_at and opened_at (a click proves an open) and records EMAIL_CLICKED with the URL;
    later clicks only redirect."""
    contact = await world.contact(owner=world.agent)
    [delivery] = await send_campaign(world, [contact])

    second = await client.get(path(links.CLICK, delivery, 1))
    assert second.status_code == 302
    assert second.headers["location"] == VALUATION
    assert second.headers["cache-control"].startswith("no-store")
    stored = await fresh(delivery)
    assert stored.clicked_at is not None
    assert stored.opened_at == stored.clicked_at

    first = await client.get(path(links.CLICK, delivery, 0))
    assert (first.status_code, first.headers["location"]) == (302, LISTING)
    again = await client.get(path(links.CLICK, delivery, 1))
    assert (again.status_code, again.headers["location"]) == (302, VALUATION)
    assert (await fresh(delivery)).clicked_at == stored.clicked_at

    seen = await read(gql, world, contact)
    assert kinds(seen) == ["EMAIL_CLICKED"]
    assert seen["activities"]["edges"][0]["node"]["note"] == VALUATION
    assert seen["status"] == "ACTIVE"

    # The pixel loading afterwards finds the open recorded already.
    assert (await client.get(path(links.OPEN, delivery))).status_code == 200
    assert kinds(await read(gql, world, contact)) == ["EMAIL_CLICKED"]


async def test_click_on_a_link_the_message_does_not_have_is_not_found(client, gql, world):
    """No open redirect: a genuine token for a link number beyond the message's links
    answers 404 and records nothing."""
    contact = await world.contact(owner=world.agent)
    [delivery] = await send_campaign(world, [contact])
    before = await activity_count(world.office)

    answer = await client.get(path(links.CLICK, delivery, 2))

    assert answer.status_code == 404
    assert "location" not in answer.headers
    stored = await fresh(delivery)
    assert (stored.clicked_at, stored.opened_at) == (None, None)
    assert await activity_count(world.office) == before


# --- tokens that are not genuine ---------------------------------------------------------


def _altered(token: str) -> str:
    head, _, signature = token.rpartition(".")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{head}.{flipped}{signature[1:]}"


def _bad_paths(delivery: Any, other: Any) -> list[str]:
    open_token = links.make_token(links.OPEN, delivery.id)
    click_token = links.make_token(links.CLICK, delivery.id, 0)
    unsubscribe_token = links.make_token(links.UNSUBSCRIBE, delivery.id)
    unknown = 10**15 + delivery.id
    # Another delivery's signature on this delivery's id.
    borrowed = links.make_token(links.OPEN, other.id).split(".")[1]
    return [
        f"/t/o/{_altered(open_token)}",
        f"/t/c/{_altered(click_token)}",
        f"/u/{_altered(unsubscribe_token)}",
        # A token made for another purpose.
        f"/t/o/{unsubscribe_token}",
        f"/t/c/{open_token}",
        f"/u/{open_token}",
        f"/t/o/{delivery.id}.{borrowed}",
        # A link number moved to another link.
        f"/t/c/{click_token.replace('.0.', '.1.', 1)}",
        # Genuine signatures for a delivery that does not exist.
        f"/t/o/{links.make_token(links.OPEN, unknown)}",
        f"/t/c/{links.make_token(links.CLICK, unknown, 0)}",
        f"/u/{links.make_token(links.UNSUBSCRIBE, unknown)}",
        "/t/o/not-a-token",
        f"/t/o/{delivery.id}",
    ]


async def test_forged_altered_or_unknown_tokens_record_nothing(client, gql, world):
    """R17: tokens cannot be forged: anything but a genuine one answers 404, GET or POST,
    and changes nothing at all."""
    contact = await world.contact(owner=world.agent)
    other_contact = await world.contact(owner=world.agent)
    delivery, other = await send_campaign(world, [contact, other_contact])
    before = await read(gql, world, contact)
    activities = await activity_count(world.office)

    for bad in _bad_paths(delivery, other):
        answer = await client.get(bad)
        assert answer.status_code == 404, bad
        assert "location" not in answer.headers, bad
        if bad.startswith("/u/"):
            posted = await client.post(bad, data={"List-Unsubscribe": "One-Click"})
            assert posted.status_code == 404, bad
            assert "<html" in posted.text.lower()

    assert await activity_count(world.office) == activities
    assert await read(gql, world, contact) == before
    for row in (await fresh(delivery), await fresh(other)):
        assert (row.opened_at, row.clicked_at, row.unsubscribed_at) == (None, None, None)
    from api.contacts.models import Contact

    assert not await Contact.filter(
        id__in=[contact.id, other_contact.id], unsubscribed=True
    ).exists()


# --- unsubscribe -------------------------------------------------------------------------


def assert_page_headers(answer: Any) -> None:
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "form-action 'self'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["content-type"].startswith("text/html")


async def test_unsubscribe_page_shows_a_form_and_changes_nothing(client, gql, world):
    """R17: GET shows the page (mail scanners follow links): the office's name, escaped,
    the masked address and a button posting back; nothing is recorded, however often."""
    office = await make_office(name=f"Smith & <b>Sons</b> {uuid.uuid4().hex[:6]}")
    admin = await _admin(office)
    contact = await _contact(admin, email="jordan.lee@client.example")
    [delivery] = await send_campaign(world, [contact], office=office)

    for _ in range(2):
        answer = await client.get(path(links.UNSUBSCRIBE, delivery))
        assert answer.status_code == 200
        assert_page_headers(answer)

    page = answer.text
    escaped = html.escape(office.name, quote=False)
    assert f"<title>Unsubscribe from {escaped} emails</title>" in page
    assert "<b>Sons</b>" not in page
    assert 'lang="en"' in page
    assert 'name="viewport"' in page
    assert "<main>" in page
    assert re.search(r'<form method="post">\s*<button type="submit"', page)
    assert "j***@client.example" in page
    assert "jordan.lee" not in page
    assert "<script" not in page.lower()
    assert "http" not in page  # no external assets

    from api.contacts.models import Activity, Contact

    assert not (await Contact.get(id=contact.id)).unsubscribed
    assert (await fresh(delivery)).unsubscribed_at is None
    assert not await Activity.filter(contact_id=contact.id).exists()


async def test_unsubscribe_by_the_button_once(client, gql, world):
    """R17: the page's button unsubscribes: the contact's flag, the delivery's
    unsubscribed_at, an UNSUBSCRIBED activity that is not engagement (no status) but moves
    lastActivityAt and clears atRiskSince (R10). A second POST changes nothing and still
    confirms; the page then says so."""
    contact = await world.contact(owner=world.agent)
    long_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)
    from api.contacts.models import Contact

    await Contact.filter(id=contact.id).update(last_activity_at=long_ago, at_risk_since=long_ago)
    [delivery] = await send_campaign(world, [contact])

    answer = await client.post(path(links.UNSUBSCRIBE, delivery), data={"confirm": "1"})

    assert answer.status_code == 200
    assert_page_headers(answer)
    assert "You are unsubscribed" in answer.text
    assert html.escape(world.office.name, quote=False) in answer.text
    assert (await Contact.get(id=contact.id)).unsubscribed
    unsubscribed_at = (await fresh(delivery)).unsubscribed_at
    assert unsubscribed_at is not None
    seen = await read(gql, world, contact)
    assert kinds(seen) == ["UNSUBSCRIBED"]
    assert seen["status"] is None
    assert seen["statusHistory"] == []
    assert ts(seen["lastActivityAt"]) == unsubscribed_at
    assert seen["atRiskSince"] is None

    again = await client.post(path(links.UNSUBSCRIBE, delivery), data={"confirm": "1"})
    assert again.status_code == 200
    assert "You are unsubscribed" in again.text
    assert (await fresh(delivery)).unsubscribed_at == unsubscribed_at
    assert await read(gql, world, contact) == seen

    page = await client.get(path(links.UNSUBSCRIBE, delivery))
    assert page.status_code == 200
    assert "You are unsubscribed" in page.text
    assert "<button" not in page.text


async def test_one_click_unsubscribe_needs_nothing_else(client, gql, world):
    """RFC 8058: a POST with `List-Unsubscribe=One-Click` and no cookie, login or earlier
    visit to the page unsubscribes, also an archived contact a person made INACTIVE (R9:
    activities are always recorded), whose status stays."""
    contact = await world.contact(owner=world.agent)
    [delivery] = await send_campaign(world, [contact])
    await make_inactive(contact, "USER")
    from api.contacts.models import Contact

    await Contact.filter(id=contact.id).update(archived=True, archived_at=datetime.now(UTC))

    answer = await client.post(
        path(links.UNSUBSCRIBE, delivery),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert answer.status_code == 200
    stored = await Contact.get(id=contact.id)
    assert stored.unsubscribed
    assert stored.status == "INACTIVE"
    assert (await fresh(delivery)).unsubscribed_at is not None
    assert kinds(await read(gql, world, contact)) == ["UNSUBSCRIBED"]


async def test_unsubscribed_through_another_campaign_records_nothing_more(client, gql, world):
    """A contact already unsubscribed (through an earlier message) who uses a later
    message's link sees the confirmation; nothing more is recorded."""
    contact = await world.contact(owner=world.agent)
    [earlier] = await send_campaign(world, [contact])
    [later] = await send_campaign(world, [contact])
    assert (await client.post(path(links.UNSUBSCRIBE, earlier))).status_code == 200

    answer = await client.post(path(links.UNSUBSCRIBE, later))

    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.text
    assert (await fresh(later)).unsubscribed_at is None
    assert kinds(await read(gql, world, contact)) == ["UNSUBSCRIBED"]


async def test_log_activity_refuses_unsubscribed(gql, world):
    """Only the link unsubscribes: logActivity refuses the kind with the field named."""
    contact = await world.contact(owner=world.agent)
    body = await gql(
        "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }",
        {"input": {"contactId": ids.encode("Contact", contact.id), "kind": "UNSUBSCRIBED"}},
        as_=world.agent,
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "kind"
    assert kinds(await read(gql, world, contact)) == []


# --- record_activities_bulk ----------------------------------------------------------------


async def test_bulk_activities_in_one_statement_per_table(gql, world, caplog):
    """R10 for the batch sender: N activities in one insert, N contacts in one update;
    lastActivityAt never moves back, atRiskSince is cleared; other offices' contacts are
    left alone."""
    from tortoise.transactions import in_transaction

    from api.contacts.models import Activity, ActivityKind, Contact
    from api.contacts.service import record_activities_bulk

    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    later = at + timedelta(minutes=30)
    earlier = at - timedelta(days=120)
    contacts = [await world.contact(owner=world.agent) for _ in range(5)]
    await Contact.filter(id=contacts[0].id).update(last_activity_at=later)
    await Contact.filter(id=contacts[1].id).update(last_activity_at=earlier, at_risk_since=at)
    foreign_admin = world.foreign_admin
    foreign = await _contact(foreign_admin)

    items = [(c.id, world.agent.id) for c in contacts[:4]] + [(contacts[4].id, None)]
    caplog.set_level(logging.DEBUG, logger="tortoise.db_client")
    caplog.clear()
    async with in_transaction():
        await record_activities_bulk(
            world.office.id,
            ActivityKind.EMAIL_SENT,
            [*items, (foreign.id, None)],
            at=at,
            note="Spring listings",
        )
    statements = [r.getMessage() for r in caplog.records if r.name == "tortoise.db_client"]
    assert sum("INSERT INTO activity" in s for s in statements) == 1
    assert sum("UPDATE contact" in s for s in statements) == 1

    rows = await Activity.filter(contact_id__in=[c.id for c in contacts]).values(
        "contact_id", "kind", "at", "note", "user_id"
    )
    assert sorted((r["contact_id"], r["user_id"]) for r in rows) == sorted(items)
    assert {(r["kind"], r["at"], r["note"]) for r in rows} == {
        (ActivityKind.EMAIL_SENT, at, "Spring listings")
    }
    stored = {c.id: c for c in await Contact.filter(id__in=[c.id for c in contacts])}
    assert stored[contacts[0].id].last_activity_at == later
    assert stored[contacts[1].id].last_activity_at == at
    assert all(c.at_risk_since is None for c in stored.values())
    assert all(c.status is None for c in stored.values())
    seen = await read(gql, world, contacts[2])
    assert (kinds(seen), ts(seen["lastActivityAt"])) == (["EMAIL_SENT"], at)

    assert not await Activity.filter(contact_id=foreign.id).exists()
    assert (await Contact.get(id=foreign.id)).last_activity_at is None


async def test_bulk_refuses_engagement():
    """Engagement changes statuses one contact at a time (R8 history): not in bulk."""
    from api.contacts.models import ActivityKind
    from api.contacts.service import record_activities_bulk

    with pytest.raises(ValueError, match="engagement"):
        await record_activities_bulk(
            1, ActivityKind.EMAIL_OPENED, [(1, None)], at=datetime.now(UTC)
        )


async def _admin(office: Any) -> Any:
    from tests.conftest import make_user

    return await make_user(office, "ADMIN")


async def _contact(actor: Any, **fields: Any) -> Any:
    from api.contacts.service import ContactFields, create_contact

    return await create_contact(
        actor,
        ContactFields(
            first_name="Jordan",
            last_name=uuid.uuid4().hex[:6],
            email=fields.get("email", f"{uuid.uuid4().hex[:8]}@client.example"),
        ),
    )
