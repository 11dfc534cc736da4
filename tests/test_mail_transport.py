"""The mail transport against real SMTP servers (aiosmtpd, each on a free port of its own):
one connection for many messages, STARTTLS, implicit TLS and AUTH with a test certificate
authority, what each server answer means for the delivery (sent, bounced, permanent,
temporary), reconnecting after a dropped connection, an unreachable server, a password
that never shows, SMTP_URL parsing, and the Maildir used when no SMTP_URL is set."""

from __future__ import annotations

import email
import email.policy
import mailbox
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from api.campaigns import transport
from api.campaigns.messages import compose
from api.campaigns.templates import Body
from api.campaigns.transport import (
    MaildirSession,
    Result,
    SmtpSession,
    TlsMode,
    TransportUnavailable,
    open_session,
    parse_smtp_url,
)
from api.core.settings import get_settings
from tests.mail_server import free_port

SENDER = "agent@office.example"
USER = "crm-mailer"
PASSWORD = "p@ss:w0rd/with%odd#chars"
# The password as it is written in an SMTP_URL.
QUOTED_PASSWORD = "p%40ss%3Aw0rd%2Fwith%25odd%23chars"


@dataclass
class Delivered:
    sender: str
    recipients: list[str]
    content: bytes
    peer: Any  # the client's (address, port): one per connection
    tls: bool
    mail_options: list[str]


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every accepted message, with ways to misbehave:
    `refuse_mail`, `refuse` (recipient -> reply) and `data_reply` answer instead of 250;
    `drop_in_data` closes the connection that many times during DATA; `drop_idle` closes
    a connection that has delivered a message when the next MAIL FROM arrives ("close":
    without a word, "421": answering 421 as a server's idle timeout does)."""

    refuse_mail: str | None = None
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    drop_in_data: int = 0
    drop_idle: str | None = None
    delivered: list[Delivered] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    # Every connection that started a transaction.
    mail_peers: set[Any] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _served: set[Any] = field(default_factory=set)

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        self.mail_peers.add(session.peer)
        if self.drop_idle and session.peer in self._served:
            if self.drop_idle == "close":
                server.transport.close()
            return "421 4.4.2 mail.test Error: timeout exceeded"
        if self.refuse_mail:
            return self.refuse_mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = self.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.drop_in_data:
            self.drop_in_data -= 1
            server.transport.close()
            return "421 going away"
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.delivered.append(
                Delivered(
                    sender=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    content=envelope.content,
                    peer=session.peer,
                    tls=server.transport.get_extra_info("cipher") is not None,
                    mail_options=list(envelope.mail_options),
                )
            )
            self._served.add(session.peer)
        return "250 2.0.0 Queued as 12345"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: aiosmtpd then answers 535 itself (else it answers nothing).
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)

    def connections(self) -> int:
        return len({d.peer for d in self.delivered})


@dataclass
class Server:
    host: str
    port: int
    recorder: Recorder
    controller: Controller

    def url(self, scheme: str = "smtp", credentials: str = "", query: str = "") -> str:
        return f"{scheme}://{credentials}{self.host}:{self.port}{query}"


@contextmanager
def smtp_server(recorder: Recorder | None = None, **options: Any) -> Iterator[Server]:
    recorder = recorder or Recorder()
    port = free_port()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port, server_hostname="mail.test", **options
    )
    controller.start()
    try:
        yield Server("127.0.0.1", port, recorder, controller)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(authority: trustme.CA) -> ssl.SSLContext:
    """The default client context, trusting the test authority as well."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


def session_for(url: str, tls_context: ssl.SSLContext | None = None) -> SmtpSession:
    return SmtpSession(parse_smtp_url(url), tls_context=tls_context)


def a_message(recipient: str, number: int = 0) -> bytes:
    rendered = Body("Offer {{ first_name }}", "<p>Hello {{ first_name }}</p>").render(
        {"first_name": f"Reader {number}"},
        open_url="https://crm.example.com/t/o/1.x",
        unsubscribe_url="https://crm.example.com/u/1.x",
        click_url=lambda n: f"https://crm.example.com/t/c/1.{n}.x",
    )
    return compose(
        rendered,
        from_name="Ann Agent",
        from_address=SENDER,
        reply_to=None,
        to_name=f"Reader {number}",
        to_address=recipient,
        message_id=f"<c1.d{number}@crm.example.com>",
        unsubscribe_url="https://crm.example.com/u/1.x",
    )


def subject_of(content: bytes) -> str:
    return email.message_from_bytes(content, policy=email.policy.default)["Subject"]


# --- sending over SMTP ----------------------------------------------------------------------------


async def test_many_messages_go_over_one_connection():
    with smtp_server() as server:
        async with session_for(server.url()) as session:
            outcomes = [
                await session.send(
                    a_message(f"r{n}@client.example", n),
                    sender=SENDER,
                    recipient=f"r{n}@client.example",
                )
                for n in range(5)
            ]
        recorder = server.recorder

    assert [o.result for o in outcomes] == [Result.SENT] * 5
    assert {o.detail for o in outcomes} == {None}
    assert recorder.connections() == 1
    assert [d.recipients for d in recorder.delivered] == [
        [f"r{n}@client.example"] for n in range(5)
    ]
    assert {d.sender for d in recorder.delivered} == {SENDER}
    assert [subject_of(d.content) for d in recorder.delivered] == [
        f"Offer Reader {n}" for n in range(5)
    ]


async def test_the_message_arrives_byte_for_byte():
    data = a_message("zoe@client.example")
    with smtp_server() as server:
        async with session_for(server.url()) as session:
            await session.send(data, sender=SENDER, recipient="zoe@client.example")
    assert server.recorder.delivered[0].content == data


async def test_starttls_is_used_when_the_server_offers_it(server_tls, client_tls):
    with smtp_server(tls_context=server_tls, require_starttls=True) as server:
        async with session_for(server.url(), client_tls) as session:
            outcome = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
    assert outcome.result is Result.SENT
    assert server.recorder.delivered[0].tls


async def test_starttls_off_sends_in_the_clear(server_tls):
    with smtp_server(tls_context=server_tls) as server:
        async with session_for(server.url(query="?starttls=off")) as session:
            outcome = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
    assert outcome.result is Result.SENT
    assert not server.recorder.delivered[0].tls


async def test_starttls_required_but_not_offered_is_unavailable():
    with smtp_server() as server, pytest.raises(TransportUnavailable):
        async with session_for(server.url(query="?starttls=require")):
            pass


async def test_a_certificate_the_system_does_not_trust_is_refused_by_default(server_tls):
    with (
        smtp_server(tls_context=server_tls) as server,
        pytest.raises(TransportUnavailable) as caught,
    ):
        async with session_for(server.url()):
            pass
    assert "certificate" in str(caught.value).lower()
    assert server.recorder.delivered == []


async def test_implicit_tls(server_tls, client_tls):
    with smtp_server(ssl_context=server_tls) as server:
        async with session_for(server.url("smtps"), client_tls) as session:
            outcome = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
    assert outcome.result is Result.SENT
    assert server.recorder.delivered[0].tls


async def test_auth_over_starttls_with_a_percent_encoded_password(server_tls, client_tls):
    recorder = Recorder()
    options = {
        "tls_context": server_tls,
        "auth_required": True,
        "authenticator": recorder.authenticate,
    }
    with smtp_server(recorder, **options) as server:
        url = server.url(credentials=f"{USER}:{QUOTED_PASSWORD}@")
        async with session_for(url, client_tls) as session:
            outcome = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
    assert outcome.result is Result.SENT
    assert recorder.logins == [(USER, PASSWORD)]
    assert recorder.delivered[0].tls


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_password_is_never_sent_without_tls_unless_starttls_is_off():
    recorder = Recorder()
    options = {
        "auth_required": True,
        "auth_require_tls": False,
        "authenticator": recorder.authenticate,
    }
    with smtp_server(recorder, **options) as server:
        url = server.url(credentials=f"{USER}:{QUOTED_PASSWORD}@")
        with pytest.raises(TransportUnavailable) as caught:
            async with session_for(url):
                pass
        assert recorder.logins == []
        assert PASSWORD not in str(caught.value) and QUOTED_PASSWORD not in str(caught.value)

        async with session_for(url + "?starttls=off") as session:
            outcome = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
    assert outcome.result is Result.SENT
    assert recorder.logins == [(USER, PASSWORD)]


async def test_a_wrong_password_is_unavailable_and_never_shown(server_tls, client_tls):
    recorder = Recorder()
    options = {
        "tls_context": server_tls,
        "auth_required": True,
        "authenticator": recorder.authenticate,
    }
    with smtp_server(recorder, **options) as server:
        wrong = "Wr0ng-Secret-Value"
        with pytest.raises(TransportUnavailable) as caught:
            async with session_for(server.url(credentials=f"{USER}:{wrong}@"), client_tls):
                pass
    shown = (
        f"{caught.value} {caught.value!r} {caught.value.__cause__!r} {caught.value.__context__!r}"
    )
    assert wrong not in shown
    assert "refused the login" in str(caught.value)
    assert recorder.logins and set(recorder.logins) == {(USER, wrong)}


async def test_a_refused_recipient_bounces_and_the_next_message_still_goes():
    recorder = Recorder(refuse={"gone@client.example": "550 5.1.1 User unknown"})
    with smtp_server(recorder) as server:
        async with session_for(server.url()) as session:
            bounced = await session.send(
                a_message("gone@client.example"), sender=SENDER, recipient="gone@client.example"
            )
            sent = await session.send(
                a_message("here@client.example"), sender=SENDER, recipient="here@client.example"
            )
    assert bounced.result is Result.BOUNCED
    assert bounced.detail == "550 5.1.1 User unknown"
    assert sent.result is Result.SENT
    assert [d.recipients for d in recorder.delivered] == [["here@client.example"]]
    assert recorder.connections() == 1


@pytest.mark.parametrize(
    ("recorder", "result", "code"),
    [
        (
            Recorder(refuse={"r@client.example": "451 4.7.1 Greylisted, try later"}),
            Result.TEMPORARY,
            "451",
        ),
        (Recorder(refuse={"r@client.example": "452 4.2.2 Mailbox full"}), Result.TEMPORARY, "452"),
        (Recorder(refuse_mail="550 5.7.1 Sender not allowed"), Result.PERMANENT, "550"),
        (Recorder(refuse_mail="451 4.3.0 Try later"), Result.TEMPORARY, "451"),
        (Recorder(data_reply="554 5.6.0 Message content rejected"), Result.PERMANENT, "554"),
        (Recorder(data_reply="452 4.3.1 Insufficient storage"), Result.TEMPORARY, "452"),
    ],
)
async def test_what_each_server_answer_means(recorder: Recorder, result: Result, code: str):
    with smtp_server(recorder) as server:
        async with session_for(server.url()) as session:
            outcome = await session.send(
                a_message("r@client.example"), sender=SENDER, recipient="r@client.example"
            )
            # The refusal left no half transaction behind: the connection still works.
            recorder.refuse, recorder.refuse_mail, recorder.data_reply = {}, None, None
            after = await session.send(
                a_message("r@client.example"), sender=SENDER, recipient="r@client.example"
            )
    assert outcome.result is result
    assert outcome.detail is not None and outcome.detail.startswith(code)
    assert not outcome.maybe_delivered
    assert after.result is Result.SENT
    assert recorder.connections() == 1


async def test_a_connection_dropped_mid_message_is_temporary_and_the_next_send_reconnects():
    recorder = Recorder(drop_in_data=1)
    with smtp_server(recorder) as server:
        async with session_for(server.url()) as session:
            dropped = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
            sent = await session.send(
                a_message("b@client.example"), sender=SENDER, recipient="b@client.example"
            )
            also = await session.send(
                a_message("c@client.example"), sender=SENDER, recipient="c@client.example"
            )
    assert dropped.result is Result.TEMPORARY
    assert dropped.maybe_delivered
    assert "may have accepted" in (dropped.detail or "")
    assert not (sent.maybe_delivered or also.maybe_delivered)
    assert (sent.result, also.result) == (Result.SENT, Result.SENT)
    assert [d.recipients for d in recorder.delivered] == [
        ["b@client.example"],
        ["c@client.example"],
    ]
    # The first connection died with the first message; its successor carried both others.
    assert len(recorder.mail_peers) == 2
    assert recorder.connections() == 1


async def test_when_reconnecting_fails_the_transport_is_unavailable():
    recorder = Recorder(drop_in_data=1)
    with smtp_server(recorder) as server:
        session = session_for(server.url())
        await session.__aenter__()
        dropped = await session.send(
            a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
        )
    # The server is gone now.
    try:
        with pytest.raises(TransportUnavailable):
            await session.send(
                a_message("b@client.example"), sender=SENDER, recipient="b@client.example"
            )
    finally:
        await session.__aexit__(None, None, None)
    assert dropped.result is Result.TEMPORARY


@pytest.mark.parametrize("how", ["close", "421"])
async def test_an_idle_connection_the_server_closed_costs_no_message(how: str):
    recorder = Recorder(drop_idle=how)
    with smtp_server(recorder) as server:
        async with session_for(server.url()) as session:
            outcomes = [
                await session.send(
                    a_message(f"r{n}@client.example"),
                    sender=SENDER,
                    recipient=f"r{n}@client.example",
                )
                for n in range(3)
            ]
    # Each MAIL FROM after a delivery found the connection closed: nothing had been handed
    # over, so the message went over a new connection instead of failing.
    assert [o.result for o in outcomes] == [Result.SENT] * 3
    assert [d.recipients[0] for d in recorder.delivered] == [
        f"r{n}@client.example" for n in range(3)
    ]
    assert recorder.connections() == 3


async def test_nothing_listening_is_unavailable_without_showing_the_password():
    url = f"smtp://{USER}:{QUOTED_PASSWORD}@127.0.0.1:{free_port()}?timeout=2"
    with pytest.raises(TransportUnavailable) as caught:
        async with session_for(url):
            pass
    assert "127.0.0.1" in str(caught.value)
    for secret in (PASSWORD, QUOTED_PASSWORD, url):
        assert secret not in str(caught.value) and secret not in repr(caught.value)


async def test_utf8_addresses_use_smtputf8():
    with smtp_server() as server:
        async with session_for(server.url()) as session:
            outcome = await session.send(
                a_message("zoe@client.example"),
                sender="zoë@office.example",
                recipient="zoë@client.example",
            )
    assert outcome.result is Result.SENT
    assert server.recorder.delivered[0].recipients == ["zoë@client.example"]
    assert "SMTPUTF8" in [o.upper() for o in server.recorder.delivered[0].mail_options]


async def test_open_session_uses_smtp_url(monkeypatch):
    with smtp_server() as server:
        monkeypatch.setattr(get_settings(), "smtp_url", server.url())
        session = open_session()
        assert isinstance(session, SmtpSession)
        async with session:
            outcome = await session.send(
                a_message("a@client.example"), sender=SENDER, recipient="a@client.example"
            )
    assert outcome.result is Result.SENT
    assert len(server.recorder.delivered) == 1


# --- SMTP_URL -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, TlsMode.OPPORTUNISTIC, None, None)),
        (
            "smtp://mail.example.com:2525?starttls=require",
            ("mail.example.com", 2525, TlsMode.STARTTLS, None, None),
        ),
        ("SMTP://Mail.Example.com?starttls=off", ("mail.example.com", 25, TlsMode.OFF, None, None)),
        ("smtps://mail.example.com", ("mail.example.com", 465, TlsMode.IMPLICIT, None, None)),
        (
            f"smtp://{USER}:{QUOTED_PASSWORD}@mail.example.com:587",
            ("mail.example.com", 587, TlsMode.STARTTLS, USER, PASSWORD),
        ),
        (
            f"smtp://{USER}:{QUOTED_PASSWORD}@[::1]:25?starttls=off",
            ("::1", 25, TlsMode.OFF, USER, PASSWORD),
        ),
        (
            "smtps://u%40example.com:pw@mail.example.com:4650",
            ("mail.example.com", 4650, TlsMode.IMPLICIT, "u@example.com", "pw"),
        ),
    ],
)
def test_smtp_url_forms(url: str, expected: tuple):
    config = parse_smtp_url(url)
    assert (config.host, config.port, config.tls, config.username, config.password) == expected
    assert config.timeout == transport.DEFAULT_TIMEOUT
    if config.password:
        assert config.password not in repr(config) and config.password not in str(config)


def test_smtp_url_timeout():
    assert parse_smtp_url("smtp://mail.example.com?timeout=2.5").timeout == 2.5


@pytest.mark.parametrize(
    "url",
    [
        "http://user:Sup3rSecret@mail.example.com",
        "smtp://user:Sup3rSecret@mail.example.com:99999",
        "smtp://user:Sup3rSecret@mail.example.com:port",
        "smtp://user:Sup3rSecret@",
        "smtp://user:Sup3rSecret@mail.example.com/path",
        "smtp://user:Sup3r#Secret@mail.example.com",
        "smtp://:Sup3rSecret@mail.example.com",
        "smtp://user:Sup3rSecret@mail.example.com?starttls=maybe",
        "smtps://user:Sup3rSecret@mail.example.com?starttls=require",
        "smtp://user:Sup3rSecret@mail.example.com?timeout=-1",
        "smtp://user:Sup3rSecret@mail.example.com?timeout=nan",
        "smtp://user:Sup3rSecret@mail.example.com?tls=yes",
        "smtp://user:Sup3rSecret@mail.example.com?timeout=1&timeout=2",
    ],
)
def test_bad_smtp_urls_are_refused_without_echoing_them(url: str):
    with pytest.raises(ValueError) as caught:
        parse_smtp_url(url)
    message = str(caught.value)
    assert "Sup3r" not in message and "Secret" not in message
    # Nothing chained that a traceback would print along with it.
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


# --- Maildir --------------------------------------------------------------------------------------


async def test_without_smtp_url_messages_land_in_a_maildir_under_data_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(get_settings(), "smtp_url", None)
    monkeypatch.setattr(get_settings(), "data_dir", tmp_path / "data")
    session = open_session()
    assert isinstance(session, MaildirSession)
    async with session:
        outcomes = [
            await session.send(
                a_message(f"r{n}@client.example", n),
                sender=SENDER,
                recipient=f"r{n}@client.example",
            )
            for n in range(3)
        ]
    assert [o.result for o in outcomes] == [Result.SENT] * 3

    box = mailbox.Maildir(tmp_path / "data" / "maildir", create=False)
    files = list((tmp_path / "data" / "maildir" / "new").iterdir())
    assert len(files) == 3
    found = {}
    for key in box.iterkeys():
        parsed = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        assert not parsed.defects
        found[parsed["X-Envelope-To"]] = parsed
    assert set(found) == {f"<r{n}@client.example>" for n in range(3)}
    first = found["<r0@client.example>"]
    assert first["Return-Path"] == f"<{SENDER}>"
    assert first["Subject"] == "Offer Reader 0"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Hello Reader 0" in first.get_body(("plain",)).get_content()
