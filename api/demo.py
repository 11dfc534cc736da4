"""`crm demo`: a realistic demo office, "Harbour Realty", loaded once (a second run changes nothing).

Every value is drawn from `random.Random(seed)`, and every time is an offset from the moment of
loading, so two loads differ only by when they ran. Users go through the users service (hashed
passwords, R6); contacts, status changes and activities are written set-based in one transaction.
The history of each contact is simulated event by event with the product's own rules: ownership
(R5, api.contacts.ownership), engagement (R10, api.contacts.status.engagement_target), the read-only
inactive contact (R9) and the nightly audit's automatic inactivation and risk flag (R18), so the
stored state is what the product would have produced.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from api.contacts import ownership
from api.contacts.filters import search_text
from api.contacts.models import (
    ENGAGEMENT_KINDS,
    Activity,
    ActivityKind,
    Company,
    Contact,
    ContactStatus,
    StatusChange,
    StatusSource,
)
from api.contacts.status import engagement_target
from api.offices.models import Office
from api.offices.service import bootstrap, update_settings
from api.users.models import Role, User
from api.users.service import UserChanges, create_user, update_user

DEMO_OFFICE = "Harbour Realty"
DEMO_TIMEZONE = "Europe/London"
DEMO_DOMAIN = "demo.example"
DEMO_PASSWORD = "demo-password"  # noqa: S105 (printed for the demo's users)
DEMO_SEED = 20240601
# The demo shows the audit's automatic inactivation; a new office has it off.
AUTO_INACTIVATE_DAYS = 180
BATCH_SIZE = 1000
HISTORY_DAYS = 365

ADMIN = ("admin", "Harriet Cole")


@dataclass(frozen=True)
class _Agent:
    local: str
    name: str
    crm_agent_id: str | None
    active: bool = True
    office_wide_access: bool = False
    can_export: bool = False
    can_delete: bool = False


AGENTS = (
    _Agent("olivia.bennett", "Olivia Bennett", "AG-101", can_export=True, can_delete=True),
    _Agent("james.whitaker", "James Whitaker", "AG-102"),
    _Agent("priya.shah", "Priya Shah", "AG-103", office_wide_access=True),
    _Agent("tom.gallagher", "Tom Gallagher", "AG-104"),
    # Joined recently: no id in the CRM yet, so nothing is assigned to her.
    _Agent("sophie.turner", "Sophie Turner", None),
    # Left the office: deactivated, his CRM id still on contacts, which are unassigned (R5, R6).
    _Agent("daniel.hughes", "Daniel Hughes", "AG-105", active=False),
)
# CRM owner ids on contacts, weighted; AG-109 is a CRM user without an account here, None no owner.
CRM_OWNERS = (
    ("AG-101", 22),
    ("AG-102", 20),
    ("AG-103", 12),
    ("AG-104", 18),
    ("AG-105", 10),
    ("AG-109", 5),
    (None, 13),
)

COMPANIES = (
    "Thornbury Homes",
    "Kestrel Property Group",
    "Marlowe & Finch Solicitors",
    "Harbourside Developments",
    "Saltmarsh Lettings",
    "Bellweather Relocation",
    "Quayside Capital",
    "Fenwick Surveyors",
    "Anchor Point Estates",
    "Larkfield Builders",
    "Northgate Mortgages",
    "Pembroke Asset Management",
    "Seaview Holiday Lets",
    "Ashcombe Architects",
    "Greywell Insurance",
    "Riverside Health Trust",
    "Oakhurst School",
    "Brightwater Engineering",
    "Caldwell & Reid LLP",
    "Lighthouse Logistics",
    "Westcliff Property Management",
    "Marina Yacht Services",
    "Copperfield Accountants",
    "Bramley Care Homes",
    "Tidewater Energy",
    "St Aubyn Investments",
    "Keel & Compass Consulting",
    "Mariner Bank",
    "Eastbrook Construction",
    "Foxglove Interiors",
    "Harrowgate Relocations",
    "Pier Street Dental",
    "Windrush Media",
    "Cobalt Software",
    "Highcliffe Hotel Group",
    "Blackwater Brewing Co",
    "Sandpiper Nurseries",
    "Redshank Ventures",
    "Portland Stone Masons",
    "Wessex Housing Association",
)
FIRST_NAMES = (
    "Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Thomas", "Oscar", "William",
    "James", "Henry", "Leo", "Alfie", "Joshua", "Freddie", "Archie", "Ethan", "Isaac", "Alexander",
    "Samuel", "Daniel", "Arthur", "Max", "Lucas", "Mohammed", "Aarav", "Connor", "Rhys", "Callum",
    "Olivia", "Amelia", "Isla", "Ava", "Emily", "Isabella", "Mia", "Poppy", "Ella", "Lily",
    "Evie", "Grace", "Sophia", "Charlotte", "Freya", "Ruby", "Daisy", "Alice", "Florence", "Chloe",
    "Hannah", "Phoebe", "Zara", "Aisha", "Priya", "Niamh", "Siobhan", "Eleanor", "Matilda", "Rosie",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell",
    "Rose", "Davis", "Rodriguez", "Cox", "Alexander", "Morgan", "Moore", "Mills", "King",
    "Harris", "Scott", "Baker", "Turner", "Hughes", "Edwards", "Cooper", "Ward", "Price",
    "O'Brien", "O'Connor", "Murphy", "Campbell", "Stewart", "Kelly", "Hussain", "Ali", "Begum",
    "Fraser", "Lloyd", "Parry", "Pritchard", "Ashworth", "Fairbairn",
)  # fmt: skip
PERSONAL_DOMAINS = ("mail.example", "inbox.example", "post.example", "homemail.example")
STREETS = (
    "Marine Parade", "Harbour Street", "Quay Road", "Lighthouse Lane", "Anchor Close",
    "Chapel Row", "Fore Street", "Seaview Terrace", "Mill Lane", "Station Road",
)  # fmt: skip

KIND_WEIGHTS = {
    ActivityKind.EMAIL_SENT: 30,
    ActivityKind.EMAIL_OPENED: 18,
    ActivityKind.EMAIL_CLICKED: 8,
    ActivityKind.EMAIL_REPLIED: 6,
    ActivityKind.CALL: 14,
    ActivityKind.TASK: 8,
    ActivityKind.MEETING: 6,
    ActivityKind.WEBINAR_ATTENDED: 4,
    ActivityKind.DEAL: 2,
}
# Prospects have only been reached out to; they never acted, so their status may stay unset.
OUTBOUND_WEIGHTS = {k: w for k, w in KIND_WEIGHTS.items() if k not in ENGAGEMENT_KINDS}
# (name, weight, days since the last activity): silent contacts have none.
RECENCY = (
    ("recent", 55, (0.0, 30.0)),
    ("warm", 20, (30.0, 90.0)),
    ("cooling", 10, (90.0, 180.0)),
    ("cold", 8, (180.0, 330.0)),
    ("silent", 7, None),
)
CAMPAIGNS = (
    "Spring market update",
    "New homes on the harbour",
    "Your home's value this quarter",
    "Open house weekend",
    "Mortgage rates explained",
    "Summer lettings guide",
)
INACTIVE_REASONS = (
    "Bought through another agency",
    "No longer looking",
    "Moved out of the area",
    "Asked not to be contacted",
    "Decided to stay put",
)
ACTIVE_REASONS = ("Looking again", "Viewing booked", "Called back about a valuation", None)


@dataclass
class _Plan:
    """One contact before it has an id: its row, its status history and its activities."""

    contact: Contact
    changes: list[dict] = field(default_factory=list)
    activities: list[dict] = field(default_factory=list)


@dataclass
class _Summary:
    contacts: int = 0
    companies: int = 0
    activities: int = 0
    status_changes: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    unassigned: int = 0
    at_risk: int = 0
    unsubscribed: int = 0
    archived: int = 0


async def load_demo(
    contacts: int = 3000,
    *,
    office_name: str = DEMO_OFFICE,
    email_domain: str = DEMO_DOMAIN,
    seed: int = DEMO_SEED,
) -> None:
    """Create the demo office with its users and `contacts` contacts; if an office of that
    name exists already, change nothing and say so."""
    if contacts < 0:
        raise ValueError("contacts must not be negative")
    started = time.perf_counter()
    existing = await Office.get_or_none(name=office_name)
    if existing is not None:
        print(f"Demo office {office_name!r} already exists; nothing changed.")
        await _print_logins(existing.id)
        return
    rng = random.Random(seed)  # noqa: S311 (deterministic demo data, not secrets)
    now = datetime.now(UTC).replace(microsecond=0)
    async with in_transaction():
        office, admin, created = await bootstrap(
            office_name=office_name,
            timezone=DEMO_TIMEZONE,
            admin_email=f"{ADMIN[0]}@{email_domain}",
            admin_password=DEMO_PASSWORD,
            admin_name=ADMIN[1],
        )
        if not created:  # made by a concurrent run in between
            print(f"Demo office {office_name!r} already exists; nothing changed.")
            return
        office = await update_settings(admin, auto_inactivate_days=AUTO_INACTIVATE_DAYS)
        users_by_crm: dict[str, int] = {}
        for agent in AGENTS:
            user = await create_user(
                None,
                office_id=office.id,
                email=f"{agent.local}@{email_domain}",
                name=agent.name,
                password=DEMO_PASSWORD,
                role=Role.AGENT,
                crm_agent_id=agent.crm_agent_id,
                office_wide_access=agent.office_wide_access,
                can_export=agent.can_export,
                can_delete=agent.can_delete,
            )
            if agent.crm_agent_id:
                users_by_crm[agent.crm_agent_id] = user.id
            if not agent.active:
                await update_user(admin, user.id, UserChanges(active=False))
        summary = await _load_contacts(office, admin.id, users_by_crm, contacts, rng, now)
        await _load_campaigns(admin, users_by_crm)
    seconds = time.perf_counter() - started
    _print_summary(office, summary, seconds)
    await _print_logins(office.id)


async def _load_contacts(
    office: Office,
    admin_id: int,
    users_by_crm: dict[str, int],
    count: int,
    rng: random.Random,
    now: datetime,
) -> _Summary:
    # R5 through the product's own rule: who each CRM owner id maps to now (active users only).
    owners: dict[str | None, int | None] = {
        crm_id: await ownership.crm_user_id(office.id, crm_id) for crm_id, _ in CRM_OWNERS
    }
    await Company.bulk_create(
        [Company(office_id=office.id, name=name, name_key=name.lower()) for name in COMPANIES],
        batch_size=BATCH_SIZE,
    )
    company_ids = dict(await Company.filter(office_id=office.id).values_list("name_key", "id"))
    plans = _plan_contacts(
        rng,
        count,
        now,
        office=office,
        owners=owners,
        users_by_crm=users_by_crm,
        admin_id=admin_id,
        company_ids=company_ids,
    )
    await Contact.bulk_create([p.contact for p in plans], batch_size=BATCH_SIZE)
    contact_ids = dict(await Contact.filter(office_id=office.id).values_list("external_id", "id"))
    changes: list[StatusChange] = []
    activities: list[Activity] = []
    for plan in plans:
        contact_id = contact_ids[plan.contact.external_id]
        changes.extend(
            StatusChange(office_id=office.id, contact_id=contact_id, **c) for c in plan.changes
        )
        activities.extend(
            Activity(office_id=office.id, contact_id=contact_id, created_at=a["at"], **a)
            for a in plan.activities
        )
    await StatusChange.bulk_create(changes, batch_size=BATCH_SIZE)
    await Activity.bulk_create(activities, batch_size=BATCH_SIZE)

    summary = _Summary(
        contacts=len(plans),
        companies=len(company_ids),
        activities=len(activities),
        status_changes=len(changes),
    )
    for plan in plans:
        c = plan.contact
        label = "none" if c.status is None else str(c.status)
        if c.status == ContactStatus.INACTIVE:
            label += f" ({str(c.status_source).lower()})"
        summary.by_status[label] = summary.by_status.get(label, 0) + 1
        summary.unassigned += c.owner_id is None and not c.archived
        summary.at_risk += c.at_risk_since is not None and not c.archived
        summary.unsubscribed += c.unsubscribed
        summary.archived += c.archived
    return summary


def _plan_contacts(
    rng: random.Random,
    count: int,
    now: datetime,
    *,
    office: Office,
    owners: dict[str | None, int | None],
    users_by_crm: dict[str, int],
    admin_id: int,
    company_ids: dict[str, int],
) -> list[_Plan]:
    width = max(5, len(str(count)))
    # A few of each, whatever the count (each at most one in fifty).
    archived = set(rng.sample(range(count), max(1, count // 50))) if count >= 20 else set()
    unsubscribed = set(rng.sample(range(count), max(1, count * 3 // 100))) if count >= 20 else set()
    plans: list[_Plan] = []
    for i in range(count):
        duplicate = plans and rng.random() < 0.01  # the same person entered twice in the CRM
        plan = _plan_contact(
            rng,
            now,
            external_id=f"DEMO-{i + 1:0{width}d}",
            office=office,
            owners=owners,
            users_by_crm=users_by_crm,
            admin_id=admin_id,
            company_ids=company_ids,
            archive=i in archived,
            unsubscribe=i in unsubscribed,
            same_as=rng.choice(plans).contact if duplicate else None,
        )
        plans.append(plan)
    return plans


def _between(rng: random.Random, low: datetime, high: datetime) -> datetime:
    seconds = max(0.0, (high - low).total_seconds())
    return low + timedelta(seconds=int(rng.random() * seconds))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _email(rng: random.Random, first: str, last: str, company: str | None) -> str | None:
    if rng.random() < 0.04:
        return None
    f, l = _slug(first), _slug(last)  # noqa: E741
    local = rng.choice((f"{f}.{l}", f"{f[0]}{l}", f"{f}{l[0]}", f"{f}.{l}{rng.randint(1, 99)}"))
    if company and rng.random() < 0.7:
        words = [w for w in re.split(r"\W+", company) if w and w.lower() not in {"llp", "co"}]
        domain = _slug("".join(words[:2])) + ".example"
    else:
        domain = rng.choice(PERSONAL_DOMAINS)
    return f"{local}@{domain}"


def _phone(rng: random.Random) -> str | None:
    # Ofcom's ranges reserved for drama: never a real subscriber.
    roll = rng.random()
    if roll < 0.7:
        return f"+44 7700 900{rng.randint(0, 999):03d}"
    if roll < 0.9:
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"
    return None


def _note(rng: random.Random, kind: ActivityKind) -> str | None:
    street = f"{rng.randint(1, 80)} {rng.choice(STREETS)}"
    notes = {
        ActivityKind.EMAIL_SENT: rng.choice(CAMPAIGNS),
        ActivityKind.CALL: rng.choice(
            (f"Discussed {street}", "Left a voicemail", "Asked about mortgage options")
        ),
        ActivityKind.TASK: rng.choice(("Send the brochure", f"Chase the survey for {street}")),
        ActivityKind.MEETING: rng.choice((f"Viewing at {street}", f"Valuation at {street}")),
        ActivityKind.DEAL: f"Sale agreed: {street}",
        ActivityKind.WEBINAR_ATTENDED: "First-time buyers webinar",
    }
    return notes.get(kind)


def _plan_contact(
    rng: random.Random,
    now: datetime,
    *,
    external_id: str,
    office: Office,
    owners: dict[str | None, int | None],
    users_by_crm: dict[str, int],
    admin_id: int,
    company_ids: dict[str, int],
    archive: bool,
    unsubscribe: bool,
    same_as: Contact | None,
) -> _Plan:
    company = rng.choice(COMPANIES) if rng.random() < 0.85 else None
    if same_as is not None:
        first, last, email = same_as.first_name, same_as.last_name, same_as.email
    else:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = _email(rng, first, last, company)
    crm_owner_id = rng.choices([c for c, _ in CRM_OWNERS], [w for _, w in CRM_OWNERS])[0]
    owner_id, owner_source = ownership.resolve(owners[crm_owner_id], None, None, crm_write=True)
    # Who acted for the office: the CRM owner (deactivated or not, they did it back then).
    agent_id = users_by_crm.get(crm_owner_id or "", admin_id)

    # When the contact arrived and when it last saw activity (RECENCY).
    _, _, recency = rng.choices(RECENCY, [w for _, w, _ in RECENCY])[0]
    year_ago = now - timedelta(days=HISTORY_DAYS)
    times: list[datetime] = []
    if recency is None and not unsubscribe:
        # New leads nobody has contacted yet, and a few forgotten ones.
        oldest = year_ago if rng.random() < 0.3 else now - timedelta(days=60)
        created = _between(rng, oldest, now - timedelta(days=1))
    else:
        low, high = recency or (0.0, 30.0)
        last_at = (now - timedelta(days=rng.uniform(low, high))).replace(microsecond=0)
        created = _between(rng, year_ago, last_at - timedelta(days=1))
        n = 1 + min(14, int(rng.expovariate(1 / 5)))
        # A contact arrives through an enquiry, so the first activity comes soon after.
        first_at = min(last_at, created + timedelta(hours=rng.uniform(1, 14 * 24)))
        middle = sorted(_between(rng, first_at, last_at) for _ in range(n - 2))
        if n == 1:
            created = max(year_ago, last_at - timedelta(seconds=rng.randint(3600, 14 * 86400)))
            times = [last_at]
        else:
            times = [first_at, *middle, last_at]
        times = [t.replace(microsecond=0) for t in times]
    weights = OUTBOUND_WEIGHTS if rng.random() < 0.3 else KIND_WEIGHTS
    kinds = rng.choices(list(weights), list(weights.values()), k=len(times))
    events: list[tuple[datetime, int, dict]] = []
    for at, kind in zip(times, kinds, strict=True):
        events.append((at, 0, {"kind": kind, "note": _note(rng, kind)}))
    if unsubscribe:
        # The last campaign, then the unsubscribe link in it (R17).
        last_at = times[-1]
        sent_at = _between(rng, max(created, last_at - timedelta(hours=20)), last_at)
        events[-1] = (last_at, 0, {"kind": ActivityKind.UNSUBSCRIBED, "note": "Unsubscribed"})
        events.append(
            (sent_at, 0, {"kind": ActivityKind.EMAIL_SENT, "note": rng.choice(CAMPAIGNS)})
        )
    # A person sets the status now and then, shortly after some contact with the client.
    roll = rng.random()
    if roll < 0.2:
        anchor = rng.choice(times) if times else created
        at = anchor + timedelta(seconds=rng.randint(3600, 3 * 86400))
        if roll < 0.12:
            events.append(
                (at, 1, {"to": ContactStatus.INACTIVE, "reason": rng.choice(INACTIVE_REASONS)})
            )
        else:
            events.append(
                (at, 1, {"to": ContactStatus.ACTIVE, "reason": rng.choice(ACTIVE_REASONS)})
            )
    events.sort(key=lambda e: (e[0], e[1]))

    archived_at = None
    if archive:
        last_event = max([created, *(at for at, _, _ in events)])
        archived_at = _between(rng, last_event + timedelta(hours=1), now)
    end = archived_at or now
    events = [e for e in events if e[0] < end]

    contact = Contact(
        office_id=office.id,
        external_id=external_id,
        first_name=first,
        last_name=last,
        email=email,
        phone=_phone(rng),
        company_id=company_ids[company.lower()] if company else None,
        crm_owner_id=crm_owner_id,
        owner_id=owner_id,
        owner_source=owner_source,
        unsubscribed=unsubscribe,
        created_at=created,
        search_text=search_text(first, last, email, company),
    )
    plan = _Plan(contact)
    if rng.random() < 0.5:  # the CRM sent a status with the contact
        _record(plan, ContactStatus.ACTIVE, StatusSource.IMPORT, created, reason="CRM import")
    _simulate(plan, events, created=created, end=end, office=office, agent_id=agent_id)
    if archived_at is not None:
        if contact.status != ContactStatus.INACTIVE:
            contact.archived, contact.archived_at = True, archived_at
        else:
            # R9: an inactive contact cannot be archived; this one stays, idle until now.
            _simulate_idle(plan, created=created, end=now, office=office)
    for activity in plan.activities:
        if activity["kind"] not in ENGAGEMENT_KINDS:
            activity["user_id"] = agent_id
    return plan


def _record(
    plan: _Plan,
    to: ContactStatus,
    source: StatusSource,
    at: datetime,
    *,
    actor_id: int | None = None,
    reason: str | None = None,
) -> None:
    """R8, as api.contacts.status.change_status does it, collected for a bulk insert."""
    contact = plan.contact
    if contact.status == to:
        return
    plan.changes.append(
        {
            "from_status": contact.status,
            "to_status": to,
            "source": source,
            "actor_id": actor_id,
            "reason": reason,
            "at": at,
        }
    )
    contact.status, contact.status_source, contact.status_updated_at = to, source, at


def _idle_since(plan: _Plan, created: datetime) -> datetime:
    return plan.contact.last_activity_at or created


def _audit(plan: _Plan, *, created: datetime, until: datetime) -> None:
    """R18: the nightly audit moves a contact idle for AUTO_INACTIVATE_DAYS to INACTIVE."""
    due = _idle_since(plan, created) + timedelta(days=AUTO_INACTIVATE_DAYS)
    if plan.contact.status != ContactStatus.INACTIVE and due <= until:
        _record(
            plan,
            ContactStatus.INACTIVE,
            StatusSource.AUDIT,
            due,
            reason=f"No activity for {AUTO_INACTIVATE_DAYS} days",
        )


def _simulate(
    plan: _Plan,
    events: list[tuple[datetime, int, dict]],
    *,
    created: datetime,
    end: datetime,
    office: Office,
    agent_id: int,
) -> None:
    """Replay the contact's history up to `end`: activities (R10), people's changes (R9), audits."""
    contact = plan.contact
    for at, _, event in events:
        _audit(plan, created=created, until=at)
        if "kind" in event:
            kind = event["kind"]
            plan.activities.append({"kind": kind, "at": at, "note": event["note"], "user_id": None})
            # R10: every activity moves lastActivityAt and clears atRiskSince.
            contact.last_activity_at = at
            target = engagement_target(contact, kind)
            if target is not None:
                _record(plan, target, StatusSource.ENGAGEMENT, at, reason=kind.value)
        elif not (
            event["to"] == ContactStatus.INACTIVE and contact.status == ContactStatus.INACTIVE
        ):
            _record(
                plan, event["to"], StatusSource.USER, at, actor_id=agent_id, reason=event["reason"]
            )
    _simulate_idle(plan, created=created, end=end, office=office)


def _simulate_idle(plan: _Plan, *, created: datetime, end: datetime, office: Office) -> None:
    """The audits after the last event, up to `end`: inactivation, then the risk flag (R18)."""
    _audit(plan, created=created, until=end)
    risky_from = _idle_since(plan, created) + timedelta(days=office.risk_days)
    plan.contact.at_risk_since = risky_from if risky_from <= end else None


DEMO_CAMPAIGN_BODY = """<p>Dear {{ first_name }},</p>
<p>Spring is the busiest season on the market. Here is what sold near you this month, and
what is coming up.</p>
<p><a href="https://example.com/market-report">Read the market report</a></p>
<p>Warm regards,<br>{{ agent_name }}, {{ office_name }}</p>"""


async def _load_campaigns(admin: User, users_by_crm: dict[str, int]) -> None:
    """A custom audience and draft campaigns, ready to send from the office-wide account
    and from an agent's own account."""
    from api.audiences.models import SendAccount
    from api.audiences.service import create_audience, system_audience
    from api.campaigns.models import SenderMode
    from api.campaigns.service import CampaignDraft, create_campaign
    from api.contacts.filters import ContactFilterSpec

    at_risk = await create_audience(
        admin,
        "Going cold (at risk)",
        SendAccount.OFFICE,
        ContactFilterSpec(at_risk=True),
    )
    unassigned = await system_audience(admin.office_id, SendAccount.OFFICE, None, "unassigned")
    await create_campaign(
        admin,
        SendAccount.OFFICE,
        CampaignDraft(
            name="Spring market update (unassigned contacts)",
            subject="The spring market, {{ first_name }}",
            body_html=DEMO_CAMPAIGN_BODY,
            audience_id=unassigned.id,
        ),
    )
    await create_campaign(
        admin,
        SendAccount.OFFICE,
        CampaignDraft(
            name="Win-back, from each contact's own agent",
            subject="It has been a while, {{ first_name }}",
            body_html=DEMO_CAMPAIGN_BODY,
            audience_id=at_risk.id,
            sender_mode=SenderMode.OWNER_OR_OFFICE,
        ),
    )
    agent = await User.get(id=next(iter(users_by_crm.values())))
    mine = await system_audience(agent.office_id, SendAccount.USER, agent.id, "mine")
    await create_campaign(
        agent,
        SendAccount.USER,
        CampaignDraft(
            name="My spring newsletter",
            subject="News from {{ agent_name }}",
            body_html=DEMO_CAMPAIGN_BODY,
            audience_id=mine.id,
        ),
    )


def _print_summary(office: Office, s: _Summary, seconds: float) -> None:
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(s.by_status.items()))
    print(
        f"Demo office {office.name!r} ({office.timezone}) loaded in {seconds:.1f} s: "
        f"{s.contacts} contacts, {s.companies} companies, {s.activities} activities, "
        f"{s.status_changes} status changes."
    )
    print(
        f"  statuses: {statuses}; unassigned {s.unassigned}, at risk {s.at_risk}, "
        f"unsubscribed {s.unsubscribed}, archived {s.archived}."
    )


async def _print_logins(office_id: int) -> None:
    users = await User.filter(office_id=office_id).order_by("id")
    print(f"Logins (password: {DEMO_PASSWORD!r} unless changed since):")
    width = max((len(u.email) for u in users), default=5)
    for user in users:
        flags = []
        if user.role == Role.ADMIN:
            flags.append("all rights")
        if user.office_wide_access:
            flags.append("officeWideAccess")
        if user.can_export:
            flags.append("canExport")
        if user.can_delete:
            flags.append("canDelete")
        flags.append(f"crmAgentId {user.crm_agent_id}" if user.crm_agent_id else "no crmAgentId")
        if not user.active:
            flags.append("DEACTIVATED: cannot log in; their contacts are unassigned")
        print(f"  {user.email:<{width}}  {user.role.value:<5}  {DEMO_PASSWORD}  {', '.join(flags)}")
