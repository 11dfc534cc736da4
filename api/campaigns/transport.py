"""Handing campaign messages to the mail system: an SMTP server (SMTP_URL) over one
connection per batch, or, with no SMTP_URL, a local Maildir folder under DATA_DIR.

SMTP_URL forms:
- `smtp://[user:pass@]host[:port]` (port 25): STARTTLS when the server offers it, and
  always when a user and password are given (no password travels unencrypted unless
  `?starttls=off` says so);
- `?starttls=require` insists on STARTTLS, `?starttls=off` never uses it;
- `smtps://[user:pass@]host[:port]` (port 465): TLS from the first byte;
- `?timeout=SECONDS` (default 30) for connecting and for each command.
User and password are percent-decoded. Certificates are verified with the system's trust
store. The password and the URL are never logged nor put into an error or outcome.

Each message's outcome says what the batch should do with its delivery: SENT (accepted),
BOUNCED (the recipient was refused with 5xx: the address is bad), PERMANENT (5xx to the
sender or the content: sending it again would fail again), TEMPORARY (4xx, or the
connection dropped mid-message: try later; `maybe_delivered` when it dropped after the
message itself went out). When the connection cannot be made or made
again, TransportUnavailable stops the batch; it is raised only before anything of the
message at hand went to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
import math
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib

from api.core.settings import get_settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
_DETAIL_MAX = 500
_ENVELOPE_UNSAFE = {c: None for c in [*range(0x21), 0x7F, ord("<"), ord(">")]}


class Result(StrEnum):
    SENT = "SENT"
    TEMPORARY = "TEMPORARY"
    PERMANENT = "PERMANENT"
    BOUNCED = "BOUNCED"


@dataclass(frozen=True)
class Outcome:
    result: Result
    # When not SENT: the server's reply or what went wrong, for the delivery's error column.
    detail: str | None = None
    # TEMPORARY only: the connection died after the message went out, so the server may
    # have accepted it (RFC 1047); sending it again may deliver it twice.
    maybe_delivered: bool = False


class TransportUnavailable(Exception):
    """The mail system cannot be reached: the whole batch waits and tries again later."""


class TlsMode(StrEnum):
    IMPLICIT = "implicit"
    STARTTLS = "starttls"  # required
    OPPORTUNISTIC = "opportunistic"
    OFF = "off"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def server(self) -> str:
        """`host:port`, safe to log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpConfig:
    """The SMTP_URL's settings; ValueError (never quoting the URL) when it is not usable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ValueError("SMTP_URL is not a valid smtp:// or smtps:// URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if parts.fragment:
        raise ValueError("SMTP_URL has a `#`: write one in a password as %23")
    if not host:
        raise ValueError("SMTP_URL names no host")
    if parts.path not in ("", "/"):
        raise ValueError("SMTP_URL takes no path")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("SMTP_URL has a password but no user name")

    tls = TlsMode.IMPLICIT if scheme == "smtps" else TlsMode.OPPORTUNISTIC
    timeout = DEFAULT_TIMEOUT
    seen: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        key = key.lower()
        if key in seen:
            raise ValueError(f"SMTP_URL gives `{key}` twice")
        seen.add(key)
        if key == "starttls":
            if scheme == "smtps":
                raise ValueError("SMTP_URL: smtps:// is TLS already; `starttls` does not apply")
            modes = {"require": TlsMode.STARTTLS, "off": TlsMode.OFF, "auto": TlsMode.OPPORTUNISTIC}
            if value.lower() not in modes:
                raise ValueError("SMTP_URL: `starttls` is `require`, `off` or `auto`")
            tls = modes[value.lower()]
        elif key == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = math.nan
            if not 0 < timeout <= 3600:
                raise ValueError("SMTP_URL: `timeout` is a number of seconds up to 3600")
        else:
            raise ValueError(f"SMTP_URL has an unknown option `{key[:40]}`")
    if username and tls is TlsMode.OPPORTUNISTIC:
        # Opportunistic STARTTLS can be stripped by anyone in the path: not with a password.
        tls = TlsMode.STARTTLS
    return SmtpConfig(
        host=host,
        port=port or (465 if scheme == "smtps" else 25),
        tls=tls,
        username=username,
        password=password,
        timeout=timeout,
    )


def open_session(*, tls_context: ssl.SSLContext | None = None) -> MailSession:
    """The configured session: SMTP when SMTP_URL is set, else the Maildir under DATA_DIR.
    `tls_context` replaces the default (system trust store, hostname checked)."""
    settings = get_settings()
    if settings.smtp_url:
        return SmtpSession(parse_smtp_url(settings.smtp_url), tls_context=tls_context)
    return MaildirSession(settings.data_dir / "maildir")


class MailSession:
    """One batch's way to the mail system: `async with` it, then `send` each message."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def send(self, data: bytes, *, sender: str, recipient: str) -> Outcome:
        """Hand over one message for one recipient."""
        raise NotImplementedError


class SmtpSession(MailSession):
    """One SMTP connection reused for every message of the batch, made again when the
    server drops it."""

    def __init__(self, config: SmtpConfig, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._tls_context = tls_context
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        # Connections made so far (the first and each reconnect).
        self.connections = 0

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await client.quit(timeout=min(self.config.timeout, 5.0))
        finally:
            client.close()

    async def send(self, data: bytes, *, sender: str, recipient: str) -> Outcome:
        async with self._lock:
            fresh = self._client is None or not self._client.is_connected
            if fresh:
                await self._connect()
            outcome, lost_before_sending = await self._transaction(data, sender, recipient)
            if lost_before_sending and not fresh:
                # The server dropped an idle connection before our MAIL: nothing was
                # handed over, so one more try on a new connection cannot duplicate it.
                await self._connect()
                outcome, _ = await self._transaction(data, sender, recipient)
            return outcome

    async def _transaction(self, data: bytes, sender: str, recipient: str) -> tuple[Outcome, bool]:
        """The outcome, and whether the connection was found dead before MAIL FROM."""
        client = self._client
        assert client is not None
        utf8 = not (sender.isascii() and recipient.isascii())
        encoding = "utf-8" if utf8 else "ascii"
        stage = "MAIL FROM"
        try:
            if utf8:
                if client.last_ehlo_response is None:
                    await client.ehlo()
                if not client.supports_extension("smtputf8"):
                    detail = "the server does not accept UTF-8 addresses"
                    return Outcome(Result.PERMANENT, detail), False
            await client.mail(sender, options=["SMTPUTF8"] if utf8 else [], encoding=encoding)
            stage = "RCPT TO"
            await client.rcpt(recipient, encoding=encoding)
            stage = "DATA"
            await client.data(data)
        except aiosmtplib.SMTPRecipientRefused as exc:
            await self._reset()
            refused = Result.BOUNCED if exc.code >= 500 else Result.TEMPORARY
            return Outcome(refused, _reply(exc.code, exc.message)), False
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 and stage == "MAIL FROM":
                # A server closing an idle connection answers the next command with 421.
                self._drop()
                return Outcome(Result.TEMPORARY, _reply(exc.code, exc.message)), True
            await self._reset()
            result = Result.PERMANENT if exc.code >= 500 else Result.TEMPORARY
            return Outcome(result, _reply(exc.code, exc.message)), False
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            self._drop()
            detail = f"connection lost during {stage} ({type(exc).__name__})"
            if stage == "DATA":
                detail += "; the server may have accepted the message"
                return Outcome(Result.TEMPORARY, detail, maybe_delivered=True), False
            return Outcome(Result.TEMPORARY, detail), stage == "MAIL FROM"
        except ValueError:
            # aiosmtplib refuses addresses it cannot put on a command line.
            if stage == "RCPT TO":
                await self._reset()
                return Outcome(Result.BOUNCED, "the recipient address cannot be used"), False
            return Outcome(Result.PERMANENT, "the sender address cannot be used"), False
        except aiosmtplib.SMTPException as exc:
            # Anything else leaves the connection in doubt: start the next one afresh.
            self._drop()
            return Outcome(Result.TEMPORARY, f"{stage}: {self._safe(exc)}"), False
        return Outcome(Result.SENT), False

    async def _connect(self) -> None:
        self._drop()
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.tls is TlsMode.IMPLICIT,
            start_tls={
                TlsMode.STARTTLS: True,
                TlsMode.OFF: False,
                TlsMode.OPPORTUNISTIC: None,
                TlsMode.IMPLICIT: False,
            }[config.tls],
            timeout=config.timeout,
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise TransportUnavailable(
                f"the mail server at {config.server} refused the login ({exc.code})"
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            raise TransportUnavailable(
                f"cannot connect to the mail server at {config.server}: {self._safe(exc)}"
            ) from None
        self._client = client
        self.connections += 1
        if self.connections > 1:
            log.info("reconnected to the mail server at %s", config.server)

    async def _reset(self) -> None:
        """RSET after a refusal, so the next message starts a clean transaction."""
        client = self._client
        if client is None or not client.is_connected:
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _safe(self, exc: BaseException) -> str:
        """A one-line reason, never holding the password."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        if self.config.password:
            text = text.replace(self.config.password, "***")
        return text[:200]


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"[:_DETAIL_MAX]


class MaildirSession(MailSession):
    """Messages kept as files in a Maildir (the embedded default, for development and
    tests). Each file is the message as composed, with LF line ends, after a `Return-Path`
    and an `X-Envelope-To` header naming the envelope, as a local delivery would add."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box: mailbox.Maildir | None = None

    async def __aenter__(self) -> Self:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.path, create=True)
        except OSError as exc:
            raise TransportUnavailable(f"cannot open the mail folder: {exc.strerror}") from None
        return self

    async def send(self, data: bytes, *, sender: str, recipient: str) -> Outcome:
        if self._box is None:
            raise RuntimeError("use the session in `async with` first")
        envelope = (
            f"Return-Path: <{sender.translate(_ENVELOPE_UNSAFE)}>\n"
            f"X-Envelope-To: <{recipient.translate(_ENVELOPE_UNSAFE)}>\n"
        )
        try:
            self._box.add(envelope.encode() + data.replace(b"\r\n", b"\n"))
        except OSError as exc:
            raise TransportUnavailable(f"cannot write to the mail folder: {exc.strerror}") from None
        return Outcome(Result.SENT)
