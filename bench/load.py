"""`make load`: concurrent SPA-like clients against the demo office on PostgreSQL, for a fixed
time, with zero errors as the target; writes its own section of BENCHMARKS.md.

One run: a fresh PostgreSQL database filled by `crm demo --contacts N` (the project's own
migrations and demo office), then VACUUM ANALYZE; a Redis database of its own, emptied; the
real server (`crm serve --workers W`) and a `crm worker` beside it, with a strong SECRET_KEY,
REDIS_URL and no SMTP_URL (campaign messages land in the Maildir under a temporary DATA_DIR).
Each client logs in as one of the demo's users (its own session, as a browser tab would) and
opens the app (who am I, the office, the first contacts page); then, for the timed window, each
client sends one request after another with no pause, drawn at random from a mix of what the
SPA's screens do: contact lists with filters and next pages, search, a contact's page with its
activities and status timeline, the reports dashboard, audiences with their sizes, campaigns
with their stats, and the writes: logActivity, setContactStatus, updateContact, createContact,
assignContacts (admins), createAudience / deleteAudience and, now and then, a small campaign
created and sent. After the window: the campaigns sent must reach SENT (the worker carried
them out), and the server's and worker's logs must hold no error.

Writes stay inside each client's own share of the office (its user's contacts, split between
that user's clients by id; the admin's clients work on unassigned contacts and assign some of
them to an agent no other client writes for), so no client meets another's change as a
business refusal: every GraphQL error is then an error, except the masked email of other
agents' contacts that an office-wide agent asks for (R3), which is counted apart.

    python -m bench.load [--clients 50] [--seconds 60] [--contacts 20000] [--web-workers 2]
                         [--db crm_load] [--redis-url redis://127.0.0.1:6379/13]
                         [--output BENCHMARKS.md] [--keep] [--seed N]

Exit status 0 when the run had no error, 1 otherwise. The database, the Redis database, the
processes and the temporary directory are removed at the end, on Ctrl-C too (--keep keeps
the database and the directory for a look afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from api.demo import COMPANIES, DEMO_DOMAIN, DEMO_PASSWORD, FIRST_NAMES, LAST_NAMES
from bench.data import create_database, drop_database
from bench.run import machine as describe_machine

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MARK_BEGIN = "<!-- load:begin (bench/load.py writes what lies between these marks) -->"
MARK_END = "<!-- load:end -->"
# How long the campaigns sent during the window may take to finish once it is over.
DRAIN_SECONDS = 180

# --------------------------------------------------------------------------- the documents

ROW = """fragment Row on Contact {
  id externalId firstName lastName email status statusUpdatedAt lastActivityAt atRiskSince
  unsubscribed owner { id name } company { id name }
}"""
LOGIN = """mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { token user { id name role officeWideAccess } }
}"""
APP_SHELL = """query AppShell {
  me { id name role officeWideAccess canExport canDelete email contactCount }
  office { id name timezone settings { riskDays staleDays autoInactivateDays } }
}"""
APP_SHELL_ADMIN = """query AppShellAdmin {
  me { id name role officeWideAccess canExport canDelete email contactCount }
  office { id name timezone unassignedCount settings { riskDays staleDays autoInactivateDays } }
  users { id name role active crmAgentId officeWideAccess email contactCount }
}"""
CONTACTS = (
    """query Contacts($filter: ContactFilter, $after: String) {
  contacts(filter: $filter, first: 50, after: $after) {
    totalCount edges { cursor node { ...Row } } pageInfo { hasNextPage endCursor }
  }
}
"""
    + ROW
)
CONTACT_DETAIL = """query ContactDetail($id: ID!) {
  contact(id: $id) {
    id externalId firstName lastName email phone crmOwnerId status statusUpdatedAt
    lastActivityAt atRiskSince unsubscribed archived unassigned
    company { id name } owner { id name }
    statusTimeline { status from to durationSeconds }
    statusHistory { source reason at from to actor { id name } }
    activities(first: 20) {
      totalCount edges { node { id kind at note user { id name } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
_REPORT_LISTS = """
    staleContacts(first: 10) { totalCount edges { node { ...Row } } }
    atRiskContacts(first: 10) { totalCount edges { node { ...Row } } }
    contactsWithoutStatus(first: 10) { totalCount edges { node { ...Row } } }
    lastStatusUpdateByCompany(first: 20) {
      totalCount edges { node { company { id name } lastStatusUpdateAt contactCount } }
    }"""
DASHBOARD = (
    "query Dashboard {\n  reports {\n    statusBreakdown { status count }"
    + _REPORT_LISTS
    + "\n  }\n}\n"
    + ROW
)
DASHBOARD_OFFICE = (
    "query DashboardOffice {\n  reports {\n    statusBreakdown { status count } unassignedCount"
    "\n    statusTrend(days: 30) { date active inactive noStatus atRisk }"
    + _REPORT_LISTS
    + "\n  }\n}\n"
    + ROW
)
AUDIENCES = """query Audiences($account: SendAccount) {
  audiences(account: $account) {
    id name kind account size owner { id name }
    filter { status noStatus unassigned search atRisk lastActivityBefore }
  }
}"""
AUDIENCE_DETAIL = (
    """query AudienceDetail($id: ID!) {
  audience(id: $id) {
    id name kind account size
    ownerBreakdown { count owner { id name } }
    contacts(first: 20) { totalCount edges { node { ...Row } } pageInfo { hasNextPage endCursor } }
  }
}
"""
    + ROW
)
CAMPAIGNS = """query Campaigns {
  campaigns(first: 20) {
    totalCount
    edges { node {
      id name subject state account senderMode createdAt scheduledAt startedAt finishedAt
      sender { id name } audience { id name }
      stats { recipients sent failed pending opened clicked bounced unsubscribed
              skippedInactive skippedUnsubscribed skippedNoEmail skippedDuplicate }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""
LOG_ACTIVITY = """mutation LogActivity($input: ActivityInput!) {
  logActivity(input: $input) { id kind at note user { id name } }
}"""
SET_STATUS = (
    """mutation SetContactStatus($id: ID!, $status: ContactStatus!, $reason: String) {
  setContactStatus(id: $id, status: $status, reason: $reason) { ...Row }
}
"""
    + ROW
)
UPDATE_CONTACT = (
    """mutation UpdateContact($id: ID!, $input: ContactPatch!) {
  updateContact(id: $id, input: $input) { ...Row phone }
}
"""
    + ROW
)
CREATE_CONTACT = (
    """mutation CreateContact($input: ContactInput!) {
  createContact(input: $input) { ...Row phone }
}
"""
    + ROW
)
ASSIGN = """mutation AssignContacts($ids: [ID!]!, $owner: ID) {
  assignContacts(contactIds: $ids, ownerId: $owner)
}"""
CREATE_AUDIENCE = """mutation CreateAudience($input: AudienceInput!) {
  createAudience(input: $input) { id name kind account size }
}"""
DELETE_AUDIENCE = """mutation DeleteAudience($id: ID!) { deleteAudience(id: $id) { id } }"""
CREATE_CAMPAIGN = """mutation CreateCampaign($input: CampaignInput!) {
  createCampaign(input: $input) { id name state account }
}"""
SEND_CAMPAIGN = """mutation SendCampaign($id: ID!) {
  sendCampaign(id: $id) { id state scheduledAt }
}"""
CAMPAIGN_STATE = """query CampaignState($id: ID!) {
  campaign(id: $id) { id state stats { recipients sent failed pending unknown } }
}"""
CAMPAIGN_BODY = (
    "<p>Dear {{ first_name }},</p><p>Three new listings near you this week.</p>"
    '<p><a href="https://example.com/listings">See them</a></p>'
    "<p>{{ agent_name }}, {{ office_name }}</p>"
)

# --------------------------------------------------------------------------- the mix

# Relative weights of what a client does next. Reads dominate, as in the SPA; the writes are
# those of its screens. A campaign is an audience, a draft and its send: three requests.
MIX: dict[str, float] = {
    "contacts": 20,
    "contactsNextPage": 8,
    "search": 12,
    "contactDetail": 15,
    "dashboard": 4,
    "audiences": 4,
    "audienceDetail": 2,
    "campaigns": 4,
    "appShell": 2,
    "logActivity": 8,
    "setContactStatus": 4,
    "updateContact": 4,
    "createContact": 3,
    "assignContacts": 3,  # admins only
    "createAudience": 1.5,  # an own audience; deleted again once a client has three
    "campaign": 0.4,
}
ACTIVITY_KINDS = ("CALL", "TASK", "MEETING", "DEAL", "EMAIL_SENT", "EMAIL_REPLIED", "EMAIL_OPENED")


@dataclass(frozen=True)
class DemoUser:
    local: str  # before @demo.example
    share: float  # of the clients
    admin: bool = False
    office_wide: bool = False


DEMO_USERS = (
    DemoUser("admin", 0.16, admin=True, office_wide=True),
    DemoUser("priya.shah", 0.16, office_wide=True),
    DemoUser("olivia.bennett", 0.20),
    DemoUser("james.whitaker", 0.20),
    DemoUser("tom.gallagher", 0.20),
    # No CRM id: owns only what the admins' clients assign to her during the run.
    DemoUser("sophie.turner", 0.08),
)
ASSIGNEE = "sophie.turner"


def client_users(count: int) -> list[DemoUser]:
    """`count` clients spread over the demo users by their shares (largest remainders)."""
    exact = [u.share * count for u in DEMO_USERS]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return [u for u, n in zip(DEMO_USERS, counts, strict=True) for _ in range(n)]


# --------------------------------------------------------------------------- recording


@dataclass
class ErrorSample:
    op: str
    kind: str
    detail: str
    request_id: str
    variables: dict[str, Any] | None
    user: str


@dataclass
class Recorder:
    """Latencies per operation and what went wrong, for requests of the timed window."""

    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)  # by operation
    error_kinds: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[ErrorSample]] = field(default_factory=lambda: defaultdict(list))
    expected: Counter[str] = field(default_factory=Counter)
    recording: bool = False

    def error(self, sample: ErrorSample) -> None:
        if not self.recording:
            return
        key = f"{sample.op}: {sample.kind}"
        self.errors[sample.op] += 1
        self.error_kinds[key] += 1
        if len(self.samples[key]) < 3:
            self.samples[key].append(sample)


class RequestFailed(Exception):
    """The answer was an error (already recorded); the client moves on."""


# --------------------------------------------------------------------------- a client


@dataclass
class Seen:
    """What a client last saw of a contact."""

    status: str | None
    owner_id: str | None


class Client:
    """One SPA session: one user, one keep-alive connection, one request at a time."""

    def __init__(
        self,
        index: int,
        user: DemoUser,
        slot: int,
        slots: int,
        base_url: str,
        recorder: Recorder,
        seed: int,
        run_tag: str,
    ) -> None:
        self.index = index
        self.user = user
        self.slot, self.slots = slot, slots
        self.recorder = recorder
        self.rng = random.Random(seed)
        self.run_tag = run_tag
        self.base_url = base_url
        self.http = self._connection()
        self.me_id = ""
        self.assignee_id: str | None = None
        self.seen: dict[str, Seen] = {}
        self.companies: list[str] = []
        self.next_page: tuple[dict[str, Any], str] | None = None
        self.audiences: list[str] = []  # this client's own, deletable
        self.office_audiences: list[str] = []
        self.campaigns_sent: list[str] = []
        self.created = 0
        self.requests = 0
        self.latencies: list[float] = []  # this client's, in the window
        self.local_port: int | None = None  # of its connection, once in the window

    def _connection(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def reconnect(self) -> None:
        """A new connection for the window: the server closes one idle for 5 s (uvicorn's
        keep-alive), and a request sent just as it does fails; a browser would retry it."""
        headers = self.http.headers
        await self.http.aclose()
        self.http = self._connection()
        self.http.headers.update(headers)

    @property
    def email(self) -> str:
        return f"{self.user.local}@{DEMO_DOMAIN}"

    # ------------------------------------------------------------------ transport

    async def call(
        self, op: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST one operation; times it, and records any error before raising RequestFailed."""
        request_id = f"load-{self.index}-{self.requests}"
        self.requests += 1
        body = orjson.dumps({"query": query, "variables": variables or {}})
        started = time.perf_counter()
        try:
            response = await self.http.post(
                "/graphql",
                content=body,
                headers={"content-type": "application/json", "x-request-id": request_id},
            )
            payload = response.json() if response.status_code == 200 else None
            if self.local_port is None and self.recorder.recording:
                stream = response.extensions.get("network_stream")
                address = stream.get_extra_info("client_addr") if stream else None
                self.local_port = address[1] if address else None
        except (httpx.HTTPError, ValueError) as exc:
            self._fail(
                op, f"transport: {type(exc).__name__}", str(exc)[:300], request_id, variables
            )
            raise RequestFailed from exc
        finally:
            elapsed = time.perf_counter() - started
            if self.recorder.recording:
                self.recorder.timings[op].append(elapsed)
                self.latencies.append(elapsed)
        if payload is None:
            detail = response.text[:300]
            self._fail(op, f"HTTP {response.status_code}", detail, request_id, variables)
            raise RequestFailed
        unexpected = [e for e in payload.get("errors") or () if not self._expected(op, e, payload)]
        if unexpected:
            first = unexpected[0]
            code = (first.get("extensions") or {}).get("code", "no code")
            path = ".".join(str(p) for p in first.get("path") or ())
            detail = f"{first.get('message')} (path {path or '-'}; {len(unexpected)} error(s))"
            self._fail(op, f"GraphQL {code}", detail, request_id, variables)
            raise RequestFailed
        if payload.get("data") is None:
            self._fail(op, "no data", str(payload)[:300], request_id, variables)
            raise RequestFailed
        return payload["data"]

    def _expected(self, op: str, error: dict[str, Any], payload: dict[str, Any]) -> bool:
        """R3: an office-wide agent (not an admin) reads other agents' contacts with their
        email and phone masked: null, and a FORBIDDEN error on that very field."""
        if self.user.admin or not self.user.office_wide:
            return False
        code = (error.get("extensions") or {}).get("code")
        path = error.get("path") or []
        if code != "FORBIDDEN" or not path or path[-1] not in ("email", "phone"):
            return False
        node: Any = payload.get("data")
        for step in path[:-1]:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                return False
        if not isinstance(node, dict) or node.get(path[-1]) is not None:
            return False
        owner = node.get("owner")
        if owner is None or owner.get("id") == self.me_id:
            return False  # unassigned or own contacts are never masked
        if self.recorder.recording:
            self.recorder.expected[f"{op}: {path[-1]} masked (R3)"] += 1
        return True

    def _fail(
        self, op: str, kind: str, detail: str, request_id: str, variables: dict[str, Any] | None
    ) -> None:
        self.recorder.error(ErrorSample(op, kind, detail, request_id, variables, self.user.local))

    def _check(self, op: str, holds: bool, detail: str) -> None:
        """An answer without errors must also say what was asked (a lost update would not)."""
        if not holds:
            self._fail(op, "wrong answer", detail, f"load-{self.index}-{self.requests - 1}", None)

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ state

    def _note_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._note(row)

    def _note(self, row: dict[str, Any]) -> None:
        owner = row.get("owner")
        self.seen[row["id"]] = Seen(row.get("status"), owner["id"] if owner else None)
        company = row.get("company")
        if company and company["id"] not in self.companies:
            self.companies.append(company["id"])
        if len(self.seen) > 2000:  # the oldest go: a browser tab does not hold the office
            for key in list(self.seen)[:500]:
                del self.seen[key]

    def _mine(self, contact_id: str, seen: Seen) -> bool:
        """Contacts this client writes: its user's own (the admins': unassigned ones), and
        among those the ones of its slot, so two clients never write the same contact."""
        wanted_owner = None if self.user.admin else self.me_id
        if seen.owner_id != wanted_owner:
            return False
        return zlib.crc32(contact_id.encode()) % self.slots == self.slot

    def _writable(self, *, allow_inactive: bool) -> list[str]:
        return [
            cid
            for cid, seen in self.seen.items()
            if self._mine(cid, seen) and (allow_inactive or seen.status != "INACTIVE")
        ]

    def _own_filter(self) -> dict[str, Any]:
        if self.user.admin:
            return {"unassigned": True}
        if self.user.office_wide:
            return {"ownerId": self.me_id}
        return {}

    # ------------------------------------------------------------------ start

    async def start(self) -> float:
        """Log in and open the app, before the window; returns how long the login took."""
        started = time.perf_counter()
        data = await self.call("login", LOGIN, {"email": self.email, "password": DEMO_PASSWORD})
        login_seconds = time.perf_counter() - started
        self.http.headers["authorization"] = f"Bearer {data['login']['token']}"
        self.me_id = data["login"]["user"]["id"]
        if self.user.admin:
            shell = await self.call("appShell", APP_SHELL_ADMIN)
            assignee = f"{ASSIGNEE}@{DEMO_DOMAIN}"
            self.assignee_id = next(
                (u["id"] for u in shell["users"] if u.get("email") == assignee), None
            )
        else:
            await self.call("appShell", APP_SHELL)
        await self._list({}, None, "contacts")
        await self._list(self._own_filter(), None, "contacts")
        return login_seconds

    # ------------------------------------------------------------------ the loop

    async def run_until(self, deadline: float) -> None:
        ops = [op for op in MIX if op != "assignContacts" or self.user.admin]
        weights = [MIX[op] for op in ops]
        while time.monotonic() < deadline:
            op = self.rng.choices(ops, weights)[0]
            with contextlib.suppress(RequestFailed):
                await getattr(self, "do_" + op)()

    async def _list(self, filter_: dict[str, Any], after: str | None, op: str) -> None:
        data = await self.call(op, CONTACTS, {"filter": filter_ or None, "after": after})
        page = data["contacts"]
        self._note_rows([e["node"] for e in page["edges"]])
        info = page["pageInfo"]
        self.next_page = (filter_, info["endCursor"]) if info["hasNextPage"] else None

    def _random_filter(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        choices: list[dict[str, Any]] = [
            {},
            {"status": ["ACTIVE"]},
            {"status": ["INACTIVE"]},
            {"noStatus": True},
            {"atRisk": True},
            {"lastActivityBefore": (now - timedelta(days=60)).isoformat()},
            {"statusUpdatedBefore": (now - timedelta(days=180)).isoformat()},
            self._own_filter(),
        ]
        if self.companies:
            choices.append({"companyId": self.rng.choice(self.companies)})
        if self.user.office_wide:
            choices += [{"unassigned": True}, {"status": ["ACTIVE"], "unassigned": True}]
        return self.rng.choice(choices)

    async def do_contacts(self) -> None:
        await self._list(self._random_filter(), None, "contacts")

    async def do_contactsNextPage(self) -> None:
        if self.next_page is None:
            return await self.do_contacts()
        filter_, cursor = self.next_page
        await self._list(filter_, cursor, "contactsNextPage")

    async def do_search(self) -> None:
        roll = self.rng.random()
        if roll < 0.5:
            term = self.rng.choice(LAST_NAMES).lower()
        elif roll < 0.7:
            term = self.rng.choice(FIRST_NAMES).lower()[:3]
        elif roll < 0.85:
            term = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}".lower()
        else:
            term = self.rng.choice(COMPANIES).split()[0].lower()
        await self._list({"search": term}, None, "search")

    async def do_contactDetail(self) -> None:
        if not self.seen:
            return await self.do_contacts()
        contact_id = self.rng.choice(list(self.seen))
        data = await self.call("contactDetail", CONTACT_DETAIL, {"id": contact_id})
        if data["contact"] is None:
            # Every contact a client saw stays visible to it (nobody else reassigns its own).
            self._fail("contactDetail", "contact gone", contact_id, "-", None)
            self.seen.pop(contact_id, None)
            return None
        self._note(data["contact"])
        return None

    async def do_dashboard(self) -> None:
        if self.user.office_wide:
            await self.call("dashboard", DASHBOARD_OFFICE)
        else:
            await self.call("dashboard", DASHBOARD)

    async def do_audiences(self) -> None:
        account = "OFFICE" if self.user.office_wide and self.rng.random() < 0.5 else "USER"
        data = await self.call("audiences", AUDIENCES, {"account": account})
        if account == "OFFICE":
            self.office_audiences = [a["id"] for a in data["audiences"]]

    async def do_audienceDetail(self) -> None:
        pool = self.audiences + self.office_audiences
        if not pool:
            return await self.do_audiences()
        await self.call("audienceDetail", AUDIENCE_DETAIL, {"id": self.rng.choice(pool)})
        return None

    async def do_campaigns(self) -> None:
        await self.call("campaigns", CAMPAIGNS)

    async def do_appShell(self) -> None:
        await self.call("appShell", APP_SHELL_ADMIN if self.user.admin else APP_SHELL)

    async def do_logActivity(self) -> None:
        # Activities may be logged on any contact the user sees, inactive ones too (R9);
        # engagement only ever moves a status to ACTIVE, which refuses no other client's write.
        if not self.seen:
            return await self.do_contacts()
        contact_id = self.rng.choice(list(self.seen))
        kind = self.rng.choice(ACTIVITY_KINDS)
        note = self.rng.choice((None, "Left a voicemail", "Asked about viewings", "Follow up"))
        await self.call(
            "logActivity",
            LOG_ACTIVITY,
            {"input": {"contactId": contact_id, "kind": kind, "note": note}},
        )
        if kind in ("EMAIL_REPLIED", "EMAIL_OPENED"):
            self.seen.pop(contact_id, None)  # its status may have moved (R10): read it again
        return None

    async def do_setContactStatus(self) -> None:
        candidates = self._writable(allow_inactive=True)
        if not candidates:
            return await self._list(self._own_filter(), None, "contacts")
        contact_id = self.rng.choice(candidates)
        current = self.seen[contact_id].status
        if current == "INACTIVE":
            status = "ACTIVE"  # R9: the owner or an admin reactivates
        elif current == "ACTIVE":
            status = "INACTIVE"
        else:
            status = "ACTIVE" if self.rng.random() < 0.7 else "INACTIVE"
        data = await self.call(
            "setContactStatus",
            SET_STATUS,
            {"id": contact_id, "status": status, "reason": "Load run"},
        )
        got = data["setContactStatus"]["status"]
        self._check("setContactStatus", got == status, f"asked {status}, answered {got}")
        self._note(data["setContactStatus"])
        return None

    async def do_updateContact(self) -> None:
        candidates = self._writable(allow_inactive=False)
        if not candidates:
            return await self._list(self._own_filter(), None, "contacts")
        contact_id = self.rng.choice(candidates)
        patch: dict[str, Any] = {"phone": f"+44 7700 {self.rng.randrange(900000):06d}"}
        if self.rng.random() < 0.3:
            patch["companyName"] = self.rng.choice(COMPANIES)
        data = await self.call("updateContact", UPDATE_CONTACT, {"id": contact_id, "input": patch})
        got = data["updateContact"]["phone"]
        self._check("updateContact", got == patch["phone"], f"set {patch['phone']}, got {got}")
        self._note(data["updateContact"])
        return None

    async def do_createContact(self) -> None:
        self.created += 1
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        slug = re.sub(r"[^a-z]", "", f"{first}.{last}".lower())
        contact: dict[str, Any] = {
            "firstName": first,
            "lastName": last,
            "email": f"{slug}.{self.index}.{self.created}@mail.example",
            "companyName": self.rng.choice((None, *COMPANIES[:10])),
            "externalId": f"LOAD-{self.run_tag}-{self.index}-{self.created}",
        }
        if self.user.office_wide and not self.user.admin:
            contact["crmOwnerId"] = "AG-103"  # the office-wide agent's own CRM id: hers
        if self.rng.random() < 0.5:
            contact["status"] = "ACTIVE"
        data = await self.call("createContact", CREATE_CONTACT, {"input": contact})
        created = data["createContact"]
        # R5: no CRM owner → the admin's contact is unassigned, an agent's is their own;
        # the office-wide agent's CRM id makes it hers.
        owner = (created.get("owner") or {}).get("id")
        wanted = None if self.user.admin else self.me_id
        self._check("createContact", owner == wanted, f"owner {owner}, expected {wanted}")
        self._note(created)

    async def do_assignContacts(self) -> None:
        candidates = self._writable(allow_inactive=False)
        if not candidates or self.assignee_id is None:
            return await self._list({"unassigned": True}, None, "contacts")
        chosen = self.rng.sample(candidates, min(len(candidates), self.rng.randint(1, 5)))
        data = await self.call("assignContacts", ASSIGN, {"ids": chosen, "owner": self.assignee_id})
        changed = data["assignContacts"]
        # They were unassigned, and only this client writes them: every one changes.
        self._check("assignContacts", changed == len(chosen), f"{changed} of {len(chosen)}")
        for contact_id in chosen:
            self.seen.pop(contact_id, None)  # now the assignee's client's to write
        return None

    def _audience_filter(self) -> dict[str, Any]:
        return self.rng.choice(
            (
                {"status": ["ACTIVE"], "search": self.rng.choice(LAST_NAMES).lower()},
                {"atRisk": True},
                {"noStatus": True},
                {"status": ["INACTIVE"], "lastActivityBefore": "2025-01-01T00:00:00+00:00"},
            )
        )

    async def do_createAudience(self) -> None:
        if len(self.audiences) >= 3:
            audience_id = self.audiences.pop(0)
            await self.call("deleteAudience", DELETE_AUDIENCE, {"id": audience_id})
            return
        account = "OFFICE" if self.user.office_wide and self.rng.random() < 0.5 else "USER"
        name = f"Load {self.run_tag} c{self.index} #{self.rng.randrange(10**9)}"
        data = await self.call(
            "createAudience",
            CREATE_AUDIENCE,
            {"input": {"name": name, "account": account, "filter": self._audience_filter()}},
        )
        self.audiences.append(data["createAudience"]["id"])

    async def do_campaign(self) -> None:
        """A small campaign: its own audience (a few dozen contacts), the draft, the send."""
        account = "OFFICE" if self.user.office_wide else "USER"
        last_name = self.rng.choice(LAST_NAMES).lower()
        spec: dict[str, Any] = {"search": last_name}
        if account == "OFFICE":
            spec["atRisk"] = True  # a few dozen of the office's contacts, not hundreds
        name = f"Load {self.run_tag} c{self.index} campaign #{self.rng.randrange(10**9)}"
        audience = await self.call(
            "createAudience",
            CREATE_AUDIENCE,
            {"input": {"name": name, "account": account, "filter": spec}},
        )
        draft = await self.call(
            "createCampaign",
            CREATE_CAMPAIGN,
            {
                "input": {
                    "name": name,
                    "subject": "New listings for {{ first_name }}",
                    "bodyHtml": CAMPAIGN_BODY,
                    "audienceId": audience["createAudience"]["id"],
                    "account": account,
                }
            },
        )
        campaign_id = draft["createCampaign"]["id"]
        await self.call("sendCampaign", SEND_CAMPAIGN, {"id": campaign_id})
        self.campaigns_sent.append(campaign_id)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The processes this run started, each the leader of its own process group (uvicorn's
    and Dramatiq's children included), stopped by their ids at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 (our own argv)
                argv,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own group: Ctrl-C reaches this script, which stops it in order.
                start_new_session=True,
            )
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        text = self.log(name).read_text(errors="replace") if self.log(name).exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _name, proc in reversed(self.started):
            _stop_group(proc)
        self.started.clear()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the leader alone: it stops its own children (uvicorn's and Dramatiq's
    supervisors forward the signal; a Dramatiq worker process that gets a second SIGTERM
    takes the hard-kill path and hangs). What is left of the group after that is killed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.2)
    if _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_healthy(url: str, proc: subprocess.Popen[bytes], procs: Processes, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.tail(name)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer /healthz within 120 s:\n{procs.tail(name)}")


def _proc_stat(pid: str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command (which may hold spaces and parentheses):
    [0] state, [2] process group, [11] user and [12] system CPU ticks."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def group_cpu_seconds(pgid: int) -> float:
    """CPU time used so far by the live processes of a process group (user and system)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        fields = _proc_stat(entry.name) if entry.name.isdigit() else None
        if fields and int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def pids_cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = _proc_stat(str(pid))
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def postgres_pids(conn: asyncpg.Connection) -> dict[str, list[int]]:
    """The server's processes on this machine: this database's sessions, and its own
    background ones (WAL writer, checkpointer, autovacuum...) that every database shares."""
    rows = await conn.fetch(
        "SELECT pid, datname = current_database() AND backend_type = 'client backend' AS ours,"
        " backend_type <> 'client backend' AS background"
        " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
    )
    return {
        "postgres": [r["pid"] for r in rows if r["ours"]],
        "postgres background": [r["pid"] for r in rows if r["background"]],
    }


def server_process_of_ports(pgid: int, server_port: int) -> dict[int, int]:
    """Which process of the server's group holds each client's connection: client port →
    pid (uvicorn's worker processes share one listening socket; the kernel decides)."""
    inode_to_client_port = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == server_port and fields[3] == "01":  # ESTABLISHED
                    inode_to_client_port[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    owners = {}
    for entry in Path("/proc").iterdir():
        fields = _proc_stat(entry.name) if entry.name.isdigit() else None
        if not fields or int(fields[2]) != pgid:
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        client_port = inode_to_client_port.get(target[8:-1])
                        if client_port is not None:
                            owners[client_port] = int(entry.name)
    return owners


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def log_problems(path: Path) -> list[str]:
    """Lines of a server or worker log at level ERROR or above, and tracebacks."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        compact = line.replace(" ", "")
        json_error = '"level":"ERROR"' in compact or '"level":"CRITICAL"' in compact
        text_error = " ERROR " in line or " CRITICAL " in line
        if json_error or text_error or line.startswith("Traceback"):
            found.append(line)
    return found


def lines_of_request(paths: list[Path], request_id: str) -> list[str]:
    return [
        line
        for path in paths
        if path.exists()
        for line in path.read_text(errors="replace").splitlines()
        if f'"{request_id}"' in line
    ]


# --------------------------------------------------------------------------- the database


async def data_facts(db_url: str) -> dict[str, Any]:
    """VACUUM ANALYZE after the load (a live office's statistics are current), then its sizes."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("VACUUM (ANALYZE)")
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM contact) AS contacts,
                      (SELECT count(*) FROM contact WHERE NOT archived) AS live,
                      (SELECT count(*) FROM contact WHERE owner_id IS NULL AND NOT archived)
                        AS unassigned,
                      (SELECT count(*) FROM activity) AS activities,
                      (SELECT count(*) FROM status_change) AS status_changes,
                      (SELECT count(*) FROM company) AS companies,
                      (SELECT count(*) FROM app_user WHERE active) AS users,
                      pg_database_size(current_database()) AS bytes,
                      current_setting('server_version') AS pg_version"""
        )
        return dict(row)
    finally:
        await conn.close()


async def write_counts(db_url: str, since: datetime) -> dict[str, int]:
    """Rows the run wrote, read from the database: the clients' claims checked."""
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM activity WHERE created_at >= $1) AS activities,
                      (SELECT count(*) FROM status_change WHERE at >= $1) AS status_changes,
                      (SELECT count(*) FROM contact WHERE external_id LIKE 'LOAD-%') AS contacts,
                      (SELECT count(*) FROM delivery) AS deliveries""",
            since,
        )
        return dict(row)
    finally:
        await conn.close()


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    recorder: Recorder
    window: float
    clients: list[Client]
    client_cpu: float
    login_seconds: list[float]
    start_seconds: float
    campaigns: dict[str, int]
    campaigns_unfinished: list[str]
    drain_seconds: float
    load_avg: tuple[float, float]
    machine_busy: float  # share of all cores busy during the window
    group_cores: dict[str, float]  # cores used by each process group during the window
    # Per web process: the latencies of the clients whose connection it held.
    by_web_process: dict[int, list[list[float]]]


async def drive(
    args: argparse.Namespace, base_url: str, db_url: str, groups: dict[str, int], redis_pid: int
) -> Outcome:
    recorder = Recorder()
    pg = await asyncpg.connect(db_url)
    run_tag = secrets.token_hex(3)
    users = client_users(args.clients)
    slots: dict[str, int] = Counter(u.local for u in users)
    taken: Counter[str] = Counter()
    clients = []
    for index, user in enumerate(users):
        clients.append(
            Client(
                index,
                user,
                taken[user.local],
                slots[user.local],
                base_url,
                recorder,
                args.seed * 1000 + index,
                run_tag,
            )
        )
        taken[user.local] += 1
    try:
        started = time.perf_counter()
        login_seconds: list[float] = []

        async def start(client: Client) -> None:
            login_seconds.append(await client.start())

        results = await asyncio.gather(*(start(c) for c in clients), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise RuntimeError(f"{len(failed)} client(s) could not log in and start: {failed[0]!r}")
        start_seconds = time.perf_counter() - started
        if not all(c.assignee_id for c in clients if c.user.admin):
            raise RuntimeError(f"no user {ASSIGNEE} in the demo office")
        await asyncio.gather(*(c.reconnect() for c in clients))

        load_before = os.getloadavg()[0]
        recorder.recording = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        busy0, total0 = machine_ticks()
        group0 = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
        pids0 = {**await postgres_pids(pg), "redis": [redis_pid]}
        group0.update({name: pids_cpu_seconds(pids) for name, pids in pids0.items()})
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(*(c.run_until(deadline) for c in clients))
        window = time.perf_counter() - wall0
        owners = server_process_of_ports(groups["web"], args.port)
        by_web_process: dict[int, list[list[float]]] = defaultdict(list)
        for client in clients:
            if client.local_port in owners:
                by_web_process[owners[client.local_port]].append(client.latencies)
        client_cpu = (time.process_time() - cpu0) / window
        busy1, total1 = machine_ticks()
        group1 = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
        # Sessions opened during the window count from zero, those closed are missed.
        pids1 = {**await postgres_pids(pg), "redis": [redis_pid]}
        group1.update({name: pids_cpu_seconds(pids) for name, pids in pids1.items()})
        group0.update({name: 0.0 for name in group1 if name not in group0})
        group_cores = {name: (group1[name] - group0[name]) / window for name in group1}
        recorder.recording = False
        load_after = os.getloadavg()[0]

        # The worker's part: every campaign sent must finish (SENT) on its own.
        sent = [(c, cid) for c in clients for cid in c.campaigns_sent]
        admin = next(c for c in clients if c.user.admin)
        drain_started = time.perf_counter()
        states: dict[str, str] = {}
        while time.perf_counter() - drain_started < DRAIN_SECONDS:
            for _client, campaign_id in sent:
                if states.get(campaign_id) in ("SENT", "FAILED", "CANCELLED"):
                    continue
                with contextlib.suppress(RequestFailed):  # asked again; unfinished if it stays
                    data = await admin.call("campaignState", CAMPAIGN_STATE, {"id": campaign_id})
                    states[campaign_id] = data["campaign"]["state"]
            if all(states.get(cid) in ("SENT", "FAILED", "CANCELLED") for _c, cid in sent):
                break
            await asyncio.sleep(1)
        drain_seconds = time.perf_counter() - drain_started
        unfinished = [cid for _c, cid in sent if states.get(cid) != "SENT"]
        return Outcome(
            recorder=recorder,
            window=window,
            clients=clients,
            client_cpu=client_cpu,
            login_seconds=login_seconds,
            start_seconds=start_seconds,
            campaigns=dict(Counter(states.values())),
            campaigns_unfinished=unfinished,
            drain_seconds=drain_seconds,
            load_avg=(load_before, load_after),
            machine_busy=(busy1 - busy0) / max(1, total1 - total0),
            group_cores=group_cores,
            by_web_process=dict(by_web_process),
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        await pg.close()


def run_loop(coro: Any) -> Any:
    """uvloop when installed (it comes with uvicorn[standard]): the clients' own overhead is
    part of every latency measured, so it is kept small."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# --------------------------------------------------------------------------- the report


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def machine() -> dict[str, str]:
    return describe_machine(("strawberry-graphql", "tortoise-orm", "asyncpg", "uvicorn", "httpx"))


def report(
    args: argparse.Namespace,
    outcome: Outcome,
    facts: dict[str, Any],
    demo_seconds: float,
    written: dict[str, int],
    log_errors: dict[str, list[str]],
    logs: list[Path],
) -> tuple[list[str], int]:
    """The section's lines and the number of errors."""
    rec = outcome.recorder
    m = machine()
    everything = sorted(t for ts in rec.timings.values() for t in ts)
    total = len(everything)
    log_error_count = sum(len(v) for v in log_errors.values())
    unfinished = len(outcome.campaigns_unfinished)
    errors = sum(rec.errors.values()) + log_error_count + unfinished
    verdict = "pass" if errors == 0 else "**FAIL**"
    users = Counter(c.user.local for c in outcome.clients)
    who = ", ".join(f"{n} × {local}" for local, n in users.items())
    mix_total = sum(MIX.values())
    command = "make load" + (f' LOAD_ARGS="{args.raw_args}"' if args.raw_args else "")

    ours = sum(outcome.group_cores.values()) + outcome.client_cpu
    other = max(0.0, outcome.machine_busy * (os.cpu_count() or 1) - ours)
    other_note = (
        " (**they competed for the cores: every latency below is inflated**)"
        if other > 0.25
        else ""
    )

    def ms(value: float) -> str:
        return f"{value * 1000:.1f}"

    lines = [
        MARK_BEGIN,
        "## Load: concurrent SPA clients",
        "",
        "Written by `make load` (`bench/load.py`), which replaces only this section.",
        "",
        f"- **Date:** {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- **Command:** `{command}` (`python -m bench.load --clients {args.clients} --seconds"
        f" {args.seconds:g} --contacts {args.contacts} --web-workers {args.web_workers}"
        + (f" --pool-size {args.pool_size}" if args.pool_size else "")
        + "`)",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; the clients, `crm serve"
        f" --workers {args.web_workers}`, `crm worker` (2 processes × 4 threads), PostgreSQL"
        f" {facts['pg_version']} and Redis all on this one machine, over 127.0.0.1; a pool of"
        f" {args.pool_size or 5} PostgreSQL connections per process"
        + ("" if args.pool_size else " (the default)"),
        f"- **Software:** Python {m['python']}; {m['libs']}",
        f"- **Data:** the demo office, `crm demo --contacts {args.contacts}` ({demo_seconds:.0f} s):"
        f" {facts['contacts']:,} contacts ({facts['live']:,} not archived,"
        f" {facts['unassigned']:,} unassigned), {facts['activities']:,} activities,"
        f" {facts['status_changes']:,} status changes, {facts['companies']} companies,"
        f" {facts['users']} active users; database {facts['bytes'] / 2**20:.0f} MiB after"
        " VACUUM ANALYZE",
        f"- **Clients:** {args.clients} ({who}), each its own login and keep-alive connection"
        f" (httpx), one request at a time with no pause between them, for {args.seconds:g} s;"
        f" started (logins and each client's app shell and first pages, not timed) in"
        f" {outcome.start_seconds:.1f} s; the {len(outcome.login_seconds)} logins at once took"
        f" p50 {ms(pct(sorted(outcome.login_seconds), 50))} ms, max"
        f" {ms(max(outcome.login_seconds))} ms",
        "- **Mix** (weights, out of "
        f"{mix_total:g}): "
        + ", ".join(f"{op} {w:g}" for op, w in MIX.items())
        + "; `campaign` is createAudience + createCampaign + sendCampaign of a few dozen"
        " recipients (Maildir, no SMTP_URL), `createAudience` deletes the client's oldest"
        " once it has three. Writes stay in each client's own share of the contacts, so no"
        " business refusal is expected and every GraphQL error counts, but the masked email"
        " of other agents' contacts read by the office-wide agent (R3), counted apart",
        f"- **CPU during the window:** the machine's cores {outcome.machine_busy:.0%} busy;"
        f" `crm serve` used {outcome.group_cores['web']:.2f} cores, `crm worker`"
        f" {outcome.group_cores['worker']:.2f}, this database's PostgreSQL sessions"
        f" {outcome.group_cores['postgres']:.2f} and its background processes"
        f" {outcome.group_cores['postgres background']:.2f}, Redis"
        f" {outcome.group_cores['redis']:.2f}, the clients' process {outcome.client_cpu:.2f}"
        f" (its share is in every latency below), other programs {other:.2f}{other_note}."
        f" One-minute load average {outcome.load_avg[0]:.2f} before the window,"
        f" {outcome.load_avg[1]:.2f} at its end",
        "",
        f"**Result:** {total:,} requests in {outcome.window:.1f} s, **{total / outcome.window:,.1f}"
        f" requests/s**; p50 {ms(pct(everything, 50))} ms, p95 {ms(pct(everything, 95))} ms,"
        f" p99 {ms(pct(everything, 99))} ms; **errors: {errors}** (target 0: {verdict}).",
        "",
        "| Operation | Requests | req/s | p50 ms | p95 ms | p99 ms | max ms | Errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for op, values in sorted(rec.timings.items(), key=lambda kv: -len(kv[1])):
        ts = sorted(values)
        lines.append(
            f"| {op} | {len(ts):,} | {len(ts) / outcome.window:.1f} | {ms(pct(ts, 50))}"
            f" | {ms(pct(ts, 95))} | {ms(pct(ts, 99))} | {ms(ts[-1])} | {rec.errors.get(op, 0)} |"
        )
    lines.append(
        f"| **all** | **{total:,}** | **{total / outcome.window:.1f}** |"
        f" **{ms(pct(everything, 50))}** | **{ms(pct(everything, 95))}** |"
        f" **{ms(pct(everything, 99))}** | **{ms(everything[-1]) if everything else '-'}** |"
        f" **{sum(rec.errors.values())}** |"
    )
    campaigns = ", ".join(f"{n} {state}" for state, n in sorted(outcome.campaigns.items()))
    sent = sum(outcome.campaigns.values())
    if not sent:
        campaign_line = "- **Campaigns sent:** none in this run"
    elif not unfinished:
        campaign_line = (
            f"- **Campaigns sent:** {sent} ({campaigns}), all SENT by the worker"
            f" {outcome.drain_seconds:.1f} s after the window;"
            f" {written['maildir']:,} messages in the Maildir"
        )
    else:
        campaign_line = (
            f"- **Campaigns sent:** {sent} ({campaigns}); {unfinished} not SENT"
            f" {outcome.drain_seconds:.0f} s after the window (errors)"
        )
    lines += [
        "",
        f"- **Written during the window** (read back from the database): {written['contacts']:,}"
        f" contacts created, {written['activities']:,} activities,"
        f" {written['status_changes']:,} status changes (engagement's included),"
        f" {written['deliveries']:,} campaign deliveries",
        campaign_line,
        "- **Expected answers, not errors:** "
        + (
            ", ".join(f"{k}: {v:,}" for k, v in sorted(rec.expected.items()))
            if rec.expected
            else "none"
        ),
        "- **Connections per web process** (the kernel hands each new connection to one of"
        " uvicorn's worker processes; a keep-alive client stays there): "
        + "; ".join(
            f"{len(lists)} clients, p50 {ms(pct(merged, 50))} ms, p95 {ms(pct(merged, 95))} ms"
            for lists in sorted(outcome.by_web_process.values(), key=len, reverse=True)
            for merged in [sorted(x for latencies in lists for x in latencies)]
        ),
        "- **Server and worker logs:** "
        + (
            "no ERROR line"
            if not log_error_count
            else ", ".join(f"{name}: {len(v)} ERROR line(s)" for name, v in log_errors.items())
        ),
    ]
    if rec.error_kinds:
        lines += ["", "Errors by operation and kind, with samples:", ""]
        for key, count in rec.error_kinds.most_common():
            lines.append(f"- {key}: {count}")
            for s in rec.samples[key]:
                variables = orjson.dumps(s.variables).decode() if s.variables else "{}"
                lines.append(
                    f"  - {s.user}, request `{s.request_id}`: {s.detail}; variables `{variables}`"
                )
                for logged in lines_of_request(logs, s.request_id)[:3]:
                    lines.append(f"    - log: `{logged[:400]}`")
    for name, found in log_errors.items():
        if found:
            lines += ["", f"First ERROR lines of {name}:", ""]
            lines += [f"    {line[:400]}" for line in found[:5]]
    lines.append(MARK_END)
    return lines, errors


def write_section(path: Path, section: list[str]) -> None:
    """Replace this script's section of `path` (between its marks), or append it; the rest
    of the file stays as it was."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = "\n".join(section)
    pattern = re.compile(re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text.rstrip("\n") + "\n")


# --------------------------------------------------------------------------- main


def check_services(redis_url: str) -> None:
    import redis

    async def pg() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(pg())
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"load: PostgreSQL does not answer at {PG_ADMIN_URL}: {exc}")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        sys.exit(f"load: Redis does not answer at {redis_url}: {exc}")


def flush_redis(redis_url: str) -> None:
    """This run's Redis database starts and ends empty: no queued message or counter of an
    earlier run reaches it."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def redis_pid(redis_url: str) -> int:
    import redis

    return int(redis.Redis.from_url(redis_url).info("server")["process_id"])


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--contacts", type=int, default=20_000, help="the demo office's size")
    parser.add_argument("--web-workers", type=int, default=2, help="crm serve --workers")
    parser.add_argument("--db", default="crm_load", help="the database made for the run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="PostgreSQL connections per web and worker process (DATABASE_URL ?maxsize=);"
        " the product's default (5) when left out",
    )
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    args.raw_args = shlex.join(raw)
    if args.clients < len(DEMO_USERS):
        parser.error(f"--clients must be at least {len(DEMO_USERS)} (one per demo user)")
    signal.signal(signal.SIGTERM, _terminate)

    check_services(args.redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="crm-load-"))
    procs = Processes(workdir)
    db_url = f"postgresql://postgres@127.0.0.1:5432/{args.db}"
    port = args.port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "SECRET_KEY", "DATA_DIR")
    }
    env.update(
        DATABASE_URL=db_url + (f"?maxsize={args.pool_size}" if args.pool_size else ""),
        REDIS_URL=args.redis_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        DATA_DIR=str(workdir / "data"),
        PUBLIC_BASE_URL=base_url,
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="INFO",
    )
    crm = str(BIN / "crm")
    status = 1
    try:
        print(f"database {args.db}: created; loading the demo office ({args.contacts:,} contacts)")
        asyncio.run(create_database(PG_ADMIN_URL, args.db))
        flush_redis(args.redis_url)
        t0 = time.perf_counter()
        demo = procs.start("demo", [crm, "demo", "--contacts", str(args.contacts)], env)
        if demo.wait() != 0:
            raise RuntimeError(f"crm demo failed:\n{procs.tail('demo')}")
        demo_seconds = time.perf_counter() - t0
        facts = asyncio.run(data_facts(db_url))
        since = datetime.now(UTC)

        print(f"starting crm serve --workers {args.web_workers} and crm worker on {base_url}")
        worker = procs.start("worker", [crm, "worker"], env)
        web = procs.start(
            "web",
            [crm, "serve", "--port", str(port), "--workers", str(args.web_workers)],
            env,
        )
        wait_healthy(base_url, web, procs, "web")
        if worker.poll() is not None:
            raise RuntimeError(f"crm worker exited:\n{procs.tail('worker')}")

        print(f"{args.clients} clients logging in, then {args.seconds:g} s of load")
        redis_process = redis_pid(args.redis_url)
        outcome = run_loop(
            drive(args, base_url, db_url, {"web": web.pid, "worker": worker.pid}, redis_process)
        )
        written = asyncio.run(write_counts(db_url, since))
        maildir = workdir / "data" / "maildir"
        written["maildir"] = sum(
            1
            for sub in ("new", "cur")
            if (maildir / sub).is_dir()
            for _ in (maildir / sub).iterdir()
        )
        logs = [procs.log("web"), procs.log("worker")]
        log_errors = {"crm serve": log_problems(logs[0]), "crm worker": log_problems(logs[1])}
        section, errors = report(args, outcome, facts, demo_seconds, written, log_errors, logs)
        output = Path(args.output)
        write_section(output, section)
        print("\n".join(line for line in section if not line.startswith("<!--")))
        print(f"\nwrote its section of {output}")
        status = 0 if errors == 0 else 1
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        with contextlib.suppress(Exception):
            flush_redis(args.redis_url)
        if args.keep:
            print(f"kept database {args.db} and the logs in {workdir}")
        else:
            with contextlib.suppress(Exception):
                asyncio.run(drop_database(PG_ADMIN_URL, args.db))
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
