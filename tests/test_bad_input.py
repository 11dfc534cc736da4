"""R20: bad input to every mutation answers one error with the right `extensions.code`
(BAD_USER_INPUT naming the offending field where the input is ours, NOT_FOUND for ids of
the wrong type, CONFLICT for duplicates), never an internal error, never a traceback or
SQL text, and never a partial write. Malformed cursors are BAD_USER_INPUT too."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.core import ids
from api.users import auth
from tests.conftest import PASSWORD, assert_clean, make_office, make_user, unique_email

# --- helpers -------------------------------------------------------------------------------


def expect_error(body: dict[str, Any], code: str, field: str | None = None) -> dict[str, Any]:
    assert_clean(body)
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    error = errors[0]
    assert error["extensions"]["code"] == code, error
    if field is not None:
        assert error["extensions"].get("field") == field, error
    return error


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    as_: Any = None,
) -> dict[str, Any]:
    """Like `gql`, but the body is encoded here so that any JSON a client can send (lone
    UTF-16 surrogates included, as `\\ud800` escapes) reaches the server."""
    headers = {"Content-Type": "application/json"}
    if as_ is not None:
        headers["Authorization"] = f"Bearer {auth.issue_token(as_)}"
    content = json.dumps({"query": query, "variables": variables or {}})
    response = await client.post("/graphql", content=content, headers=headers)
    assert response.status_code in (200, 400), response.text
    return response.json()


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode()


@dataclass
class Scene:
    office: Any
    admin: Any
    agent: Any
    other_agent: Any
    foreign_office: Any
    foreign_admin: Any
    contact: Any  # owned by `agent`, with an externalId
    foreign_contact: Any
    activity: Any

    def cid(self) -> str:
        return ids.encode("Contact", self.contact.id)


@pytest.fixture(scope="module")
async def scene() -> Scene:
    from api.contacts.models import ActivityKind
    from api.contacts.service import ContactFields, create_contact, log_activity

    office, foreign = await make_office(), await make_office()
    suffix = uuid.uuid4().hex[:6]
    admin = await make_user(office, "ADMIN")
    agent = await make_user(office, crm_agent_id=f"A-{suffix}")
    other = await make_user(office, crm_agent_id=f"B-{suffix}")
    foreign_admin = await make_user(foreign, "ADMIN")
    contact = await create_contact(
        admin,
        ContactFields(first_name="Pat", last_name="Owned", email=unique_email("pat")),
        external_id=f"EXT-{suffix}",
        crm_owner_id=agent.crm_agent_id,
    )
    foreign_contact = await create_contact(
        foreign_admin, ContactFields(first_name="Far", last_name="Away")
    )
    activity = await log_activity(admin, contact.id, ActivityKind.CALL)
    return Scene(
        office, admin, agent, other, foreign, foreign_admin, contact, foreign_contact, activity
    )


async def snapshot(s: Scene) -> dict[str, Any]:
    """Every row of both offices, as stored: a failed mutation must leave all of it as it was."""
    from api.contacts.models import Activity, Company, Contact, StatusChange
    from api.offices.models import Office
    from api.users.models import User

    office_ids = [s.office.id, s.foreign_office.id]
    out: dict[str, Any] = {
        "offices": await Office.filter(id__in=office_ids).order_by("id").values()
    }
    for name, model in (
        ("users", User),
        ("contacts", Contact),
        ("companies", Company),
        ("activities", Activity),
        ("status_changes", StatusChange),
    ):
        out[name] = await model.filter(office_id__in=office_ids).order_by("id").values()
    return out


# --- documents -----------------------------------------------------------------------------

LOGIN = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }"
CREATE_USER = "mutation($input: UserInput!) { createUser(input: $input) { id } }"
UPDATE_USER = "mutation($id: ID!, $input: UserPatch!) { updateUser(id: $id, input: $input) { id } }"
CREATE_CONTACT = "mutation($input: ContactInput!) { createContact(input: $input) { id } }"
UPDATE_CONTACT = (
    "mutation($id: ID!, $input: ContactPatch!) { updateContact(id: $id, input: $input) { id } }"
)
SET_STATUS = (
    "mutation($id: ID!, $status: ContactStatus!, $reason: String) "
    "{ setContactStatus(id: $id, status: $status, reason: $reason) { id } }"
)
ASSIGN = "mutation($ids: [ID!]!, $owner: ID) { assignContacts(contactIds: $ids, ownerId: $owner) }"
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { id } }"
RESTORE = "mutation($id: ID!) { restoreContact(id: $id) { id } }"
LOG = "mutation($input: ActivityInput!) { logActivity(input: $input) { id } }"
SETTINGS = "mutation($input: OfficeSettingsInput!) { updateOfficeSettings(input: $input) { id } }"

BAD = "BAD_USER_INPUT"
LONG_NAME = "N" * 201
SURROGATE = "Pat\ud800"  # a lone UTF-16 surrogate: valid JSON, not encodable as UTF-8
CONTROL = ["Pat\x00", "Pat\x1b[2J", "Pat\x7f", "Pat\x08"]
FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _label(value: str) -> str:
    """A readable test id for a bad text value."""
    if value == "":
        return "empty"
    if not value.strip():
        return "blank"
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return "surrogate"
    control = [ch for ch in value if ord(ch) < 32 or ord(ch) == 127]
    if control:
        return f"control-{ord(control[0]):02x}"
    if len(value) > 40:
        return f"{len(value)}-chars"
    return value


def labelled(values: list[str]) -> list[tuple[str, str]]:
    return [(_label(v), v) for v in values]


MALFORMED_IDS = ["not-an-id", "!!!", "", "x" * 65, b64("Contact:abc"), b64("no colon here")]


@dataclass
class Case:
    id: str
    doc: str
    variables: Callable[[Scene], dict[str, Any]]
    code: str
    field: str | None = None
    as_: str | None = "admin"  # attribute of Scene, or None for an anonymous caller


def new_user(**over: Any) -> dict[str, Any]:
    data = {
        "email": unique_email("new"),
        "name": "New Agent",
        "password": PASSWORD,
        "role": "AGENT",
    }
    data.update(over)
    return {"input": {k: v for k, v in data.items() if v is not ...}}


def new_contact(**over: Any) -> dict[str, Any]:
    data = {"firstName": "Ann", "lastName": "Lee", "email": unique_email("ann")}
    data.update(over)
    return {"input": {k: v for k, v in data.items() if v is not ...}}


def login_cases() -> list[Case]:
    def creds(email: Any = None, password: Any = PASSWORD) -> Callable[[Scene], dict[str, Any]]:
        return lambda s: {
            "email": email if email is not None else unique_email("nobody"),
            "password": password,
        }

    out = [
        Case(
            "login-email-null",
            LOGIN,
            lambda s: {"email": None, "password": PASSWORD},
            BAD,
            as_=None,
        ),
        Case("login-password-int", LOGIN, creds(password=12345678901), BAD, as_=None),
        Case("login-email-list", LOGIN, creds(email=["a@b.example"]), BAD, as_=None),
        Case(
            "login-inline-int",
            'mutation { login(email: 5, password: "x") { token } }',
            lambda s: {},
            BAD,
            as_=None,
        ),
    ]
    # Well-typed but wrong credentials, however malformed, are just wrong credentials.
    for name, email, password in [
        ("not-an-email", f"not-an-email-{uuid.uuid4().hex[:6]}", PASSWORD),
        ("over-long-email", "e" * 5000 + unique_email(""), PASSWORD),
        ("nul-in-email", f"nul\x00{uuid.uuid4().hex[:6]}@office.example", PASSWORD),
        ("control-in-email", f"esc\x1b{uuid.uuid4().hex[:6]}@office.example", PASSWORD),
        ("surrogate-in-email", f"sur\ud800{uuid.uuid4().hex[:6]}@office.example", PASSWORD),
        ("surrogate-in-password", None, "password\ud800x"),
        ("nul-in-password", None, "password\x00x"),
        ("huge-password", None, "p" * 100_000),
    ]:
        out.append(
            Case(f"login-{name}", LOGIN, creds(email, password), "UNAUTHENTICATED", None, None)
        )
    return out


def create_user_cases() -> list[Case]:
    out = [
        Case(f"createUser-email-{i}", CREATE_USER, lambda s, v=v: new_user(email=v), BAD, "email")
        for i, v in labelled(
            [
                "not-an-email",
                "a@b",
                "two words@office.example",
                "",
                "   ",
                "x" * 250 + "@office.example",
                "nul\x00@office.example",
                "sur\ud800@office.example",
            ]
        )
    ]
    out += [
        Case(f"createUser-name-{i}", CREATE_USER, lambda s, v=v: new_user(name=v), BAD, "name")
        for i, v in labelled(["", "   ", LONG_NAME, *CONTROL, SURROGATE])
    ]
    out += [
        Case(
            f"createUser-password-{i}",
            CREATE_USER,
            lambda s, v=v: new_user(password=v),
            BAD,
            "password",
        )
        for i, v in labelled(["short", "p" * 257, "long enough\ud800 password"])
    ]
    out += [
        Case(
            f"createUser-crmAgentId-{i}",
            CREATE_USER,
            lambda s, v=v: new_user(crmAgentId=v),
            BAD,
            "crmAgentId",
        )
        for i, v in labelled(["C" * 101, "C-\x00", SURROGATE])
    ]
    out += [
        Case("createUser-role-unknown", CREATE_USER, lambda s: new_user(role="OWNER"), BAD),
        Case("createUser-role-int", CREATE_USER, lambda s: new_user(role=1), BAD),
        Case("createUser-flag-string", CREATE_USER, lambda s: new_user(canDelete="yes"), BAD),
        Case("createUser-name-int", CREATE_USER, lambda s: new_user(name=42), BAD),
        Case("createUser-name-missing", CREATE_USER, lambda s: new_user(name=...), BAD),
        Case("createUser-input-list", CREATE_USER, lambda s: {"input": []}, BAD),
        Case(
            "createUser-role-unknown-inline",
            'mutation { createUser(input: {email: "i@office.example", name: "I", '
            'password: "long enough pw", role: OWNER}) { id } }',
            lambda s: {},
            BAD,
        ),
        Case(
            "createUser-email-duplicate",
            CREATE_USER,
            lambda s: new_user(email=s.agent.email),
            "CONFLICT",
            "email",
        ),
        Case(
            "createUser-email-duplicate-other-case",
            CREATE_USER,
            lambda s: new_user(email=f"  {s.agent.email.upper()} "),
            "CONFLICT",
            "email",
        ),
        Case(
            "createUser-email-duplicate-other-office",
            CREATE_USER,
            lambda s: new_user(email=s.foreign_admin.email),
            "CONFLICT",
            "email",
        ),
        Case(
            "createUser-crmAgentId-duplicate",
            CREATE_USER,
            lambda s: new_user(crmAgentId=s.agent.crm_agent_id),
            "CONFLICT",
            "crmAgentId",
        ),
    ]
    return out


def update_user_cases() -> list[Case]:
    def patch(**input: Any) -> Callable[[Scene], dict[str, Any]]:
        return lambda s: {"id": ids.encode("User", s.agent.id), "input": input}

    out = [
        Case(
            f"updateUser-id-malformed-{i}",
            UPDATE_USER,
            lambda s, v=v: {"id": v, "input": {"name": "X"}},
            BAD,
            "id",
        )
        for i, v in labelled(MALFORMED_IDS)
    ]
    out += [
        Case(
            "updateUser-id-of-a-contact",
            UPDATE_USER,
            lambda s: {"id": s.cid(), "input": {"name": "X"}},
            "NOT_FOUND",
        ),
        Case(
            "updateUser-id-other-office",
            UPDATE_USER,
            lambda s: {"id": ids.encode("User", s.foreign_admin.id), "input": {"name": "X"}},
            "NOT_FOUND",
        ),
        Case(
            "updateUser-id-huge",
            UPDATE_USER,
            lambda s: {"id": b64("User:99999999999999999999"), "input": {"name": "X"}},
            "NOT_FOUND",
        ),
    ]
    out += [
        Case(f"updateUser-name-{i}", UPDATE_USER, patch(name=v), BAD, "name")
        for i, v in labelled(["", "   ", LONG_NAME, *CONTROL, SURROGATE])
    ]
    out += [
        Case(f"updateUser-crmAgentId-{i}", UPDATE_USER, patch(crmAgentId=v), BAD, "crmAgentId")
        for i, v in labelled(["C" * 101, "C-\x00", SURROGATE])
    ]
    out += [
        Case("updateUser-role-unknown", UPDATE_USER, patch(role="OWNER"), BAD),
        Case("updateUser-active-string", UPDATE_USER, patch(active="no"), BAD),
        Case("updateUser-name-int", UPDATE_USER, patch(name=5), BAD),
        Case("updateUser-unknown-input-field", UPDATE_USER, patch(email="x@y.example"), BAD),
        Case(
            "updateUser-crmAgentId-duplicate",
            UPDATE_USER,
            lambda s: {
                "id": ids.encode("User", s.agent.id),
                "input": {"name": "Renamed", "crmAgentId": s.other_agent.crm_agent_id},
            },
            "CONFLICT",
            "crmAgentId",
        ),
        Case(
            "updateUser-name-ok-crmAgentId-bad",
            UPDATE_USER,
            patch(name="Renamed", canExport=True, crmAgentId="C-\x00"),
            BAD,
            "crmAgentId",
        ),
        Case(
            "updateUser-role-unknown-inline",
            "mutation($id: ID!) { updateUser(id: $id, input: {role: OWNER}) { id } }",
            lambda s: {"id": ids.encode("User", s.agent.id)},
            BAD,
        ),
    ]
    return out


def create_contact_cases() -> list[Case]:
    out: list[Case] = []
    for field in ("firstName", "lastName"):
        out += [
            Case(
                f"createContact-{field}-{i}",
                CREATE_CONTACT,
                lambda s, v=v, f=field: new_contact(**{f: v}),
                BAD,
                field,
            )
            for i, v in labelled(["", "   ", LONG_NAME, *CONTROL, SURROGATE])
        ]
    out += [
        Case(
            f"createContact-email-{i}",
            CREATE_CONTACT,
            lambda s, v=v: new_contact(email=v),
            BAD,
            "email",
        )
        for i, v in labelled(
            ["nope", "a@", "@office.example", "x" * 250 + "@office.example", "n\x00@o.example"]
        )
    ]
    out += [
        Case(
            f"createContact-phone-{i}",
            CREATE_CONTACT,
            lambda s, v=v: new_contact(phone=v),
            BAD,
            "phone",
        )
        for i, v in labelled(
            ["call me", "12", "+44 20 7946 0000; DROP TABLE contact", "1" * 41, "+44\x00 20"]
        )
    ]
    out += [
        Case(
            "createContact-companyName-long",
            CREATE_CONTACT,
            lambda s: new_contact(companyName=LONG_NAME),
            BAD,
            "companyName",
        ),
        Case(
            "createContact-companyName-control",
            CREATE_CONTACT,
            lambda s: new_contact(companyName="Acme\x00"),
            BAD,
            "companyName",
        ),
        Case(
            "createContact-externalId-long",
            CREATE_CONTACT,
            lambda s: new_contact(externalId="E" * 101),
            BAD,
            "externalId",
        ),
        Case(
            "createContact-crmOwnerId-long",
            CREATE_CONTACT,
            lambda s: new_contact(crmOwnerId="C" * 101),
            BAD,
            "crmOwnerId",
        ),
        Case(
            "createContact-crmOwnerId-control",
            CREATE_CONTACT,
            lambda s: new_contact(crmOwnerId="C\x00"),
            BAD,
            "crmOwnerId",
        ),
        Case(
            "createContact-status-unknown",
            CREATE_CONTACT,
            lambda s: new_contact(status="DORMANT"),
            BAD,
        ),
        Case(
            "createContact-status-lowercase",
            CREATE_CONTACT,
            lambda s: new_contact(status="active"),
            BAD,
        ),
        Case(
            "createContact-firstName-int", CREATE_CONTACT, lambda s: new_contact(firstName=42), BAD
        ),
        Case(
            "createContact-lastName-missing",
            CREATE_CONTACT,
            lambda s: new_contact(lastName=...),
            BAD,
        ),
        Case("createContact-input-null", CREATE_CONTACT, lambda s: {"input": None}, BAD),
        Case(
            "createContact-status-unknown-inline",
            'mutation { createContact(input: {firstName: "A", lastName: "B", status: DORMANT}) { id } }',
            lambda s: {},
            BAD,
        ),
        Case(
            "createContact-externalId-duplicate",
            CREATE_CONTACT,
            lambda s: new_contact(
                externalId=s.contact.external_id, companyName=f"New {uuid.uuid4()}"
            ),
            "CONFLICT",
            "externalId",
        ),
        Case(
            "createContact-externalId-duplicate-padded",
            CREATE_CONTACT,
            lambda s: new_contact(externalId=f"  {s.contact.external_id} "),
            "CONFLICT",
            "externalId",
        ),
        Case(
            "createContact-new-company-bad-phone",
            CREATE_CONTACT,
            lambda s: new_contact(companyName=f"New {uuid.uuid4()}", phone="call me"),
            BAD,
            "phone",
        ),
    ]
    return out


def update_contact_cases() -> list[Case]:
    def patch(**input: Any) -> Callable[[Scene], dict[str, Any]]:
        return lambda s: {"id": s.cid(), "input": input}

    out = [
        Case(
            f"updateContact-id-malformed-{i}",
            UPDATE_CONTACT,
            lambda s, v=v: {"id": v, "input": {"firstName": "X"}},
            BAD,
            "id",
        )
        for i, v in labelled(MALFORMED_IDS)
    ]
    out += [
        Case(
            f"updateContact-id-{name}",
            UPDATE_CONTACT,
            lambda s, make=make: {"id": make(s), "input": {"firstName": "X"}},
            "NOT_FOUND",
        )
        for name, make in [
            ("of-a-user", lambda s: ids.encode("User", s.agent.id)),
            ("of-an-activity", lambda s: ids.encode("Activity", s.activity.id)),
            ("other-office", lambda s: ids.encode("Contact", s.foreign_contact.id)),
            ("zero", lambda s: ids.encode("Contact", 0)),
            ("huge", lambda s: b64("Contact:99999999999999999999")),
        ]
    ]
    for field in ("firstName", "lastName"):
        out += [
            Case(f"updateContact-{field}-{i}", UPDATE_CONTACT, patch(**{field: v}), BAD, field)
            for i, v in labelled(["", "   ", LONG_NAME, "Pat\x00", SURROGATE])
        ]
    out += [
        Case("updateContact-email", UPDATE_CONTACT, patch(email="nope"), BAD, "email"),
        Case("updateContact-phone", UPDATE_CONTACT, patch(phone="call me"), BAD, "phone"),
        Case(
            "updateContact-companyName",
            UPDATE_CONTACT,
            patch(companyName=LONG_NAME),
            BAD,
            "companyName",
        ),
        Case("updateContact-firstName-list", UPDATE_CONTACT, patch(firstName=["a"]), BAD),
        Case("updateContact-status-not-patchable", UPDATE_CONTACT, patch(status="ACTIVE"), BAD),
        Case(
            "updateContact-good-name-bad-email",
            UPDATE_CONTACT,
            patch(firstName="Changed", companyName=f"New {uuid.uuid4()}", email="nope"),
            BAD,
            "email",
        ),
    ]
    return out


def set_status_cases() -> list[Case]:
    def with_(**over: Any) -> Callable[[Scene], dict[str, Any]]:
        return lambda s: {"id": s.cid(), "status": "INACTIVE", **over}

    out = [
        Case(
            f"setContactStatus-id-malformed-{i}",
            SET_STATUS,
            lambda s, v=v: {"id": v, "status": "ACTIVE"},
            BAD,
            "id",
        )
        for i, v in labelled(MALFORMED_IDS)
    ]
    out += [
        Case(
            "setContactStatus-id-of-a-user",
            SET_STATUS,
            lambda s: {"id": ids.encode("User", s.agent.id), "status": "ACTIVE"},
            "NOT_FOUND",
        ),
        Case("setContactStatus-status-unknown", SET_STATUS, with_(status="DORMANT"), BAD),
        Case("setContactStatus-status-null", SET_STATUS, with_(status=None), BAD),
        Case("setContactStatus-status-int", SET_STATUS, with_(status=1), BAD),
        Case(
            "setContactStatus-status-unknown-inline",
            "mutation($id: ID!) { setContactStatus(id: $id, status: DORMANT) { id } }",
            lambda s: {"id": s.cid()},
            BAD,
        ),
        Case(
            "setContactStatus-status-string-inline",
            'mutation($id: ID!) { setContactStatus(id: $id, status: "ACTIVE") { id } }',
            lambda s: {"id": s.cid()},
            BAD,
        ),
        Case("setContactStatus-reason-long", SET_STATUS, with_(reason="r" * 501), BAD, "reason"),
        Case("setContactStatus-reason-control", SET_STATUS, with_(reason="r\x00"), BAD, "reason"),
        Case(
            "setContactStatus-reason-surrogate", SET_STATUS, with_(reason=SURROGATE), BAD, "reason"
        ),
        Case("setContactStatus-reason-int", SET_STATUS, with_(reason=5), BAD),
    ]
    return out


def assign_cases() -> list[Case]:
    def agent_id(s: Scene) -> str:
        return ids.encode("User", s.other_agent.id)

    out = [
        Case(
            f"assignContacts-contactIds-malformed-{i}",
            ASSIGN,
            lambda s, v=v: {"ids": [s.cid(), v], "owner": agent_id(s)},
            BAD,
            "contactIds",
        )
        for i, v in labelled(MALFORMED_IDS)
    ]
    out += [
        Case(
            "assignContacts-contactIds-a-user",
            ASSIGN,
            lambda s: {"ids": [s.cid(), ids.encode("User", s.agent.id)], "owner": agent_id(s)},
            "NOT_FOUND",
        ),
        Case(
            "assignContacts-contactIds-other-office",
            ASSIGN,
            lambda s: {
                "ids": [s.cid(), ids.encode("Contact", s.foreign_contact.id)],
                "owner": agent_id(s),
            },
            "NOT_FOUND",
        ),
        Case(
            "assignContacts-ownerId-malformed",
            ASSIGN,
            lambda s: {"ids": [s.cid()], "owner": "not-an-id"},
            BAD,
            "ownerId",
        ),
        Case(
            "assignContacts-ownerId-a-contact",
            ASSIGN,
            lambda s: {"ids": [s.cid()], "owner": s.cid()},
            "NOT_FOUND",
        ),
        Case(
            "assignContacts-ownerId-other-office",
            ASSIGN,
            lambda s: {"ids": [s.cid()], "owner": ids.encode("User", s.foreign_admin.id)},
            "NOT_FOUND",
        ),
        Case(
            "assignContacts-too-many",
            ASSIGN,
            lambda s: {
                "ids": [ids.encode("Contact", n) for n in range(1, 10_002)],
                "owner": agent_id(s),
            },
            BAD,
            "contactIds",
        ),
        Case("assignContacts-contactIds-null", ASSIGN, lambda s: {"ids": None}, BAD),
        Case("assignContacts-contactIds-object", ASSIGN, lambda s: {"ids": {"a": 1}}, BAD),
        Case("assignContacts-contactIds-null-item", ASSIGN, lambda s: {"ids": [None]}, BAD),
    ]
    return out


def archive_cases() -> list[Case]:
    out: list[Case] = []
    for name, doc in (("deleteContact", DELETE), ("restoreContact", RESTORE)):
        out += [
            Case(f"{name}-id-malformed-{i}", doc, lambda s, v=v: {"id": v}, BAD, "id")
            for i, v in labelled(MALFORMED_IDS)
        ]
        out += [
            Case(f"{name}-id-{what}", doc, lambda s, make=make: {"id": make(s)}, "NOT_FOUND")
            for what, make in [
                ("of-a-user", lambda s: ids.encode("User", s.agent.id)),
                ("of-an-activity", lambda s: ids.encode("Activity", s.activity.id)),
                ("other-office", lambda s: ids.encode("Contact", s.foreign_contact.id)),
                ("negative", lambda s: b64("Contact:-1")),
                ("huge", lambda s: b64("Contact:99999999999999999999")),
            ]
        ]
        out += [
            Case(f"{name}-id-object", doc, lambda s: {"id": {"id": 1}}, BAD),
            Case(f"{name}-id-null", doc, lambda s: {"id": None}, BAD),
        ]
    return out


def log_activity_cases() -> list[Case]:
    def act(**over: Any) -> Callable[[Scene], dict[str, Any]]:
        return lambda s: {"input": {"contactId": s.cid(), "kind": "CALL", **over}}

    out = [
        Case(
            f"logActivity-contactId-malformed-{i}",
            LOG,
            lambda s, v=v: {"input": {"contactId": v, "kind": "CALL"}},
            BAD,
            "contactId",
        )
        for i, v in labelled(MALFORMED_IDS)
    ]
    out += [
        Case(
            "logActivity-contactId-a-user",
            LOG,
            lambda s: {"input": {"contactId": ids.encode("User", s.agent.id), "kind": "CALL"}},
            "NOT_FOUND",
        ),
        Case(
            "logActivity-contactId-other-office",
            LOG,
            lambda s: {
                "input": {"contactId": ids.encode("Contact", s.foreign_contact.id), "kind": "CALL"}
            },
            "NOT_FOUND",
        ),
        Case("logActivity-kind-unknown", LOG, act(kind="SMOKE_SIGNAL"), BAD),
        Case(
            "logActivity-kind-unknown-inline",
            "mutation($id: ID!) { logActivity(input: {contactId: $id, kind: SMOKE_SIGNAL}) { id } }",
            lambda s: {"id": s.cid()},
            BAD,
        ),
        Case("logActivity-at-future", LOG, act(at=FUTURE, kind="EMAIL_REPLIED"), BAD, "at"),
        Case("logActivity-at-no-offset", LOG, act(at="2024-01-01T10:00:00"), BAD, "at"),
        Case("logActivity-at-ancient", LOG, act(at="1899-12-31T00:00:00+00:00"), BAD, "at"),
        Case("logActivity-at-year-one", LOG, act(at="0001-01-01T00:00:00+14:00"), BAD, "at"),
        Case("logActivity-at-far-future", LOG, act(at="9999-12-31T23:59:59-14:00"), BAD, "at"),
        Case("logActivity-at-not-a-date", LOG, act(at="yesterday"), BAD),
        Case("logActivity-at-int", LOG, act(at=1_700_000_000), BAD),
        Case("logActivity-note-long", LOG, act(note="n" * 5001), BAD, "note"),
        Case("logActivity-note-control", LOG, act(note="n\x00"), BAD, "note"),
        Case("logActivity-note-surrogate", LOG, act(note=SURROGATE), BAD, "note"),
        Case("logActivity-input-string", LOG, lambda s: {"input": "CALL"}, BAD),
    ]
    return out


def settings_cases() -> list[Case]:
    def settings(**input: Any) -> Callable[[Scene], dict[str, Any]]:
        return lambda s: {"input": input}

    out = [
        Case(
            f"updateOfficeSettings-{field}-{value}",
            SETTINGS,
            settings(**{field: value}),
            BAD,
            field,
        )
        for field, value in [
            ("riskDays", 0),
            ("riskDays", -1),
            ("riskDays", 100_000),
            ("staleDays", 0),
            ("staleDays", 100_000),
            ("autoInactivateDays", -1),
            ("autoInactivateDays", 100_000),
        ]
    ]
    out += [
        Case(f"updateOfficeSettings-timezone-{i}", SETTINGS, settings(timezone=v), BAD, "timezone")
        for i, v in labelled(
            [
                "Mars/Olympus_Mons",
                "",
                "Europe/London\x00",
                "../../etc/passwd",
                "T" * 10_000,
                "europe/london",
                SURROGATE,
            ]
        )
    ]
    out += [
        Case("updateOfficeSettings-riskDays-string", SETTINGS, settings(riskDays="30"), BAD),
        Case("updateOfficeSettings-riskDays-float", SETTINGS, settings(riskDays=30.5), BAD),
        Case("updateOfficeSettings-riskDays-beyond-int32", SETTINGS, settings(riskDays=2**40), BAD),
        Case("updateOfficeSettings-riskDays-bool", SETTINGS, settings(riskDays=True), BAD),
        Case(
            "updateOfficeSettings-good-riskDays-bad-timezone",
            SETTINGS,
            settings(riskDays=33, staleDays=44, timezone="Nowhere/Town"),
            BAD,
            "timezone",
        ),
        Case(
            "updateOfficeSettings-good-timezone-bad-staleDays",
            SETTINGS,
            settings(timezone="Asia/Tokyo", staleDays=0),
            BAD,
            "staleDays",
        ),
    ]
    return out


CASES = [
    *login_cases(),
    *create_user_cases(),
    *update_user_cases(),
    *create_contact_cases(),
    *update_contact_cases(),
    *set_status_cases(),
    *assign_cases(),
    *archive_cases(),
    *log_activity_cases(),
    *settings_cases(),
]


def test_every_mutation_has_bad_input_cases():
    """The table covers every mutation the brief of R20 names."""
    covered = {case.id.split("-")[0] for case in CASES}
    assert {
        "login",
        "createUser",
        "updateUser",
        "createContact",
        "updateContact",
        "setContactStatus",
        "assignContacts",
        "deleteContact",
        "restoreContact",
        "logActivity",
        "updateOfficeSettings",
    } <= covered


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_refused_cleanly_and_writes_nothing(client, scene, case):
    """R20: one error with the right code (and field), nothing internal, nothing written."""
    before = await snapshot(scene)
    caller = getattr(scene, case.as_) if case.as_ else None
    body = await post(client, case.doc, case.variables(scene), as_=caller)
    expect_error(body, case.code, case.field)
    assert not body.get("data"), body
    assert await snapshot(scene) == before


# --- cursors -------------------------------------------------------------------------------

CONTACTS_AFTER = "query($after: String) { contacts(first: 5, after: $after) { edges { cursor } } }"
ACTIVITIES_AFTER = (
    "query($id: ID!, $after: String) "
    "{ contact(id: $id) { activities(first: 5, after: $after) { edges { cursor } } } }"
)
NOT_CURSORS = [
    "not a cursor",
    "",
    "!!!",
    "ü",
    "x" * 10_000,
    b64(b"\xff\xfe\xfd"),
    b64("{}"),
    b64("[]"),
    b64("null"),
    b64('"text"'),
    b64("[1, 2, 3]"),
]


def _cursor_id(cursor: str) -> str:
    """A readable test id: what the cursor carries."""
    try:
        shown = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        shown = cursor
    shown = shown if shown.isprintable() and shown else repr(cursor)
    return shown[:40]


BAD_CONTACT_CURSORS = [
    *NOT_CURSORS,
    b64('["x"]'),
    b64("[true]"),
    b64("[1.5]"),
    b64("[1e400]"),
    b64("[99999999999999999999999]"),
]
BAD_ACTIVITY_CURSORS = [
    *NOT_CURSORS,
    b64("[5]"),
    b64("[null, 1]"),
    b64('["2024-13-45T00:00:00+00:00", 1]'),
    b64('["2024-01-01T00:00:00+00:00", "x"]'),
    b64('["2024-01-01T00:00:00+00:00", 1e30]'),
    b64('["2024-01-01T00:00:00+00:00", 99999999999999999999999]'),
    b64('[["2024-01-01"], 1]'),
]


@pytest.mark.parametrize("cursor", BAD_CONTACT_CURSORS, ids=_cursor_id)
async def test_malformed_contacts_cursor(client, scene, cursor):
    """R20: a cursor that is not one of ours is BAD_USER_INPUT on `after`."""
    body = await post(client, CONTACTS_AFTER, {"after": cursor}, as_=scene.admin)
    expect_error(body, BAD, "after")


@pytest.mark.parametrize("cursor", BAD_ACTIVITY_CURSORS, ids=_cursor_id)
async def test_malformed_activities_cursor(client, scene, cursor):
    """R20: the same for a contact's activities."""
    body = await post(
        client, ACTIVITIES_AFTER, {"id": scene.cid(), "after": cursor}, as_=scene.admin
    )
    expect_error(body, BAD, "after")


async def test_real_cursors_still_page(client, scene):
    """The cursors the API hands out are accepted (the refusals above are about the input)."""
    page = await post(client, CONTACTS_AFTER, {"after": None}, as_=scene.admin)
    assert_clean(page)
    cursor = page["data"]["contacts"]["edges"][0]["cursor"]
    body = await post(client, CONTACTS_AFTER, {"after": cursor}, as_=scene.admin)
    assert not body.get("errors"), body
    acts = await post(client, ACTIVITIES_AFTER, {"id": scene.cid(), "after": None}, as_=scene.admin)
    cursor = acts["data"]["contact"]["activities"]["edges"][0]["cursor"]
    body = await post(
        client, ACTIVITIES_AFTER, {"id": scene.cid(), "after": cursor}, as_=scene.admin
    )
    assert not body.get("errors"), body
    assert body["data"]["contact"]["activities"]["edges"] == []


# --- filters -------------------------------------------------------------------------------

CONTACTS_FILTER = "query($f: ContactFilter) { contacts(first: 5, filter: $f) { totalCount } }"


@pytest.mark.parametrize(
    ("filter_", "code", "field"),
    [
        ({"ownerId": "not-an-id"}, BAD, "filter.ownerId"),
        ({"companyId": "not-an-id"}, BAD, "filter.companyId"),
        ({"search": "s" * 101}, BAD, "filter.search"),
        ({"lastActivityBefore": "2024-01-01T00:00:00"}, BAD, "filter.lastActivityBefore"),
        ({"statusUpdatedBefore": "2024-01-01T00:00:00"}, BAD, "filter.statusUpdatedBefore"),
        ({"lastActivityBefore": "soon"}, BAD, None),
        ({"status": ["DORMANT"]}, BAD, None),
        ({"atRisk": "yes"}, BAD, None),
    ],
)
async def test_malformed_contact_filter(client, scene, filter_, code, field):
    """R20: a bad filter names its field as the client spells it."""
    body = await post(client, CONTACTS_FILTER, {"f": filter_}, as_=scene.admin)
    expect_error(body, code, field)


@pytest.mark.parametrize("search", ["\x00", "a\x00b", SURROGATE, "%", "_", "\\", "' OR 1=1 --"])
async def test_odd_search_text_never_breaks(client, scene, search):
    """R20: any search text either finds what it matches or is refused as BAD_USER_INPUT."""
    body = await post(client, CONTACTS_FILTER, {"f": {"search": search}}, as_=scene.admin)
    assert_clean(body)
    if body.get("errors"):
        expect_error(body, BAD, "filter.search")
    else:
        assert body["data"]["contacts"]["totalCount"] == 0
