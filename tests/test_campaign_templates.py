"""Campaign templates and composed messages (R17): merge fields and their escaping, the
sandbox (only `{{ field }}` substitution), tracked and untracked links, the open pixel and
the unsubscribe footer, the plain-text part, and the RFC 5322 message the sender hands to
the mail server, read back with the standard `email` parser as a mail client would."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from api.campaigns.messages import compose, message_id
from api.campaigns.templates import MERGE_FIELDS, Body, Rendered, check, tracked_links
from api.core.errors import BadInput
from api.core.settings import get_settings

OPEN = "https://crm.example.com/t/o/41.sig"
UNSUBSCRIBE = "https://crm.example.com/u/41.sig"
FIELDS = {
    "first_name": "Zoë",
    "last_name": "O'Hara",
    "full_name": "Zoë O'Hara",
    "email": "zoe@client.example",
    "company": "Acme & Sons",
    "agent_name": "Ann Agent",
    "agent_email": "ann@office.example",
    "office_name": "Town Realty",
}


def click(n: int) -> str:
    return f"https://crm.example.com/t/c/41.{n}.sig"


def render(subject: str, body_html: str, **fields: Any) -> Rendered:
    return Body(subject, body_html).render(
        {**FIELDS, **fields}, open_url=OPEN, unsubscribe_url=UNSUBSCRIBE, click_url=click
    )


def message(rendered: Rendered, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "from_name": "Ann Agent",
        "from_address": "ann@office.example",
        "reply_to": "ann@office.example",
        "to_name": "Zoë O'Hara",
        "to_address": "zoe@client.example",
        "message_id": "<c7.d41@crm.example.com>",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    return compose(rendered, **{**arguments, **overrides})


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects, parsed.defects
    return parsed


def parts(parsed: EmailMessage) -> tuple[str, str]:
    """The decoded text and HTML parts, lines ending in LF as a client shows them."""
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    return (
        text.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def bad_input(subject: str, body_html: str) -> BadInput:
    with pytest.raises(BadInput) as caught:
        check(subject, body_html)
    with pytest.raises(BadInput):
        Body(subject, body_html)
    return caught.value


# --- merge fields ---------------------------------------------------------------------------------


def test_every_merge_field_renders_in_subject_html_and_text():
    body = " ".join(f"[{name}={{{{ {name} }}}}]" for name in sorted(MERGE_FIELDS))
    rendered = render("For {{ full_name }} at {{ company }}", f"<p>{body}</p>")

    assert rendered.subject == "For Zoë O'Hara at Acme & Sons"
    for name in MERGE_FIELDS:
        assert f"[{name}={FIELDS[name]}]" in rendered.text
    assert "[company=Acme &amp; Sons]" in rendered.html
    assert "[last_name=O&#39;Hara]" in rendered.html
    assert "[agent_email=ann@office.example]" in rendered.html


def test_missing_and_null_fields_render_empty():
    body = Body("Hi {{ first_name }}!", "<p>[{{ company }}] [{{ agent_name }}]</p>")
    rendered = body.render(
        {"company": None}, open_url=OPEN, unsubscribe_url=UNSUBSCRIBE, click_url=click
    )
    assert rendered.subject == "Hi !"
    assert "[] []" in rendered.html
    assert "[] []" in rendered.text
    assert "None" not in rendered.html + rendered.text


def test_a_script_in_a_field_arrives_escaped_in_html_and_as_written_in_text():
    hostile = "<script>alert(1)</script>"
    rendered = render(
        "Hello {{ first_name }}",
        '<p title="{{ last_name }}">Hello {{ first_name }}</p>',
        first_name=hostile,
        last_name='" onmouseover="steal()',
    )
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert 'title="&#34; onmouseover=&#34;steal()"' in rendered.html
    # The text part and the subject are not HTML: the value stays as the contact wrote it.
    assert f"Hello {hostile}" in rendered.text
    assert rendered.subject == f"Hello {hostile}"


def test_field_values_are_never_read_as_html_or_template_text():
    rendered = render(
        "{{ first_name }}",
        "<p>Dear {{ first_name }}, &#123;&#123; 7*7 &#125;&#125;</p>",
        first_name="<b>{{ 6*7 }}</b>",
    )
    # Converted once from the template, so a value's tags stay text, and nothing evaluates.
    assert "Dear <b>{{ 6*7 }}</b>, {{ 7*7 }}" in rendered.text
    assert "42" not in rendered.text + rendered.html and "49" not in rendered.text
    assert "&lt;b&gt;{{ 6*7 }}&lt;/b&gt;" in rendered.html


def test_line_breaks_in_a_field_never_reach_the_subject():
    rendered = render("Hi {{ first_name }}", "<p>x</p>", first_name="Bo\r\nBcc: all@x.example\n")
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert rendered.subject == "Hi Bo  Bcc: all@x.example"


def test_body_lists_the_fields_it_uses():
    assert Body("{{ first_name }}", "<p>{{ agent_name }}</p>").fields == {
        "first_name",
        "agent_name",
    }


# --- what a template may hold ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ first_name.__class__ }}",
        "{{ first_name['x'] }}",
        "{{ first_name|upper }}",
        "{{ first_name() }}",
        "{{ 9**9**9**9 }}",
        "{{ 'a' ~ first_name }}",
        "{{ lipsum(10**9) }}",
        "{% for i in range(10**12) %}{{ first_name }}{% endfor %}",
        "{% set first_name = 'x' %}",
        "{% if first_name %}x{% endif %}",
        "{% include 'secrets.txt' %}",
        "{% extends 'base.html' %}",
        "{% macro m() %}x{% endmacro %}",
        "{% with x = 1 %}{% endwith %}",
    ],
)
def test_anything_beyond_plain_substitution_is_refused_with_its_line(template: str):
    error = bad_input("Subject", f"<p>one</p>\n<p>two</p>\n{template}")
    assert error.field == "bodyHtml"
    assert "line 3" in error.message

    error = bad_input(template, "<p>body</p>")
    assert error.field == "subject"


@pytest.mark.parametrize("name", ["cycler", "range", "config", "self", "password", "firstName"])
def test_unknown_merge_fields_are_refused(name: str):
    error = bad_input("Subject", f"<p>Hi</p>\n<p>{{{{ {name} }}}}</p>")
    assert error.field == "bodyHtml"
    assert f"line 2: unknown merge field `{name}`" in error.message
    assert bad_input(f"Hi {{{{ {name} }}}}", "<p>x</p>").field == "subject"


@pytest.mark.parametrize(
    ("source", "line"),
    [("<p>\n\n{{ first_name </p>", 3), ("{{ }}", 1), ("a\n{% endfor %}", 2), ("a\n{{ x y }}", 2)],
)
def test_syntax_errors_name_the_line(source: str, line: int):
    error = bad_input("Subject", source)
    assert error.field == "bodyHtml"
    assert f"line {line}" in error.message


def test_deeply_nested_expressions_are_refused_not_crashing():
    error = bad_input("Subject", "{{ " + "(" * 5000 + "first_name" + ")" * 5000 + " }}")
    assert error.field == "bodyHtml"


def test_comments_whitespace_control_and_raw_blocks_are_allowed():
    rendered = render(
        "Hi {{- first_name -}} !",
        "<p>{# a note #}Hi {{ first_name }}, {% raw %}{{ literally }}{% endraw %}</p>",
    )
    assert rendered.subject == "HiZoë!"
    assert "Hi Zoë, {{ literally }}" in rendered.text


@pytest.mark.parametrize(
    ("subject", "body", "field", "words"),
    [
        ("", "<p>x</p>", "subject", "blank"),
        ("   ", "<p>x</p>", "subject", "blank"),
        ("x" * 301, "<p>x</p>", "subject", "300"),
        ("Hi\r\nBcc: x@y.example", "<p>x</p>", "subject", "line breaks"),
        ("Hi\tthere", "<p>x</p>", "subject", "control"),
        ("Subject", "", "bodyHtml", "blank"),
        ("Subject", " \n ", "bodyHtml", "blank"),
        ("Subject", "x" * 500_001, "bodyHtml", "500 kB"),
        ("Subject", "é" * 250_001, "bodyHtml", "500 kB"),
        ("Subject", "<p>\x00</p>", "bodyHtml", "NUL"),
        ("Subject", "<p>\ud800</p>", "bodyHtml", "Unicode"),
    ],
)
def test_blank_oversized_and_unsafe_text_is_refused(subject, body, field, words):
    error = bad_input(subject, body)
    assert error.field == field
    assert words in error.message


def test_limits_themselves_are_accepted():
    check("x" * 300, "x" * 500_000)


# --- links, pixel and footer ----------------------------------------------------------------------

LINKS = """<html><head><title>News</title></head><body>
<p><a href="https://example.com/one?a=1&amp;b=2">One</a>
<a href='http://example.com/two'>Two</a>
<A HREF=https://example.com/three class="x">Three</A>
<a class="btn" data-href="https://nope.example" href=" https://example.com/four ">Four</a>
<a href="mailto:agent@office.example">Mail</a> <a href="tel:+441234">Call</a>
<a href="#top">Top</a> <a href="/relative">Rel</a> <a href="//cdn.example/x">Proto</a>
<a href="javascript:alert(1)">JS</a> <a href="ftp://files.example/x">FTP</a>
<a href="https://example.com/?who={{ email }}">Personal</a>
<a href="https://example.com/with space">Space</a> <a>No href</a></p>
<!-- <a href="https://example.com/commented">x</a> -->
<script>var s = '<a href="https://example.com/script">x</a>';</script>
<p><a href="https://example.com/one?a=1&amp;b=2">One again</a></p>
</body></html>"""
TRACKED = (
    "https://example.com/one?a=1&b=2",
    "http://example.com/two",
    "https://example.com/three",
    "https://example.com/four",
    "https://example.com/one?a=1&b=2",
)


def test_tracked_links_are_absolute_http_hrefs_in_order():
    assert tracked_links(LINKS) == TRACKED
    assert Body("Subject", LINKS).links == TRACKED


def test_tracked_links_of_a_body_that_does_not_parse_are_none():
    assert tracked_links('<a href="https://example.com">{{ x.y }}</a>') == ()
    assert tracked_links('<a href="https://example.com">{% for %}</a>') == ()


def test_tracked_hrefs_become_click_links_and_the_rest_stay_as_written():
    rendered = render("Subject", LINKS)
    html = rendered.html
    for number in range(len(TRACKED)):
        assert html.count(f'"{click(number)}"') == 1
    assert html.count("https://crm.example.com/t/c/") == len(TRACKED)
    assert "example.com/one" not in html and "example.com/three" not in html
    assert 'data-href="https://nope.example"' in html
    for untouched in (
        'href="mailto:agent@office.example"',
        'href="tel:+441234"',
        'href="#top"',
        'href="/relative"',
        'href="//cdn.example/x"',
        'href="ftp://files.example/x"',
        'href="https://example.com/?who=zoe@client.example"',
        'href="https://example.com/with space"',
        '<!-- <a href="https://example.com/commented">x</a> -->',
        "var s = '<a href=\"https://example.com/script\">x</a>';",
    ):
        assert untouched in html


def test_the_open_pixel_ends_the_body_and_the_footer_unsubscribes():
    pixel = f'<img src="{OPEN}" width="1" height="1" alt="">'
    html = render("Subject", "<html><body><p>Hi</p></body></html>").html
    assert html.endswith(pixel + "</body></html>")
    assert html.count(pixel) == 1
    assert f'href="{UNSUBSCRIBE}"' in html
    assert html.index(f'href="{UNSUBSCRIBE}"') < html.index(pixel)

    fragment = render("Subject", "<p>Hi</p>").html
    assert fragment.startswith("<p>Hi</p>")
    assert fragment.endswith(pixel)

    text = render("Subject", "<p>Hi</p>").text
    assert text.startswith("Hi\n")
    assert text.rstrip().endswith(f"Unsubscribe: {UNSUBSCRIBE}")
    assert OPEN not in text


def test_urls_in_the_html_are_escaped_for_their_attribute():
    body = Body("Subject", '<p><a href="https://example.com/x">x</a></p>')
    rendered = body.render(
        FIELDS,
        open_url="https://t.example/o?a=1&b=2",
        unsubscribe_url="https://t.example/u?a=1&b=2",
        click_url=lambda n: f"https://t.example/c?n={n}&x=1",
    )
    assert 'href="https://t.example/c?n=0&amp;x=1"' in rendered.html
    assert 'src="https://t.example/o?a=1&amp;b=2"' in rendered.html
    assert "Unsubscribe: https://t.example/u?a=1&b=2" in rendered.text


# --- the plain-text part ---------------------------------------------------------------------


def test_the_text_part_is_the_html_read_as_text():
    text = render(
        "Subject",
        """<!doctype html><html><head><title>Title here</title>
        <style>p { color: red }</style></head><body>
        <h1>Spring&nbsp;listings</h1>
        <p>Dear   {{ first_name }},
           new homes &amp; flats&hellip; caf&eacute;</p>
        <p>Line one<br>Line two<br/>Line three</p>
        <ul><li>First</li><li>Second</li></ul>
        <ol><li>Alpha</li><li>Beta</li></ol>
        <table><tr><td>Price</td><td>£300k</td></tr></table>
        <p>See <a href="https://example.com/homes">our homes</a>,
           <a href="mailto:ann@office.example">write</a>,
           <a href="#top">top</a>, <a href="https://example.com/bare"></a></p>
        <script>document.write("hidden")</script>
        </body></html>""",
    ).text
    assert text.startswith("Spring\xa0listings\n\nDear Zoë,")
    assert "Dear Zoë, new homes & flats… café\n\nLine one\nLine two\nLine three\n\n" in text
    assert "- First\n- Second\n\n1. Alpha\n2. Beta\n\n" in text
    assert "Price £300k" in text
    assert f"See our homes ({click(0)}), write (mailto:ann@office.example), top, {click(1)}" in text
    for hidden in ("Title here", "color: red", "hidden", "<", "&amp;", "&eacute;"):
        assert hidden not in text.split("\n-- \n")[0]
    assert "\n\n\n" not in text


# --- the composed message -------------------------------------------------------------------------


def test_the_message_has_the_headers_a_bulk_sender_must_have():
    rendered = render("Homes for {{ first_name }}", "<p>Hello {{ first_name }}</p>")
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    parsed = parse(message(rendered, date=when))

    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"] == "<c7.d41@crm.example.com>"
    assert parsed["Reply-To"] == "ann@office.example"
    assert parsed["From"] == "Ann Agent <ann@office.example>"
    assert parsed["To"].addresses[0].display_name == "Zoë O'Hara"
    assert parsed["To"].addresses[0].addr_spec == "zoe@client.example"
    assert parsed["Subject"] == "Homes for Zoë"
    assert parsed["Date"].datetime == when
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in parsed.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parsed.iter_parts())
    text, html = parts(parsed)
    assert text == rendered.text
    assert html == rendered.html


def test_reply_to_only_when_given():
    parsed = parse(message(render("S", "<p>x</p>"), reply_to=None))
    assert "Reply-To" not in parsed


def test_names_outside_ascii_are_encoded_and_read_back():
    data = message(
        render("Ваши новые дома, {{ first_name }}", "<p>x</p>"),
        from_name="Агентство «Дом» Zoë",
        to_name='Smith, John "JJ" <boss@evil.example>',
    )
    headers = data.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    parsed = parse(data)
    sender = parsed["From"].addresses
    assert len(sender) == 1
    assert sender[0].display_name == "Агентство «Дом» Zoë"
    assert sender[0].addr_spec == "ann@office.example"
    recipients = parsed["To"].addresses
    assert len(recipients) == 1
    assert recipients[0].display_name == 'Smith, John "JJ" <boss@evil.example>'
    assert recipients[0].addr_spec == "zoe@client.example"
    assert parsed["Subject"] == "Ваши новые дома, Zoë"


def test_line_breaks_in_names_and_fields_cannot_add_a_header():
    rendered = render("Hi {{ first_name }}", "<p>x</p>", first_name="Bo\r\nBcc: everyone@x.example")
    data = message(
        rendered,
        from_name="Ann\r\nBcc: a@x.example",
        to_name="Bo\nX-Injected: yes\r\n\r\n<p>body</p>",
    )
    parsed = parse(data)
    assert "Bcc" not in parsed
    assert "X-Injected" not in parsed
    assert parsed["Subject"] == "Hi Bo  Bcc: everyone@x.example"
    assert parsed["From"].addresses[0].display_name == "Ann  Bcc: a@x.example"
    assert parsed["To"].addresses[0].addr_spec == "zoe@client.example"


@pytest.mark.parametrize(
    "overrides",
    [
        {"to_address": "zoe@client.example\r\nBcc: x@y.example"},
        {"to_address": "Zoe <zoe@client.example>"},
        {"from_address": "ann@office.example>, evil@x.example"},
        {"reply_to": "a@b.example\nBcc: c@d.example"},
        {"to_address": "not-an-address"},
        {"message_id": "<c7.d41@crm.example.com>\r\nBcc: x@y.example"},
        {"message_id": "c7.d41"},
        {"unsubscribe_url": "https://crm.example.com/u/1>\r\nBcc: x@y.example"},
        {"unsubscribe_url": "javascript:alert(1)"},
    ],
)
def test_addresses_ids_and_urls_that_could_break_a_header_are_refused(overrides):
    with pytest.raises(ValueError):
        message(render("S", "<p>x</p>"), **overrides)


def test_a_long_subject_is_folded_and_reads_back_whole():
    subject = " ".join(["word"] * 55) + " {{ company }}"
    data = message(render(subject, "<p>x</p>"))
    headers = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in headers)
    assert parse(data)["Subject"] == " ".join(["word"] * 55) + " Acme & Sons"


def test_a_subject_that_looks_encoded_is_not_decoded_by_clients():
    rendered = render("=?utf-8?b?SGFja2Vk?= {{ first_name }}", "<p>x</p>")
    assert parse(message(rendered))["Subject"] == "=?utf-8?b?SGFja2Vk?= Zoë"


def test_a_huge_one_line_body_keeps_every_line_short():
    cell = '<td style="padding:8px;color:#333">{{ first_name }} = caf\u00e9 \u20ac</td>'
    body_html = "<table><tr>" + cell * 2500 + "</tr></table>"
    assert len(body_html) > 100_000 and "\n" not in body_html
    rendered = render("Subject", body_html, first_name="x" * 300 + " =")
    data = message(rendered)
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    text, html = parts(parse(data))
    assert html == rendered.html
    assert text == rendered.text


def test_a_mostly_non_latin_body_goes_base64_and_reads_back():
    body_html = "<p>" + "Здравствуйте, {{ first_name }}! " * 40 + "</p>"
    rendered = render("Subject", body_html)
    data = message(rendered)
    assert b"Content-Transfer-Encoding: base64" in data
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    text, html = parts(parse(data))
    assert (text, html) == (rendered.text, rendered.html)


def test_any_template_and_values_read_back_exactly():
    # Seeded, so a failure repeats: pieces that stress quoted-printable (=, trailing
    # spaces, long runs, non-ASCII) around slots in every position.
    pieces = [
        "a", " ", "=", "\t", "é", "Ж", "€", "\n", "<p>", "</p>", "<br>", "&amp;", "x" * 80,
        "=" * 30, " \n", "{{ first_name }}", "{{ company }}",
        '<a href="https://x.example/p?a=1&amp;b=2">link</a>',
    ]  # fmt: skip
    values = ["", "Zoë", "a=b", " trailing ", "y" * 200, "line\nbreak", "Ж" * 50, "=" * 80]
    generator = random.Random(20260301)
    checked = 0
    while checked < 300:
        source = "".join(generator.choice(pieces) for _ in range(generator.randint(1, 60)))
        if not source.strip():
            continue
        fields = {"first_name": generator.choice(values), "company": generator.choice(values)}
        rendered = render("S {{ first_name }}", source, **fields)
        data = message(rendered)
        body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
        assert max(len(line) for line in body_lines) <= 76, source
        assert not any(line.endswith((b" ", b"\t")) for line in body_lines), source
        assert parts(parse(data)) == (rendered.text, rendered.html), (source, fields)
        checked += 1


def test_message_id_names_the_campaign_and_delivery_at_the_public_host(monkeypatch):
    monkeypatch.setattr(get_settings(), "public_base_url", "https://crm.example.org:8443")
    assert message_id(41, 7) == "<c7.d41@crm.example.org>"
    monkeypatch.setattr(get_settings(), "public_base_url", "http://localhost:8000")
    assert message_id(1, 2) == "<c2.d1@localhost>"
