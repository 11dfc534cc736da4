"""HTTP middleware of the app, outermost first: CORS for the SPA origins in CORS_ORIGINS, gzip
above GZIP_MIN_BYTES, and Cache-Control: no-store on every answer to a request that carries
credentials or changes something."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.settings import Settings

# Browsers keep a preflight answer this long (Chromium caps it at two hours).
CORS_MAX_AGE_SECONDS = 7200
# A 30 KB page of contacts: level 1 sends 18% of it for ~0.3 ms of CPU; level 6 sends 15%
# for 70% more CPU, and level 9 (Starlette's default) 15% for 2.5 times as much.
GZIP_LEVEL = 1
# CSV exports go out as they are: with their Content-Length (download progress), resumable
# by Range under one ETag, and not compressed on the web process's event loop.
GZIP_EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/csv")


def middleware(settings: Settings) -> list[Middleware]:
    """The app's middleware for these settings; CORS and gzip are left out when off."""
    stack = []
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                # X-Request-ID both ways: an SPA may send its own and read the one answered,
                # to quote in a support request.
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID"],
                # Bearer tokens, never cookies: nothing ambient for another page to borrow.
                allow_credentials=False,
                max_age=CORS_MAX_AGE_SECONDS,
            )
        )
    if settings.gzip_min_bytes:
        stack.append(
            Middleware(
                GZipMiddleware,
                minimum_size=settings.gzip_min_bytes,
                compresslevel=GZIP_LEVEL,
                exclude_content_types=GZIP_EXCLUDED,
            )
        )
    stack.append(Middleware(NoStoreForCallers))
    return stack


class NoStoreForCallers:
    """`Cache-Control: no-store` on the answer to any request with an Authorization header
    or a method other than GET and HEAD (a login answers a token), whatever produced it:
    GraphQL results and refusals, multipart uploads, plain-text 400s and 405s. A route's
    own Cache-Control stays when it already says no-store."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _needs_no_store(scope):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != b"cache-control" or b"no-store" in value.lower()
                ]
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_no_store)


def _needs_no_store(scope: Scope) -> bool:
    if scope["method"] not in ("GET", "HEAD"):
        return True
    return any(name == b"authorization" for name, _ in scope["headers"])
