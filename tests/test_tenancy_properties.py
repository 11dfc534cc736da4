"""Tenancy and visibility under random traffic (R1–R3): a Hypothesis state machine sends
random sequences of queries and mutations over HTTP, by users of two offices in every role,
and checks each answer against what the database holds at that moment:

- no answer to a user of one office carries an id of another office's row, nor a name or
  email made in the other office (R1);
- an agent without office-wide access never receives a contact they do not own (R2);
- email and phone of a contact another user owns reach a non-admin only masked, null with a
  FORBIDDEN error on the path; a user's email reaches only that user and admins (R3);
- reading a contact answers it exactly when the caller may see it, NOT_FOUND otherwise (R1);
- every answer is data or errors with a known code (R20).

Every example makes two fresh offices, so an example's expectations never depend on an
earlier one. The machine is synchronous (Hypothesis drives it); each request runs to completion
on the suite's own event loop, the one the test database belongs to. FUZZ_SCALE runs more
(`make fuzz`)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from api.core import ids
from api.users import auth
from tests.conftest import error_codes, make_office, make_user
from tests.fuzzing import (
    check_answer,
    hypothesis_settings,
    kind_of,
    long_run,
    model_named,
    nodes_with_paths,
    strings,
)

T = TypeVar("T")

USER_FIELDS = "fragment U on User { id name email role crmAgentId officeWideAccess }"
# A contact as lists show it; the full one (a single contact) adds history and activities.
LISTED_CONTACT = (
    "fragment C on Contact { id firstName lastName email phone crmOwnerId status archived"
    " unassigned owner { ...U } company { id name } }"
)
FULL_CONTACT = (
    "fragment F on Contact { ...C statusHistory { source reason actor { ...U } }"
    " activities(first: 5) { totalCount edges { node { id kind note user { ...U } } } } }"
)
CONTACT_DOC = f"{USER_FIELDS} {LISTED_CONTACT} {FULL_CONTACT}"
AUDIENCE_FIELDS = (
    "fragment A on Audience { id name kind account owner { ...U } size"
    " ownerBreakdown { count owner { ...U } }"
    " filter { ownerId companyId search unassigned status noStatus }"
    " contacts(first: 20) { totalCount edges { node { ...C } } } }"
)
AUDIENCE_DOC = f"{USER_FIELDS} {LISTED_CONTACT} {AUDIENCE_FIELDS}"
CAMPAIGN_FIELDS = (
    "fragment K on Campaign { id name subject account state sender { ...U }"
    " audience { id name owner { ...U } contacts(first: 10) { edges { node { ...C } } } }"
    " excludedAudiences { id name } stats { recipients } }"
)
CAMPAIGN_DOC = f"{USER_FIELDS} {LISTED_CONTACT} {CAMPAIGN_FIELDS}"

ROLES = ("admin", "agent", "other_agent", "office_wide")
VIEWERS = [(office, role) for office in ("A", "B") for role in ROLES]


@pytest.fixture(scope="session")
async def suite_loop() -> asyncio.AbstractEventLoop:
    """The loop the suite's async fixtures and the test database live on."""
    return asyncio.get_running_loop()


# Unique names for what examples make, all of one length (none is part of another): a
# run's own prefix, then a count, so that the same draws make the same names in the same
# order and a derandomized run repeats itself.
_RUN = uuid.uuid4().hex[:6]
_made = itertools.count()


def token() -> str:
    return f"{_RUN}{next(_made):06d}"


@dataclass
class Office:
    """One office of an example: its cast, and the names and emails made in it."""

    key: str
    office: Any
    users: dict[str, Any]
    marks: set[str] = field(default_factory=set)

    def user(self, role: str) -> Any:
        return self.users[role]


async def make_cast(key: str) -> Office:
    name = f"Office {key} {token()}"
    office = await make_office(name)
    users: dict[str, Any] = {}
    marks = {name}
    for role in ROLES:
        mark = token()
        kwargs: dict[str, Any] = {"name": f"User {mark}", "email": f"u{mark}@office.example"}
        if role != "admin":
            kwargs["crm_agent_id"] = f"crm-{mark}"
        if role == "office_wide":
            kwargs["office_wide_access"] = True
        users[role] = await make_user(office, "ADMIN" if role == "admin" else "AGENT", **kwargs)
        marks |= {kwargs["name"], kwargs["email"]}
    return Office(key, office, users, marks)


class TenancyMachine(RuleBasedStateMachine):
    """Random traffic of two offices; every answer is checked as the module says."""

    contacts = Bundle("contacts")
    audiences = Bundle("audiences")
    campaigns = Bundle("campaigns")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient) -> None:
        super().__init__()
        self.loop = loop
        self.client = client
        self.offices = {key: self.run(make_cast(key)) for key in ("A", "B")}
        self.companies = {key: [f"Co {key} {token()}" for _ in range(2)] for key in ("A", "B")}
        for key, names in self.companies.items():
            self.offices[key].marks.update(names)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    # --- sending and checking ----------------------------------------------------------------

    def send(
        self,
        viewer: tuple[str, str],
        query: str,
        variables: dict[str, Any] | None = None,
        handed_over: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Post as `viewer` and check the answer against every invariant (`handed_over`:
        see check_tenancy)."""
        office, role = viewer
        user = self.offices[office].user(role)
        return self.run(self._send(user, office, query, variables or {}, handed_over))

    async def _send(
        self,
        user: Any,
        office_key: str,
        query: str,
        variables: dict[str, Any],
        handed_over: tuple[str, ...],
    ) -> dict[str, Any]:
        from api.users.models import User

        # Fresh from the database: a rule may have changed the user's rights or revoked tokens.
        user = await User.get(id=user.id)
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {auth.issue_token(user)}"},
        )
        sent = f"{query}\nvariables: {variables}\nas {office_key} {user.role} {user.name}"
        body = check_answer(response, sent)
        if not user.active:
            # Deactivated (R6): every token of theirs stopped working at once.
            assert set(error_codes(body)) == {"UNAUTHENTICATED"}, f"{sent}\n{body}"
        other = self.offices["B" if office_key == "A" else "A"]
        await check_tenancy(user, other.marks, body, f"\n--- sent ---\n{sent}", handed_over)
        return body

    # --- set-up --------------------------------------------------------------------------------

    @initialize(target=contacts)
    def seed(self) -> Any:
        """One contact per owner of each office, and an unassigned one."""
        made = []
        for key in ("A", "B"):
            cast = self.offices[key]
            for owner in (*ROLES[1:], None):
                crm = cast.user(owner).crm_agent_id if owner else None
                made.append(self._create((key, "admin"), crm, None, 0))
        return multiple(*[m for m in made if m is not None])

    # --- contacts ------------------------------------------------------------------------------

    def _create(
        self, viewer: tuple[str, str], crm_owner: str | None, status: str | None, company: int
    ) -> str | None:
        cast = self.offices[viewer[0]]
        mark = token()
        names = {"firstName": f"Fn{mark}", "lastName": f"Ln{mark}", "email": f"{mark}@c.example"}
        cast.marks.update(names.values())
        company_name = self.companies[viewer[0]][company % 2]
        data = {**names, "companyName": company_name, "crmOwnerId": crm_owner, "status": status}
        body = self.send(
            viewer,
            f"mutation($input: ContactInput!) {{ createContact(input: $input) {{ ...F }} }} "
            f"{CONTACT_DOC}",
            {"input": data},
            handed_over=("createContact",),
        )
        created = (body.get("data") or {}).get("createContact")
        return created["id"] if created else None

    @rule(
        target=contacts,
        office=st.sampled_from(["A", "B"]),
        role=st.sampled_from(ROLES),
        owner=st.sampled_from([*VIEWERS, None, "nobody"]),
        status=st.sampled_from([None, "ACTIVE", "INACTIVE"]),
        company=st.integers(0, 1),
    )
    def create_contact(
        self, office: str, role: str, owner: Any, status: str | None, company: int
    ) -> Any:
        """Anyone creates a contact; its CRM owner may be of either office (R5: per office)."""
        if owner is None or owner == "nobody":
            crm = None if owner is None else f"crm-unknown-{token()}"
        else:
            crm = self.offices[owner[0]].user(owner[1]).crm_agent_id
        made = self._create((office, role), crm, status, company)
        return made if made is not None else multiple()

    @rule(viewer=st.sampled_from(VIEWERS), contact=contacts)
    def read_contact(self, viewer: tuple[str, str], contact: str) -> None:
        body = self.send(
            viewer,
            f"query($id: ID!) {{ contact(id: $id) {{ ...F }} }} {CONTACT_DOC}",
            {"id": contact},
        )
        expected = self.run(self._expected_read(viewer, contact))
        found = (body.get("data") or {}).get("contact")
        if expected is None:
            assert found is not None and found["id"] == contact, body
        else:
            assert found is None, body
            assert error_codes(body) == [expected], body

    async def _expected_read(self, viewer: tuple[str, str], contact_id: str) -> str | None:
        """None when the viewer may see the contact, else the one error code to expect."""
        from api.contacts.models import Contact
        from api.users.models import Role, User

        user = await User.get(id=self.offices[viewer[0]].user(viewer[1]).id)
        contact = await Contact.get(id=ids.decode("Contact", contact_id))
        if not user.active:
            return "UNAUTHENTICATED"
        if contact.office_id != user.office_id:
            return "NOT_FOUND"
        if user.role == Role.ADMIN or user.office_wide_access or contact.owner_id == user.id:
            return None
        return "NOT_FOUND"

    @rule(viewer=st.sampled_from(VIEWERS), data=st.data())
    def list_contacts(self, viewer: tuple[str, str], data: st.DataObject) -> None:
        """A random filter, its values of either office."""
        choices = self._filter_values(data, own_office=None)
        body = self.send(
            viewer,
            "query($f: ContactFilter) { contacts(filter: $f, first: 20) { totalCount"
            f" edges {{ node {{ ...C }} }} }} }} {USER_FIELDS} {LISTED_CONTACT}",
            {"f": choices},
        )
        assert body.get("data") or body.get("errors"), body

    def _filter_values(self, data: st.DataObject, own_office: str | None) -> dict[str, Any]:
        """A ContactFilter of random conditions. Searches take names of `own_office` only when
        given (an audience shows its filter back)."""
        offices = [own_office] if own_office else ["A", "B"]
        users = [self.offices[k].user(r) for k in ("A", "B") for r in ROLES]
        searches = sorted(m for k in offices for m in self.offices[k].marks)
        conditions = {
            "status": st.sampled_from([["ACTIVE"], ["INACTIVE"], ["ACTIVE", "INACTIVE"]]),
            "noStatus": st.booleans(),
            "ownerId": st.sampled_from([ids.encode("User", u.id) for u in users]),
            "unassigned": st.booleans(),
            "search": st.sampled_from(searches),
            "atRisk": st.booleans(),
            "includeArchived": st.booleans(),
        }
        if own_office:
            conditions.pop("includeArchived")
        chosen = data.draw(st.sets(st.sampled_from(sorted(conditions)), max_size=3))
        return {name: data.draw(conditions[name]) for name in sorted(chosen)}

    @rule(
        viewer=st.sampled_from(VIEWERS), contact=contacts, which=st.sampled_from(["first", "email"])
    )
    def update_contact(self, viewer: tuple[str, str], contact: str, which: str) -> None:
        mark = token()
        patch = {"firstName": f"Fn{mark}"} if which == "first" else {"email": f"{mark}@c.example"}
        # The new name belongs to the contact's office, whoever tries to write it.
        owner_office = self.run(self._office_key_of(contact))
        self.offices[owner_office].marks.update(patch.values())
        self.send(
            viewer,
            "mutation($id: ID!, $p: ContactPatch!) { updateContact(id: $id, input: $p) { ...F } }"
            f" {CONTACT_DOC}",
            {"id": contact, "p": patch},
        )

    async def _office_key_of(self, contact_id: str) -> str:
        from api.contacts.models import Contact

        contact = await Contact.get(id=ids.decode("Contact", contact_id))
        return "A" if contact.office_id == self.offices["A"].office.id else "B"

    @rule(
        viewer=st.sampled_from(VIEWERS),
        contact=contacts,
        status=st.sampled_from(["ACTIVE", "INACTIVE"]),
    )
    def set_status(self, viewer: tuple[str, str], contact: str, status: str) -> None:
        self.send(
            viewer,
            "mutation($id: ID!, $s: ContactStatus!) { setContactStatus(id: $id, status: $s,"
            f' reason: "checking") {{ ...F }} }} {CONTACT_DOC}',
            {"id": contact, "s": status},
        )

    @rule(
        viewer=st.sampled_from(VIEWERS),
        contact=contacts,
        kind=st.sampled_from(["CALL", "EMAIL_OPENED", "WEBINAR_ATTENDED", "DEAL"]),
    )
    def log_activity(self, viewer: tuple[str, str], contact: str, kind: str) -> None:
        """Engagement moves statuses by itself (R10)."""
        self.send(
            viewer,
            "mutation($i: ActivityInput!) { logActivity(input: $i) { id kind user { ...U } } }"
            f" {USER_FIELDS}",
            {"i": {"contactId": contact, "kind": kind}},
        )

    @rule(
        office=st.sampled_from(["A", "B"]),
        picked=st.lists(contacts, min_size=1, max_size=4, unique=True),
        owner=st.sampled_from([*VIEWERS, None]),
        own_only=st.booleans(),
    )
    def assign(
        self, office: str, picked: list[str], owner: tuple[str, str] | None, own_only: bool
    ) -> None:
        """Admins assign by hand (R7), to owners and contacts of their office or, refused
        whole, of the other office too."""
        if own_only:
            picked = [c for c in picked if self.run(self._office_key_of(c)) == office]
            if not picked:
                return
        owner_id = ids.encode("User", self.offices[owner[0]].user(owner[1]).id) if owner else None
        self.send(
            (office, "admin"),
            "mutation($ids: [ID!]!, $o: ID) { assignContacts(contactIds: $ids, ownerId: $o) }",
            {"ids": picked, "o": owner_id},
        )

    @rule(viewer=st.sampled_from(VIEWERS), contact=contacts, archive=st.booleans())
    def archive(self, viewer: tuple[str, str], contact: str, archive: bool) -> None:
        name = "deleteContact" if archive else "restoreContact"
        self.send(
            viewer,
            f"mutation($id: ID!) {{ {name}(id: $id) {{ ...F }} }} {CONTACT_DOC}",
            {"id": contact},
        )

    # --- users: ownership follows CRM ids and deactivation (R6) -------------------------------

    @rule(
        office=st.sampled_from(["A", "B"]),
        agent=st.sampled_from(ROLES[1:]),
        crm_of=st.sampled_from(VIEWERS),
    )
    def take_crm_id(self, office: str, agent: str, crm_of: tuple[str, str]) -> None:
        """An admin gives an agent a CRM id, maybe one another office's agent has: only this
        office's contacts may follow it."""
        crm = self.offices[crm_of[0]].user(crm_of[1]).crm_agent_id
        if crm_of[0] == office:
            crm = f"{crm}-2"  # a CRM id is one user's in an office: take a fresh one
        self._update_user(office, agent, {"crmAgentId": crm})

    @rule(office=st.sampled_from(["A", "B"]), agent=st.sampled_from(ROLES[1:]), on=st.booleans())
    def set_active(self, office: str, agent: str, on: bool) -> None:
        self._update_user(office, agent, {"active": on})

    def _update_user(self, office: str, agent: str, patch: dict[str, Any]) -> None:
        user = self.offices[office].user(agent)
        self.send(
            (office, "admin"),
            "mutation($id: ID!, $p: UserPatch!) { updateUser(id: $id, input: $p) { ...U } }"
            f" {USER_FIELDS}",
            {"id": ids.encode("User", user.id), "p": patch},
        )

    # --- audiences and campaigns ---------------------------------------------------------------

    @rule(
        target=audiences,
        viewer=st.sampled_from(VIEWERS),
        account=st.sampled_from(["USER", "OFFICE"]),
        data=st.data(),
    )
    def create_audience(self, viewer: tuple[str, str], account: str, data: st.DataObject) -> Any:
        conditions = self._filter_values(data, own_office=viewer[0])
        name = f"Aud{token()}"
        self.offices[viewer[0]].marks.add(name)
        body = self.send(
            viewer,
            "mutation($i: AudienceInput!) { createAudience(input: $i) { ...A } }"
            f" {AUDIENCE_DOC}",
            {"i": {"name": name, "account": account, "filter": conditions}},
        )
        made = (body.get("data") or {}).get("createAudience")
        return made["id"] if made else multiple()

    @rule(viewer=st.sampled_from(VIEWERS), audience=audiences)
    def read_audience(self, viewer: tuple[str, str], audience: str) -> None:
        self.send(
            viewer,
            f"query($id: ID!) {{ audience(id: $id) {{ ...A }} }} {AUDIENCE_DOC}",
            {"id": audience},
        )

    @rule(viewer=st.sampled_from(VIEWERS), account=st.sampled_from([None, "USER", "OFFICE"]))
    def list_audiences(self, viewer: tuple[str, str], account: str | None) -> None:
        self.send(
            viewer,
            "query($a: SendAccount) { audiences(account: $a) { id name kind owner { ...U } size"
            " contacts(first: 3) { edges { node { ...C } } }"
            f" }} }} {USER_FIELDS} {LISTED_CONTACT}",
            {"a": account},
        )

    @rule(
        target=campaigns,
        viewer=st.sampled_from(VIEWERS),
        audience=audiences,
        account=st.sampled_from(["USER", "OFFICE"]),
    )
    def create_campaign(self, viewer: tuple[str, str], audience: str, account: str) -> Any:
        name = f"Camp{token()}"
        self.offices[viewer[0]].marks.add(name)
        body = self.send(
            viewer,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { ...K } }"
            f" {CAMPAIGN_DOC}",
            {
                "i": {
                    "name": name,
                    "subject": "Hello {{first_name}}",
                    "bodyHtml": "<p>Hello {{first_name}}</p>",
                    "audienceId": audience,
                    "account": account,
                }
            },
        )
        made = (body.get("data") or {}).get("createCampaign")
        return made["id"] if made else multiple()

    @rule(viewer=st.sampled_from(VIEWERS), campaign=campaigns)
    def read_campaign(self, viewer: tuple[str, str], campaign: str) -> None:
        self.send(
            viewer,
            f"query($id: ID!) {{ campaign(id: $id) {{ ...K }} }} {CAMPAIGN_DOC}",
            {"id": campaign},
        )

    @rule(viewer=st.sampled_from(VIEWERS))
    def list_campaigns(self, viewer: tuple[str, str]) -> None:
        self.send(
            viewer,
            "{ campaigns(first: 10) { totalCount edges { node { id name account sender { ...U }"
            f" audience {{ id name size }} }} }} }} }} {USER_FIELDS}",
        )

    # --- everything else an office shows -------------------------------------------------------

    @rule(viewer=st.sampled_from(VIEWERS))
    def read_reports(self, viewer: tuple[str, str]) -> None:
        self.send(
            viewer,
            "{ reports { statusBreakdown { status count } unassignedCount"
            " lastStatusUpdateByCompany(first: 10) { totalCount edges { node { company { id name }"
            " contactCount lastStatusUpdateAt } } }"
            " contactsWithoutStatus(first: 10) { edges { node { ...C } } }"
            " staleContacts(first: 10) { edges { node { ...C } } }"
            " atRiskContacts(days: 1, first: 10) { edges { node { ...C } } } } }"
            f" {USER_FIELDS} {LISTED_CONTACT}",
        )

    @rule(viewer=st.sampled_from(VIEWERS))
    def read_office(self, viewer: tuple[str, str]) -> None:
        self.send(
            viewer,
            "{ me { ...U } users { ...U contactCount } office { id name unassignedCount } }"
            f" {USER_FIELDS}",
        )

    @invariant()
    def offices_stay_apart(self) -> None:
        """Belt and braces beside the answers: no contact row links two offices."""
        self.run(self._no_cross_office_links())

    async def _no_cross_office_links(self) -> None:
        from api.core.database import fetch

        office_ids = [self.offices[k].office.id for k in ("A", "B")]
        crossed = await fetch(
            "SELECT c.id FROM contact c JOIN app_user u ON u.id = c.owner_id"
            " WHERE c.office_id IN ($1, $2) AND u.office_id <> c.office_id",
            *office_ids,
        )
        assert not crossed, crossed


# --- the invariants ------------------------------------------------------------------------


async def check_tenancy(
    viewer: Any,
    foreign_marks: set[str],
    body: dict[str, Any],
    context: str = "",
    handed_over: tuple[str, ...] = (),
) -> None:
    """R1–R3 for one answer to `viewer`, against the rows its ids name as they are now:
    nothing of another office (its rows by id, its names and emails by `foreign_marks`), no
    contact a plain agent does not own, PII of another user's contact only masked, a user's
    email only to that user and admins.

    `handed_over` is the path of a contact the agent has just created for a colleague (the
    CRM owner decides, R5): the answer shows it back to its writer once, masked as another's
    (R3), and R2 holds from the next request on."""
    from api.users.models import Role

    context = f"{context}\n--- answered ---\n{body}"
    for text in strings(body):
        leaked = next((mark for mark in foreign_marks if mark in text), None)
        assert leaked is None, f"another office's {leaked!r} leaked{context}"
    rows = await rows_of(body)
    for (kind, pk), row in rows.items():
        assert row["office_id"] == viewer.office_id, f"{kind}:{pk} of another office{context}"
    is_admin = viewer.role == Role.ADMIN
    forbidden = {
        tuple(e.get("path") or ())
        for e in body.get("errors") or []
        if e["extensions"]["code"] == "FORBIDDEN"
    }
    for path, contact in nodes_with_paths(body.get("data"), "Contact"):
        row = rows.get(kind_of(contact["id"]))  # type: ignore[arg-type]
        if row is None:
            continue
        owner = row["owner_id"]
        if not is_admin and not viewer.office_wide_access and path != handed_over:
            assert owner == viewer.id, f"an agent received another's contact{context}"
        if not is_admin and owner not in (None, viewer.id):
            for name in ("email", "phone"):
                if name in contact:
                    assert contact[name] is None, f"{name} not masked{context}"
                    assert (*path, name) in forbidden, f"{name} masked without FORBIDDEN{context}"
    if not is_admin:
        for _, user in nodes_with_paths(body.get("data"), "User"):
            if kind_of(user["id"]) != ("User", viewer.id) and "email" in user:
                assert user["email"] is None, f"another user's email shown{context}"


async def rows_of(body: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """The rows behind every global id an answer's data carries (office and owner), by
    (kind, pk); ids of kinds without an office column, or of rows gone, are left out. So are
    the ids an audience's `filter` shows back: its creator gave them, and another office's
    user there selects nothing, exactly as a missing one (R1)."""
    wanted: dict[str, set[int]] = {}
    for text in strings(body.get("data"), skip="filter"):
        found = kind_of(text)
        if found is not None:
            wanted.setdefault(found[0], set()).add(found[1])
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for kind, pks in wanted.items():
        if kind == "Office":
            rows.update({(kind, pk): {"office_id": pk, "owner_id": None} for pk in pks})
            continue
        model = model_named(kind)
        if model is None or "office_id" not in model._meta.fields_map:
            continue
        columns = ["id", "office_id"]
        if "owner_id" in model._meta.fields_map:
            columns.append("owner_id")
        for row in await model.filter(id__in=pks).values(*columns):
            rows[(kind, row["id"])] = {"owner_id": None, **row}
    return rows


def test_tenancy_holds_under_random_traffic(
    suite_loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient
) -> None:
    settings = hypothesis_settings(ci_examples=30, stateful_step_count=50 if long_run() else 30)
    run_state_machine_as_test(lambda: TenancyMachine(suite_loop, client), settings=settings)


async def test_the_invariants_catch_what_they_guard(world: Any) -> None:
    """Each invariant fails on an answer that breaks it: the machine's silence means something."""
    foreign = await world.contact(by=world.foreign_admin)
    owned = await world.contact(owner=world.agent)
    others = await world.contact(owner=world.other_agent)
    cid = ids.encode("Contact", others.id)
    masked = {"path": ["contact", "email"], "extensions": {"code": "FORBIDDEN"}}
    broken = [
        (world.admin, {"data": {"note": "hello Ln-secret"}}),
        (world.admin, {"data": {"contact": {"id": ids.encode("Contact", foreign.id)}}}),
        (world.agent, {"data": {"contacts": [{"id": cid}]}}),
        (world.office_wide, {"data": {"contact": {"id": cid, "email": "x@y.example"}}}),
        (world.office_wide, {"data": {"contact": {"id": cid, "email": None}}}),
        (world.agent, {"data": {"me": {"id": ids.encode("User", world.admin.id), "email": "a"}}}),
    ]
    for viewer, body in broken:
        with pytest.raises(AssertionError):
            await check_tenancy(viewer, {"Ln-secret"}, body)
    # Handed over to a colleague on creation: shown back once, but masked as another's.
    created = {"createContact": {"id": cid, "email": None}}
    with pytest.raises(AssertionError):
        await check_tenancy(world.agent, set(), {"data": created}, handed_over=("createContact",))
    masked_created = {**masked, "path": ["createContact", "email"]}
    answer = {"data": created, "errors": [masked_created]}
    await check_tenancy(world.agent, set(), answer, handed_over=("createContact",))
    fine = [
        (world.agent, {"data": {"contact": {"id": ids.encode("Contact", owned.id), "email": "e"}}}),
        (world.office_wide, {"data": {"contact": {"id": cid, "email": None}}, "errors": [masked]}),
        (world.admin, {"data": {"contact": {"id": cid, "email": "x@y.example"}}}),
    ]
    for viewer, body in fine:
        await check_tenancy(viewer, {"Ln-secret"}, body)
