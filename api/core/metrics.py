"""Prometheus metrics: what is measured, the HTTP middleware that times requests and gives
each one its request id, and the /metrics exposition (of the web and worker processes).

Processes started by `crm` (serve and worker) record into prometheus_client's multiprocess
files under METRICS_DIR (DATA_DIR/metrics by default; the command sets
PROMETHEUS_MULTIPROC_DIR before anything imports this module), so the web's /metrics adds
up every process of the machine: uvicorn's and Dramatiq's worker processes alike. A worker
on another machine shows its own with `crm worker --metrics-port N`. A process started
otherwise (tests, a bare uvicorn) keeps its metrics in memory and shows only its own.

Recording stays within a few microseconds a request: latencies go into per-label tallies
written out in bulk (see _Tally), and every label has a bounded set of values (route
templates, not paths; a capped set of operation names; known methods).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response

from api.core.logs import REQUEST_ID, accept_request_id

log = logging.getLogger("api.metrics")

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ACTOR_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

HTTP_SECONDS = Histogram(
    "crm_http_request_duration_seconds",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
GRAPHQL_SECONDS = Histogram(
    "crm_graphql_operation_duration_seconds",
    "GraphQL operations (parse, validation, execution) by operation name.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "crm_graphql_errors", "GraphQL errors sent to clients, by extensions.code.", ["code"]
)
ACTOR_SECONDS = Histogram(
    "crm_actor_duration_seconds",
    "Dramatiq actor runs by actor, failed ones included.",
    ["actor"],
    buckets=_ACTOR_BUCKETS,
)
ACTOR_FAILURES = Counter(
    "crm_actor_failures", "Actor runs that raised (a requested Retry is no failure).", ["actor"]
)
CAMPAIGN_MESSAGES = Counter(
    "crm_campaign_messages",
    "Campaign messages by outcome: sent, failed, bounced, unknown, retried.",
    ["outcome"],
)
CAMPAIGN_OPENS = Counter("crm_campaign_opens", "First opens of campaign messages.")
CAMPAIGN_CLICKS = Counter("crm_campaign_clicks", "First clicks in campaign messages.")
CAMPAIGN_UNSUBSCRIBES = Counter(
    "crm_campaign_unsubscribes", "Contacts unsubscribed through a campaign message."
)

# --- recording ---------------------------------------------------------------------------

# Writing an observation into prometheus_client costs several microseconds (two locked
# writes, into a memory-mapped file in multiprocess mode). Requests add theirs to a tally
# instead: a bucket count and a sum per label set, written out at most FLUSH_SECONDS later
# on the same event loop, before this process answers /metrics, and at exit.
FLUSH_SECONDS = 1.0


class _Tally:
    """One labelled histogram's observations not yet written out."""

    __slots__ = ("child", "counts", "pending", "total", "upper_bounds")

    def __init__(self, child: Any) -> None:
        self.child = child
        # prometheus_client's own bucket layout: one count per upper bound (+Inf last),
        # each observation in the first bucket whose bound is not below it.
        self.upper_bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self.upper_bounds)
        self.total = 0.0
        self.pending = False

    def add(self, seconds: float) -> None:
        self.counts[bisect_left(self.upper_bounds, seconds)] += 1
        self.total += seconds
        if not self.pending:
            self.pending = True
            _unwritten.append(self)
            if len(_unwritten) == 1:
                _schedule_flush()

    def write(self) -> None:
        counts, total = self.counts, self.total
        self.counts, self.total, self.pending = [0] * len(counts), 0.0, False
        self.child._sum.inc(total)
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


_unwritten: list[_Tally] = []


def _schedule_flush() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on an event loop: nothing will come back for it
        flush()
        return
    loop.call_later(FLUSH_SECONDS, flush)


def flush() -> None:
    """Write every tallied observation of this process out to prometheus_client."""
    while _unwritten:
        _unwritten.pop().write()


atexit.register(flush)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_http_tallies: dict[tuple[str, str, int], _Tally] = {}


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request: `route` is the matched route's template."""
    key = (route, method, status)
    tally = _http_tallies.get(key)
    if tally is None:
        label = method if method in _METHODS else "OTHER"
        tally = _http_tallies[key] = _Tally(HTTP_SECONDS.labels(route, label, str(status)))
    tally.add(seconds)


_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
_NAMED_OPERATION = re.compile(r"\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")
# Clients name their operations freely: past this many names, new ones count as "other".
MAX_OPERATION_NAMES = 200
_graphql_tallies: dict[str | None, _Tally] = {}


def operation_name(provided: str | None, query: str | None) -> str | None:
    """The operation's name: the one the request gives, else the document's first."""
    if provided:
        return provided
    if query:
        found = _NAMED_OPERATION.search(query)
        if found:
            return found[1]
    return None


def observe_graphql(operation: str | None, seconds: float) -> None:
    """One GraphQL operation (None: unnamed)."""
    tally = _graphql_tallies.get(operation)
    if tally is None:
        tally = _graphql_tally(operation)
    tally.add(seconds)


def _graphql_tally(operation: str | None) -> _Tally:
    if operation is None:
        label = "anonymous"
    elif len(_graphql_tallies) < MAX_OPERATION_NAMES and _OPERATION_NAME.fullmatch(operation):
        label = operation
    else:
        # Not kept under its own name: a flood of invented names adds nothing.
        return _graphql_tallies.get("other") or _graphql_tallies.setdefault(
            "other", _Tally(GRAPHQL_SECONDS.labels("other"))
        )
    tally = _graphql_tallies[operation] = _Tally(GRAPHQL_SECONDS.labels(label))
    return tally


_CODE = re.compile(r"[A-Z_]{1,40}")


def count_graphql_errors(codes: Iterable[str]) -> None:
    """The errors of one response, by their extensions.code."""
    for code in codes:
        GRAPHQL_ERRORS.labels(code if _CODE.fullmatch(code) else "OTHER").inc()


def observe_actor(actor: str, seconds: float, *, failed: bool) -> None:
    """One actor run."""
    ACTOR_SECONDS.labels(actor).observe(seconds)
    if failed:
        ACTOR_FAILURES.labels(actor).inc()


# A delivery's state after a send attempt -> the outcome counted (PENDING: tried again later).
_OUTCOMES = {
    "SENT": "sent",
    "FAILED": "failed",
    "BOUNCED": "bounced",
    "UNKNOWN": "unknown",
    "PENDING": "retried",
}


def campaign_message(state: str, count: int = 1) -> None:
    """`count` campaign messages' send attempts ended with their deliveries in `state`."""
    if count:
        CAMPAIGN_MESSAGES.labels(_OUTCOMES.get(state, "failed")).inc(count)


# --- the HTTP middleware --------------------------------------------------------------------


class ObserveRequests:
    """Pure ASGI middleware: a request id per HTTP request (a sane incoming X-Request-ID,
    else a new one) in the context of everything the request does and in the response's
    X-Request-ID header, and the request's latency by route template."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_request_id(incoming)
        header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe_http(template, scope["method"], status, time.perf_counter() - started)
            REQUEST_ID.reset(token)


# --- exposition -----------------------------------------------------------------------------


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def _process_registry() -> CollectorRegistry:
    """Every process's metrics in multiprocess mode, else this process's own."""
    path = _multiprocess_dir()
    if not path:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


class _Collected:
    """A collector of metric families gathered beforehand (asynchronously)."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterable[Any]:
        return self.families


async def queue_depths() -> dict[tuple[str, str], int]:
    """Messages waiting per (queue, "ready" | "delayed"): Redis list lengths when REDIS_URL
    is set, else the in-process broker's queues."""
    from dramatiq.common import dq_name, q_name

    from api.core.settings import get_settings
    from workers.broker import setup_broker

    broker = setup_broker()
    url = get_settings().redis_url
    if not url:
        return {
            (q_name(name), "delayed" if name.endswith(".DQ") else "ready"): queue.qsize()
            for name, queue in getattr(broker, "queues", {}).items()
        }
    import redis.asyncio as redis

    queues = sorted(broker.get_declared_queues())
    namespace = getattr(broker, "namespace", "dramatiq")
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(f"{namespace}:{queue}")
                pipe.llen(f"{namespace}:{dq_name(queue)}")
            lengths = await pipe.execute()
    finally:
        await client.aclose()
    depths = {}
    for i, queue in enumerate(queues):
        depths[(queue, "ready")] = lengths[2 * i]
        depths[(queue, "delayed")] = lengths[2 * i + 1]
    return depths


async def _queue_depth_family() -> list[Any]:
    try:
        depths = await queue_depths()
    except Exception as exc:  # a scrape still shows everything else
        log.warning("queue depths unavailable: %s", type(exc).__name__)
        return []
    family = GaugeMetricFamily(
        "crm_queue_messages", "Dramatiq messages waiting, by queue.", labels=["queue", "kind"]
    )
    for (queue, kind), size in sorted(depths.items()):
        family.add_metric([queue, kind], size)
    return [family]


async def render() -> bytes:
    """The text exposition: every process's metrics and the queue depths now."""
    flush()
    scrape = CollectorRegistry()
    scrape.register(_Collected(await _queue_depth_family()))
    return generate_latest(_process_registry()) + generate_latest(scrape)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics (Prometheus text format)."""
    return Response(
        await render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )


def serve_worker_metrics() -> int:
    """A Dramatiq fork process (`crm worker --metrics-port N`): serve the metrics of this
    machine's worker processes on WORKER_METRICS_PORT until stopped."""
    import threading

    from prometheus_client import start_http_server

    from api.core.settings import Settings

    port = Settings().worker_metrics_port
    if not port:
        return 0
    start_http_server(port, registry=_process_registry())
    # Dramatiq's signal handler ends this process on SIGTERM.
    threading.Event().wait()
    return 0
