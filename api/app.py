"""The ASGI application: GraphQL (GraphiQL in a browser) at /graphql, its subscriptions over
WebSockets (graphql-transport-ws) on the same path, and /healthz."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from api import graphiql
from api.campaigns.routes import ROUTES as campaign_routes
from api.core import database, events, loaders, metrics
from api.core.context import Context
from api.core.database import close_db, init_db
from api.core.errors import ServiceUnavailable, Unauthenticated
from api.core.health import readyz
from api.core.http import middleware as http_middleware
from api.core.persisted_queries import PersistedQueriesView
from api.core.settings import get_settings
from api.schema import schema
from api.transfers.routes import ROUTES as transfer_routes
from api.users.auth import user_for_token

log = logging.getLogger("api")


@dataclass
class SocketContext(Context):
    """A WebSocket connection's context, shared by its operations. Browsers cannot set
    headers on a WebSocket, so the token comes in connection_init's payload
    (`{"Authorization": "Bearer <token>"}`); the handler stores that payload here."""

    connection_params: dict[str, Any] = field(default_factory=dict)


async def _authenticate(ctx: Context, header: str) -> None:
    """The caller an Authorization value names, or why it names none (said in the error)."""
    if not header:
        return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        ctx.auth_problem = "Send the token as 'Authorization: Bearer <token>'"
        return
    try:
        ctx.user = await user_for_token(token.strip())
    except Unauthenticated as exc:
        ctx.auth_problem = exc.message


class SocketHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with DataLoaders of its own for each operation: the context
    lives as long as the connection, and cached rows must not outlive an operation."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        loaders.begin()
        await super().run_operation(operation)


class CrmGraphQL(PersistedQueriesView, GraphQL):
    graphql_transport_ws_handler_class = SocketHandler

    async def get_context(self, request: Request, response: Response | None = None) -> Context:
        if isinstance(request, WebSocket):
            # The caller is known once connection_init arrives (on_ws_connect).
            return SocketContext(request=request, user=None)  # type: ignore[arg-type]
        ctx = Context(request=request, user=None)
        await _authenticate(ctx, request.headers.get("authorization", ""))
        # Cache-Control: no-store on authenticated answers comes from api.core.http.
        return ctx

    async def on_ws_connect(self, context: Context) -> UnsetType:
        # Always acknowledged: without a valid token each subscription answers
        # UNAUTHENTICATED, as a query over HTTP would.
        params = getattr(context, "connection_params", None) or {}
        header = next((v for k, v in params.items() if k.lower() == "authorization"), "")
        await _authenticate(context, header if isinstance(header, str) else "")
        return UNSET

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response | WebSocket:
        try:
            return await super().run(request, context, root_value)
        except Exception as exc:
            # The caller's token is read (get_context) before the schema's error handling:
            # a database outage there answers as one inside a resolver does (ErrorCodes).
            if isinstance(request, WebSocket) or not database.is_unavailable(exc):
                raise
            log.warning("database unavailable while reading the caller: %s", type(exc).__name__)
            error = ServiceUnavailable()
            metrics.count_graphql_errors([error.code])
            body = {"errors": [{"message": error.message, "extensions": error.extensions}]}
            return Response(self.encode_json(body), media_type="application/json")

    async def render_graphql_ide(self, request: Request) -> Response:
        # GraphiQL's scripts from this server once fetched, not from a CDN (api.graphiql).
        return graphiql.page_response(request)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def execute_single(  # type: ignore[override]
        self, *, request_data: GraphQLRequestData, **kwargs: Any
    ) -> ExecutionResult:
        # Timed by operation name (api.core.metrics bounds the names it keeps).
        started = time.perf_counter()
        try:
            return await super().execute_single(request_data=request_data, **kwargs)
        finally:
            name = metrics.operation_name(request_data.operation_name, request_data.query)
            metrics.observe_graphql(name, time.perf_counter() - started)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        # Syntax errors end the request before schema extensions run; they get a code here.
        for error in response.get("errors") or ():
            error.setdefault("extensions", {}).setdefault("code", "BAD_USER_INPUT")
        if response.get("errors"):
            metrics.count_graphql_errors(e["extensions"]["code"] for e in response["errors"])
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
            await events.close()
            await close_db()

    # Multipart (the GraphQL multipart request spec) carries CSV uploads; Strawberry then
    # refuses "simple" cross-site form posts unless they carry a preflighted content type.
    # GET runs persisted queries only, never a document in the URL (PersistedQueriesView).
    # Subscriptions speak graphql-transport-ws only; browsers may open the socket from this
    # origin and the CORS_ORIGINS ones (non-browser clients send no Origin and are let in).
    graphql = CrmGraphQL(
        schema,
        graphql_ide="graphiql",
        allow_queries_via_get=False,
        multipart_uploads_enabled=True,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        allowed_origins=get_settings().cors_origins,
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
            *transfer_routes,
            *campaign_routes,
            *graphiql.ROUTES,
        ],
        # Outermost: the request id and the timing cover everything the others do.
        middleware=[Middleware(metrics.ObserveRequests), *http_middleware(get_settings())],
        lifespan=lifespan,
    )
