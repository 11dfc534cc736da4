"""One campaign message as RFC 5322 bytes: headers, then a multipart/alternative body with
the plain-text part first and the HTML part second, both UTF-8 (R17).

Written directly rather than through `email.message` (several times slower per message);
`PreEncoded` lets a template encode its fixed text once for a whole batch.
Every header line is ASCII unless an address itself is not (RFC 6532); names and subjects
outside ASCII, or that look like encoded words, become RFC 2047 encoded words; long
headers are folded; bodies are quoted-printable (mostly-ASCII text) or base64, so no line
reaches 998 characters. Line breaks in names and subjects become spaces, and addresses,
message ids and the unsubscribe URL are refused (ValueError) if they could end a header.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from api.core.settings import get_settings

if TYPE_CHECKING:
    # Only a type here: templates imports this module for its encoders.
    from api.campaigns.templates import Rendered

# An address as we write it: no whitespace, controls or characters that end or quote one.
_ADDRESS = re.compile(r'[^\s<>()\[\],;:\\"@\x00-\x1f\x7f]+@[^\s<>()\[\],;:\\"@\x00-\x1f\x7f]+')
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_URL = re.compile(r"https?://[!-;=?-~]+", re.IGNORECASE)
# RFC 5322 atext and spaces: a display name needing neither quotes nor encoding.
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_LINE_BREAKS = {c: " " for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029]}
# Bytes of UTF-8 per encoded word: 45 -> 60 base64 characters, 72 with the wrapping.
_WORD_BYTES = 45
_FOLD_AT = 76
# Bytes quoted-printable leaves as they are: printable ASCII but "=", tab, space and LF.
_QP_SAFE = bytes([*range(0x20, 0x3D), *range(0x3E, 0x7F), 0x09, 0x0A])
# One piece of a long encoded line: 73 to 75 characters, cut before an "=" among the last
# two so that no =XX escape is split by the soft line break; then the rest.
_QP_CHUNK = re.compile(rb"(?s).{73}(?:[^=]{2}|[^=](?==)|(?==))|.+")
_SOFT_BREAK = b"=\r\n"
_B64_LINE = re.compile(rb"(?s).{1,76}")


@dataclass(frozen=True)
class EncodedPart:
    """A body part in its transfer encoding: ASCII bytes with CRLF line ends."""

    transfer_encoding: str
    content: bytes


def message_id(delivery_id: int, campaign_id: int) -> str:
    """`<c{campaign}.d{delivery}@host>`, host being PUBLIC_BASE_URL's."""
    return f"<c{campaign_id}.d{delivery_id}@{_id_host(get_settings().public_base_url)}>"


@lru_cache(maxsize=4)
def _id_host(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "").rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"
    return host if re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", host) else "localhost"


def compose(
    rendered: Rendered,
    *,
    from_name: str,
    from_address: str,
    reply_to: str | None,
    to_name: str,
    to_address: str,
    message_id: str,
    unsubscribe_url: str,
    date: datetime | None = None,
) -> bytes:
    """The message as bytes with CRLF line ends, ready for SMTP DATA. ValueError when an
    address, the message id or the unsubscribe URL cannot be written safely."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError("message_id must look like <local@host>")
    if not _URL.fullmatch(unsubscribe_url):
        raise ValueError("unsubscribe_url must be an http(s) URL without spaces")
    when = date or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    boundary = "=_" + secrets.token_hex(12)
    headers = [
        "From: " + _mailbox(from_name, from_address),
        "To: " + _mailbox(to_name, to_address),
    ]
    if reply_to:
        headers.append("Reply-To: " + _address(reply_to))
    headers += [
        "Subject: " + _unstructured(rendered.subject, len("Subject: ")),
        "Date: " + format_datetime(when),
        "Message-ID: " + message_id,
        "MIME-Version: 1.0",
        f"List-Unsubscribe: <{unsubscribe_url}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        "This is a multi-part message in MIME format.",
        "",
    ]
    text = rendered.encoded_text or encode_part(rendered.text)
    html = rendered.encoded_html or encode_part(rendered.html)
    delimiter = f"--{boundary}\r\n".encode()
    return b"".join(
        [
            "\r\n".join(headers).encode("utf-8"),
            delimiter,
            _part_head("text/plain", text),
            text.content,
            b"\r\n",
            delimiter,
            _part_head("text/html", html),
            html.content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )


def _part_head(content_type: str, part: EncodedPart) -> bytes:
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {part.transfer_encoding}\r\n\r\n"
    ).encode()


def encode_part(text: str) -> EncodedPart:
    """A body part's text, quoted-printable when it is nearly all ASCII, else base64."""
    text = _lf(text)
    data = text.encode()
    if suits_quoted_printable(text, data):
        return EncodedPart("quoted-printable", _quoted_printable(data))
    encoded = base64.b64encode(data)
    return EncodedPart("base64", b"\r\n".join(_B64_LINE.findall(encoded)))


def suits_quoted_printable(text: str, data: bytes | None = None) -> bool:
    """Whether quoted-printable beats base64 for this text: it triples every non-ASCII
    byte where base64 adds a third to everything."""
    size = len(data) if data is not None else len(text.encode())
    return (size - len(text)) * 20 <= size


class PreEncoded:
    """Quoted-printable of a text with slots, its fixed pieces encoded once: filling it
    encodes only the values, each once however many slots show it. A soft line break
    closes every piece and value, so each starts a line and no line passes 76 characters
    whatever the values hold."""

    def __init__(self, parts: Sequence[str]) -> None:
        """`parts` alternate: literal text, slot key, literal text, …, literal text."""
        last = len(parts) - 1
        self._pieces = [
            _qp_piece(part, closed=index < last) if index % 2 == 0 else b""
            for index, part in enumerate(parts)
        ]
        self._slots = tuple((index, parts[index]) for index in range(1, len(parts), 2))
        self._keys = frozenset(key for _, key in self._slots)

    def fill(self, values: Mapping[str, str]) -> EncodedPart:
        """The part with each slot holding its key's value."""
        encoded = {key: _qp_piece(values[key], closed=True) for key in self._keys}
        pieces = self._pieces.copy()
        for index, key in self._slots:
            pieces[index] = encoded[key]
        return EncodedPart("quoted-printable", b"".join(pieces))


def _qp_piece(text: str, *, closed: bool) -> bytes:
    if not text:
        return b""
    data = _lf(text).encode()
    if not closed:
        return _quoted_printable(data)
    if len(data) <= _FOLD_AT - 2 and b"\n" not in data and not data.translate(None, _QP_SAFE):
        return data + _SOFT_BREAK  # the common value: short, plain ASCII
    if data.endswith(b"\n"):
        return _quoted_printable(data, width=_FOLD_AT - 2)  # it ends a line already
    return _quoted_printable(data, width=_FOLD_AT - 2) + _SOFT_BREAK


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _quoted_printable(data: bytes, width: int = _FOLD_AT) -> bytes:
    """RFC 2045 quoted-printable of LF-separated text, with CRLF line ends; lines longer
    than `width` are cut into pieces of at most 75 characters and a soft break, the last
    piece under 75. Built from bytes.replace and a regex: several times faster than
    binascii's encoder on the mostly-ASCII text it is used for."""
    unsafe = data.translate(None, _QP_SAFE)
    if unsafe:
        if b"=" in unsafe:
            data = data.replace(b"=", b"=3D")  # first: the escapes below add "="
        for byte in set(unsafe) - {0x3D}:
            data = data.replace(bytes((byte,)), b"=%02X" % byte)
    # A space or tab ending a line would be lost in transit.
    if b" \n" in data:
        data = data.replace(b" \n", b"=20\n")
    if b"\t\n" in data:
        data = data.replace(b"\t\n", b"=09\n")
    if data.endswith((b" ", b"\t")):
        data = data[:-1] + (b"=20" if data[-1] == 0x20 else b"=09")
    return b"\r\n".join(
        [
            line if len(line) <= width else _SOFT_BREAK.join(_QP_CHUNK.findall(line))
            for line in data.split(b"\n")
        ]
    )


def _address(address: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise ValueError("not an address that can be written in a header")
    return address


def _mailbox(name: str | None, address: str) -> str:
    """`name <address>`, the name quoted or encoded as it needs."""
    address = _address(address)
    name = (name or "").translate(_LINE_BREAKS).strip()
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        if _PLAIN_PHRASE.fullmatch(name):
            return f"{name} <{address}>"
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f"{_encoded_words(name)} <{address}>"


def _unstructured(value: str, used: int) -> str:
    """A subject-like header value: folded at spaces, or encoded words when it needs them."""
    value = value.translate(_LINE_BREAKS)
    if not value.isascii() or "=?" in value:
        return _encoded_words(value)
    if used + len(value) <= _FOLD_AT:
        return value
    pieces = value.split(" ")
    folded, width = pieces[0], used + len(pieces[0])
    for piece in pieces[1:]:
        # Fold only before a word, so no line is only whitespace.
        if piece and width + 1 + len(piece) > _FOLD_AT:
            folded += "\r\n " + piece
            width = 1 + len(piece)
        else:
            folded += " " + piece
            width += 1 + len(piece)
    if any(len(line) > 900 for line in folded.split("\r\n")):
        return _encoded_words(value)
    return folded


def _encoded_words(value: str) -> str:
    """RFC 2047 base64 encoded words of at most 45 UTF-8 bytes each, one per line, never
    splitting a character."""
    data = value.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1  # back off to the start of a character
        words.append("=?utf-8?b?" + base64.b64encode(data[start:end]).decode("ascii") + "?=")
        start = end
    return "\r\n ".join(words) if words else ""
