"""Campaign subject and body templates: checking them, finding their tracked links, and
rendering one message per recipient (R17).

A template is text with merge fields written `{{ first_name }}` (Jinja syntax, parsed by
Jinja's sandboxed environment). Allowed: plain text or HTML, `{{ field }}` with a name from
MERGE_FIELDS (whitespace control `{{- field -}}` included), `{# comments #}`, and
`{% raw %}…{% endraw %}` for literal braces. Refused, with the line: any other statement
(`{% for %}`, `{% if %}`, `{% set %}`, `{% include %}` …), filters, attribute or item
access, calls, literals and operators. So a template can only substitute values: it runs no
code, reaches no Python object and cannot loop.

Rendering never executes the template. `Body` parses it once into literal text and slots
(merge fields, tracked links, the open pixel, the unsubscribe link) and each message only
fills the slots: merge fields are HTML-escaped in the HTML part and go in as they are in
the subject (line breaks removed) and the plain-text part. The plain-text part is derived
from the template's HTML once, in `Body`, never from a recipient's values.

Tracked links are the `<a href>`s with an absolute http(s) URL, numbered in order of
appearance: hrefs that hold a merge field (or `{{`), `mailto:`, `tel:`, `#anchors`,
relative ones and URLs with spaces or control characters are left as written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

from api.campaigns.messages import EncodedPart, PreEncoded, suits_quoted_printable
from api.core.errors import BadInput

MERGE_FIELDS: frozenset[str] = frozenset(
    {
        "first_name",
        "last_name",
        "full_name",
        "email",
        "company",
        "agent_name",
        "agent_email",
        "office_name",
    }
)
SUBJECT_MAX_LENGTH = 300
BODY_MAX_BYTES = 500_000

# Only ever used to parse: nothing is compiled or rendered through it, and it has no globals
# (no range, cycler, lipsum …) should anyone try.
_env = ImmutableSandboxedEnvironment(autoescape=True, keep_trailing_newline=True)
_env.globals.clear()

_SUBJECT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# Line breaks and other controls a merge field may carry into a rendered subject.
_SUBJECT_CLEAN = {c: " " for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029]}
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_END_BODY = re.compile(r"</body\s*>", re.IGNORECASE)
# One attribute of a start tag, as browsers split them: name, then an optional value.
_ATTRIBUTE = re.compile(r"""([^\s/>"'=][^\s/>=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")

_PIXEL = '<img src="{open}" width="1" height="1" alt="">'
_FOOTER_HTML = (
    '<p style="margin:24px 0 0;font-size:12px;line-height:1.5;color:#6b7280">'
    "Don't want these emails? "
    '<a href="{unsubscribe}" style="color:#6b7280">Unsubscribe</a>.</p>'
)
_FOOTER_TEXT = "\n\n-- \nDon't want these emails? Unsubscribe: {unsubscribe}\n"

# Slot keys, written between two marker characters while the template is being prepared.
_OPEN, _UNSUBSCRIBE = "open", "unsubscribe"
_FIELD_PREFIX, _CLICK_PREFIX = "f:", "c:"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    # The same parts already quoted-printable, when Body could do most of it beforehand.
    encoded_text: EncodedPart | None = field(default=None, repr=False, compare=False)
    encoded_html: EncodedPart | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _Merge:
    name: str
    line: int


def check(subject: str, body_html: str) -> None:
    """Raise BadInput (field `subject` or `bodyHtml`) unless both templates are usable."""
    _parse_subject(subject)
    _parse_body(body_html)


def tracked_links(body_html: str) -> tuple[str, ...]:
    """The URLs of the body's tracked links; link number n is index n. A body that does not
    parse has none (it could never have been sent)."""
    return _links_of(body_html)


@lru_cache(maxsize=32)
def _links_of(body_html: str) -> tuple[str, ...]:
    # Clicks arrive one by one for the same few campaigns: read each body once.
    try:
        segments = _parse(body_html, "bodyHtml")
    except BadInput:
        return ()
    return _Prepared(segments).links


class Body:
    """A campaign's subject and body, parsed once and rendered for each recipient."""

    def __init__(self, subject: str, body_html: str) -> None:
        subject_segments = _parse_subject(subject)
        body = _Prepared(_parse_body(body_html))
        self.links: tuple[str, ...] = body.links
        # The merge fields either template uses: a caller may load just these.
        self.fields: frozenset[str] = frozenset(
            s.name for s in [*subject_segments, *body.segments] if isinstance(s, _Merge)
        )
        marker = _marker_for([s for s in subject_segments if isinstance(s, str)])
        self._subject = _Program(_join(subject_segments, marker), marker)
        self._html = _Program(body.html, body.marker, pre_encode=True)
        self._text = _Program(body.text, body.marker, pre_encode=True)

    def render(
        self,
        fields: Mapping[str, str | None],
        *,
        open_url: str,
        unsubscribe_url: str,
        click_url: Callable[[int], str],
    ) -> Rendered:
        """One recipient's message; a missing or None field renders as ""."""
        raw: dict[str, str] = {}
        for name in self.fields:
            value = fields.get(name)
            raw[_FIELD_PREFIX + name] = "" if value is None else str(value)
        raw[_OPEN] = open_url
        raw[_UNSUBSCRIBE] = unsubscribe_url
        for number in range(len(self.links)):
            raw[f"{_CLICK_PREFIX}{number}"] = click_url(number)
        escaped = {key: str(escape(value)) for key, value in raw.items()}
        subject = self._subject.fill(raw).translate(_SUBJECT_CLEAN).strip()
        return Rendered(
            subject=subject,
            html=self._html.fill(escaped),
            text=self._text.fill(raw),
            encoded_text=self._text.encode(raw),
            encoded_html=self._html.encode(escaped),
        )


class _Program:
    """Template text split at its slots: filling it is a list copy and a join."""

    def __init__(self, marked: str, marker: str, *, pre_encode: bool = False) -> None:
        self._parts = marked.split(marker)
        # Odd parts are slot keys (the marker never occurs in template text).
        self._slots = tuple((i, self._parts[i]) for i in range(1, len(self._parts), 2))
        self._encoded: PreEncoded | None = None
        if pre_encode and suits_quoted_printable("".join(self._parts[::2])):
            self._encoded = PreEncoded(self._parts)

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self._parts.copy()
        for index, key in self._slots:
            parts[index] = values[key]
        return "".join(parts)

    def encode(self, values: Mapping[str, str]) -> EncodedPart | None:
        """The filled text as quoted-printable, when the fixed text suits it."""
        return None if self._encoded is None else self._encoded.fill(values)


def _parse_subject(subject: str) -> list[str | _Merge]:
    if not subject or not subject.strip():
        raise BadInput("`subject` must not be blank", field="subject")
    if len(subject) > SUBJECT_MAX_LENGTH:
        raise BadInput(f"`subject` is longer than {SUBJECT_MAX_LENGTH} characters", field="subject")
    if _SUBJECT_FORBIDDEN.search(subject):
        raise BadInput("`subject` contains line breaks or control characters", field="subject")
    _require_encodable(subject, "subject")
    return _with_known_fields(_parse(subject, "subject"), "subject")


def _parse_body(body_html: str) -> list[str | _Merge]:
    if not body_html or not body_html.strip():
        raise BadInput("`bodyHtml` must not be blank", field="bodyHtml")
    size = len(_require_encodable(body_html, "bodyHtml"))
    if size > BODY_MAX_BYTES:
        raise BadInput(
            f"`bodyHtml` is larger than {BODY_MAX_BYTES // 1000} kB ({size} bytes)",
            field="bodyHtml",
        )
    if "\x00" in body_html:
        raise BadInput("`bodyHtml` contains a NUL character", field="bodyHtml")
    return _with_known_fields(_parse(body_html, "bodyHtml"), "bodyHtml")


def _require_encodable(value: str, field: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"`{field}` is not valid Unicode text", field=field) from None


def _parse(source: str, field: str) -> list[str | _Merge]:
    """The template as literal text and merge fields; BadInput for anything else."""
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise BadInput(f"`{field}` line {exc.lineno}: {_short(exc.message)}", field=field) from None
    except TemplateError as exc:
        raise BadInput(f"`{field}`: {_short(exc.message)}", field=field) from None
    except RecursionError:
        raise BadInput(f"`{field}` is nested too deeply", field=field) from None
    segments: list[str | _Merge] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            raise BadInput(
                f"`{field}` line {node.lineno}: statements ({{% … %}}) are not allowed; "
                "use merge fields like {{ first_name }}",
                field=field,
            )
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                segments.append(child.data)
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                segments.append(_Merge(child.name, child.lineno))
            else:
                raise BadInput(
                    f"`{field}` line {child.lineno}: a merge field is a plain name like "
                    "{{ first_name }}: no filters, attributes, calls or expressions",
                    field=field,
                )
    return segments


def _with_known_fields(segments: list[str | _Merge], field: str) -> list[str | _Merge]:
    for segment in segments:
        if isinstance(segment, _Merge) and segment.name not in MERGE_FIELDS:
            raise BadInput(
                f"`{field}` line {segment.line}: unknown merge field `{segment.name}`; "
                f"use one of {', '.join(sorted(MERGE_FIELDS))}",
                field=field,
            )
    return segments


def _short(message: str | None) -> str:
    message = " ".join((message or "invalid template").split())
    return message if len(message) <= 200 else message[:197] + "..."


def _marker_for(literals: list[str]) -> str:
    """A private-use character found nowhere in the literal text, decoded or not, so it
    can delimit slots while the HTML is scanned and converted."""
    text = "".join(literals)
    decoded = html.unescape(text) if "&" in text else text
    for code in range(0xE000, 0xF900):
        marker = chr(code)
        if marker not in text and marker not in decoded:
            return marker
    raise BadInput("`bodyHtml` uses too many private-use characters", field="bodyHtml")


def _join(segments: list[str | _Merge], marker: str) -> str:
    return "".join(
        s if isinstance(s, str) else f"{marker}{_FIELD_PREFIX}{s.name}{marker}" for s in segments
    )


def _scheme(url: str) -> str:
    scheme, colon, _ = url.partition(":")
    return scheme.lower() if colon and scheme.isascii() and scheme.isalpha() else ""


def _trackable(raw_href: str, marker: str) -> str | None:
    """The URL a raw href value links to, when it is one we track."""
    if marker in raw_href or "{{" in raw_href:
        return None
    url = html.unescape(raw_href).strip()
    if not url or any(c <= " " or c == "\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


class _Prepared:
    """A parsed body made ready for rendering: its tracked links, and its HTML and text
    parts with every slot written between markers."""

    def __init__(self, segments: list[str | _Merge]) -> None:
        self.segments = segments
        self.marker = marker = _marker_for([s for s in segments if isinstance(s, str)])
        source = _join(segments, marker)
        reader = _Reader(source, marker)
        self.links = tuple(anchor.url for anchor in reader.anchors if anchor.url is not None)

        # Tracked hrefs become click slots.
        pieces, done = [], 0
        for anchor in reader.anchors:
            if anchor.number is not None:
                pieces += [
                    source[done : anchor.start],
                    f'"{marker}{_CLICK_PREFIX}{anchor.number}{marker}"',
                ]
                done = anchor.end
        pieces.append(source[done:])
        rewritten = "".join(pieces)
        unsubscribe = f"{marker}{_UNSUBSCRIBE}{marker}"
        tail = _FOOTER_HTML.format(unsubscribe=unsubscribe) + _PIXEL.format(
            open=f"{marker}{_OPEN}{marker}"
        )
        body_ends = list(_END_BODY.finditer(rewritten))
        if body_ends:
            at = body_ends[-1].start()
            rewritten = rewritten[:at] + tail + rewritten[at:]
        else:
            rewritten += tail
        self.html = rewritten
        text = reader.text()
        footer = _FOOTER_TEXT.format(unsubscribe=unsubscribe)
        self.text = text + footer if text else footer.lstrip("\n")


@dataclass
class _Anchor:
    start: int  # span of the href value in the source, quotes included
    end: int
    url: str | None  # set when tracked
    number: int | None  # the link number, when tracked
    href: str  # the href as written (unescaped), for the text part


# Paragraph-like elements: a blank line around them; line-like ones: their own line.
_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "center", "dl", "fieldset", "figure"),
        *("footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main"),
        *("nav", "p", "pre", "section", "table"),
    }
)
_LINES = frozenset({"div", "dd", "dt", "li", "tr", "caption", "figcaption"})
# Untracked links the text part still shows as "text (url)".
_SHOWN_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_DROPPED = frozenset({"script", "style", "title", "template", "head"})
# What may stand in a <head>: anything else starts the body, closed <head> or not.
_HEAD_CONTENT = frozenset(
    {"base", "link", "meta", "noscript", "script", "style", "template", "title"}
)


class _Reader(HTMLParser):
    """One pass over the (marked) body: the `<a>` tags with their hrefs' positions, and the
    plain-text version (paragraphs, rows and list items on their own lines, links as
    "text (url)", scripts, styles and the head dropped, entities decoded)."""

    def __init__(self, source: str, marker: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._marker = marker
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.anchors: list[_Anchor] = []
        self._out: list[str] = []
        self._pending_breaks = 0
        self._dropped: list[str] = []
        self._lists: list[list[int] | None] = []  # None for <ul>, [counter] for <ol>
        self._open_links: list[tuple[int, _Anchor | None]] = []
        self._tracked = 0
        self.feed(source)
        self.close()

    # --- structure -------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if "head" in self._dropped and tag not in _HEAD_CONTENT:
            # Browsers close an unclosed <head> here; so do we.
            self._dropped.clear()
        if tag in _DROPPED:
            self._dropped.append(tag)
            return
        if self._dropped:
            return
        if tag == "a":
            anchor = self._anchor()
            self._open_links.append((len(self._out), anchor))
        elif tag == "br":
            self._out.append("\n")
        elif tag in ("ul", "ol"):
            self._lists.append([0] if tag == "ol" else None)
            self._break(2 if len(self._lists) == 1 else 1)
        elif tag == "li":
            self._break(1)
            counter = self._lists[-1] if self._lists else None
            if counter is None:
                self._emit("- ")
            else:
                counter[0] += 1
                self._emit(f"{counter[0]}. ")
        elif tag in _BLOCKS:
            self._break(2)
        elif tag in _LINES:
            self._break(1)
        elif tag in ("td", "th"):
            self._emit(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br",):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._dropped:
            if tag == self._dropped[-1]:
                self._dropped.pop()
            return
        if tag == "a" and self._open_links:
            start, anchor = self._open_links.pop()
            self._close_link(start, anchor)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._break(2 if not self._lists else 1)
        elif tag in _BLOCKS:
            self._break(2)
        elif tag in _LINES:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        self._emit(_HTML_SPACE.sub(" ", data))

    # --- links -----------------------------------------------------------------------------
    def _anchor(self) -> _Anchor | None:
        tag_text = self.get_starttag_text() or ""
        line, column = self.getpos()
        offset = self._line_starts[line - 1] + column
        if self._source[offset : offset + len(tag_text)] != tag_text:
            return None  # cannot place it: leave the link as written
        for attribute in _ATTRIBUTE.finditer(tag_text, 2):
            if attribute[1].lower() != "href":
                continue
            if attribute[2] is None:
                return None
            raw = attribute[2]
            inner = raw[1:-1] if raw[:1] in ("'", '"') else raw
            url = _trackable(inner, self._marker)
            number = None
            if url is not None:
                number, self._tracked = self._tracked, self._tracked + 1
            anchor = _Anchor(
                start=offset + attribute.start(2),
                end=offset + attribute.end(2),
                url=url,
                number=number,
                href=html.unescape(inner).strip(),
            )
            self.anchors.append(anchor)
            return anchor
        return None

    def _close_link(self, start: int, anchor: _Anchor | None) -> None:
        if anchor is None:
            return
        if anchor.number is not None:
            target = f"{self._marker}{_CLICK_PREFIX}{anchor.number}{self._marker}"
        elif _scheme(anchor.href) in _SHOWN_SCHEMES:
            target = anchor.href
        else:
            return  # anchors, relative and script links mean nothing in plain text
        label = "".join(self._out[start:]).strip()
        self._emit(f" ({target})" if label else target)

    # --- text ------------------------------------------------------------------------------
    def _break(self, lines: int) -> None:
        self._pending_breaks = max(self._pending_breaks, lines)

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._pending_breaks:
            if self._out:
                self._out.append("\n" * self._pending_breaks)
            self._pending_breaks = 0
            text = text.lstrip(" ")
            if not text:
                return
        self._out.append(text)

    def text(self) -> str:
        lines = [line.strip(" ") for line in "".join(self._out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
