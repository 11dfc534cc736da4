"""HTTP routes of campaign messages (R17): the open pixel, tracked clicks and the
unsubscribe page. The service is api.campaigns.tracking.

No login: the signed token in the link is the credential (api.campaigns.links). Anything but
a genuine token answers 404, whatever was wrong with it, and records nothing.

The unsubscribe link shows a page on GET and changes nothing there, since mail scanners
follow links. A POST unsubscribes: the page's button and an RFC 8058 one-click POST (body
`List-Unsubscribe=One-Click`, with no cookies, login, CSRF token or confirmation) alike.
The pages are plain HTML: no script, no external assets, styles inline.
"""

from __future__ import annotations

import base64

from jinja2 import DictLoader, Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from api.campaigns import links, tracking

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

# The token is a credential: keep it out of caches and Referer headers.
_NO_STORE = {
    "Cache-Control": "no-store, private",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS = {
    **_NO_STORE,
    # Nothing but the inline styles and a form posting back here; never inside a frame,
    # so the button cannot be clicked through someone else's page.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }}</title>
<style>
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; padding: 1rem; background: #f4f4f5; color: #18181b;
  font: 1.0625rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  /* A long address or office name wraps instead of widening the page on a phone. */
  overflow-wrap: anywhere; }
main { max-width: 34rem; margin: 2rem auto; padding: 1.5rem; background: #fff;
  border-radius: 0.5rem; }
h1 { margin-top: 0; font-size: 1.5rem; line-height: 1.25; }
button { font: inherit; min-height: 2.75rem; padding: 0.625rem 1.25rem; border: 0;
  border-radius: 0.375rem; background: #1d4ed8; color: #fff; cursor: pointer; }
button:hover { background: #1e3a8a; }
button:focus-visible { outline: 3px solid #b45309; outline-offset: 3px; }
</style>
</head>
<body>
<main>
{% block main %}{% endblock %}
</main>
</body>
</html>
""",
    "ask.html": """{% extends "base.html" %}
{% block main %}
<h1>Unsubscribe from {{ office }} emails</h1>
{% if address %}<p>Emails from {{ office }} to <strong>{{ address }}</strong> will stop.</p>
{% else %}<p>Emails from {{ office }} to you will stop.</p>{% endif %}
<form method="post">
<button type="submit" name="confirm" value="1">Unsubscribe</button>
</form>
{% endblock %}
""",
    "done.html": """{% extends "base.html" %}
{% block main %}
<h1>You are unsubscribed</h1>
<p>{% if address %}<strong>{{ address }}</strong> will get{% else %}You will get{% endif %}
no more emails from {{ office }}.</p>
{% endblock %}
""",
    "not_found.html": """{% extends "base.html" %}
{% block main %}
<h1>This link does not work</h1>
<p>It may have been cut short when it was copied. Open it from the email again.</p>
{% endblock %}
""",
}
_pages = Environment(loader=DictLoader(_TEMPLATES), autoescape=True)


def _page(name: str, status_code: int = 200, **values: object) -> HTMLResponse:
    html = _pages.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)


def _not_found_page() -> HTMLResponse:
    return _page("not_found.html", 404, title="Link not found")


def _not_found() -> Response:
    return PlainTextResponse("Not found", status_code=404, headers=_NO_STORE)


async def open_pixel(request: Request) -> Response:
    if not await tracking.record_open(request.path_params["token"]):
        return _not_found()
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


async def click(request: Request) -> Response:
    target = await tracking.record_click(request.path_params["token"])
    if target is None:
        return _not_found()
    return RedirectResponse(target, status_code=302, headers=_NO_STORE)


async def unsubscribe_page(request: Request) -> Response:
    view = await tracking.unsubscribe_view(request.path_params["token"])
    if view is None:
        return _not_found_page()
    if view.already_unsubscribed:
        return _page(
            "done.html",
            title=f"Unsubscribed from {view.office_name} emails",
            office=view.office_name,
            address=view.masked_email,
        )
    return _page(
        "ask.html",
        title=f"Unsubscribe from {view.office_name} emails",
        office=view.office_name,
        address=view.masked_email,
    )


async def unsubscribe(request: Request) -> Response:
    # Whatever the body (the button's form or `List-Unsubscribe=One-Click`), a POST with a
    # genuine token unsubscribes: RFC 8058 allows no further step.
    view = await tracking.unsubscribe(request.path_params["token"])
    if view is None:
        return _not_found_page()
    return _page(
        "done.html",
        title=f"Unsubscribed from {view.office_name} emails",
        office=view.office_name,
        address=view.masked_email,
    )


ROUTES: list[Route] = [
    Route(links.ROUTES[links.OPEN], open_pixel, methods=["GET"]),
    Route(links.ROUTES[links.CLICK], click, methods=["GET"]),
    Route(links.ROUTES[links.UNSUBSCRIBE], unsubscribe_page, methods=["GET"]),
    Route(links.ROUTES[links.UNSUBSCRIBE], unsubscribe, methods=["POST"]),
]
