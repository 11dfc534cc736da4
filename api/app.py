"""The ASGI application: GraphQL (GraphiQL in a browser) at /graphql and /healthz."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from api.campaigns.routes import ROUTES as campaign_routes
from api.core.context import Context
from api.core.database import close_db, init_db
from api.core.errors import Unauthenticated
from api.schema import schema
from api.transfers.routes import ROUTES as transfer_routes
from api.users.auth import user_for_token

log = logging.getLogger("api")


class CrmGraphQL(GraphQL):
    async def get_context(self, request: Request, response: Response | None = None) -> Context:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        ctx = Context(request=request, user=None)
        if header:
            if scheme.lower() != "bearer" or not token.strip():
                ctx.auth_problem = "Send the token as 'Authorization: Bearer <token>'"
            else:
                try:
                    ctx.user = await user_for_token(token.strip())
                except Unauthenticated as exc:
                    ctx.auth_problem = exc.message
        if response is not None and header:
            response.headers["Cache-Control"] = "no-store"
        return ctx

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        # Syntax errors end the request before schema extensions run; they get a code here.
        for error in response.get("errors") or ():
            error.setdefault("extensions", {}).setdefault("code", "BAD_USER_INPUT")
        return response


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(*, embedded_workers: bool = True) -> Starlette:
    """The app. `embedded_workers` runs the Dramatiq worker and the clock in this process
    when REDIS_URL is unset (the embedded default)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        from workers.broker import EmbeddedWorker, setup_broker, uses_redis
        from workers.clock import build_scheduler

        await init_db()
        broker = setup_broker()
        worker = scheduler = None
        if embedded_workers and not uses_redis():
            worker = EmbeddedWorker(broker)
            worker.start()
            scheduler = build_scheduler()
            scheduler.start()
        # What start-up allocated lives as long as the process: keep the collector off it,
        # or its full passes pause requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield {}
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            if worker is not None:
                await worker.stop()
            await close_db()

    # Multipart (the GraphQL multipart request spec) carries CSV uploads; Strawberry then
    # refuses "simple" cross-site form posts unless they carry a preflighted content type.
    graphql = CrmGraphQL(
        schema, graphql_ide="graphiql", allow_queries_via_get=False, multipart_uploads_enabled=True
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *transfer_routes,
            *campaign_routes,
        ],
        lifespan=lifespan,
    )
