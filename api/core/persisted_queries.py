"""Automatic persisted queries, in Apollo's protocol (what Apollo Client, urql and Relay-style
mobile clients send): a request names its document by SHA-256 in
`extensions.persistedQuery = {version: 1, sha256Hash}` instead of carrying it. A known hash
runs the stored document; an unknown one answers PERSISTED_QUERY_NOT_FOUND (HTTP 200, as those
clients expect), upon which the client sends the document with its hash, and the document is
stored once it has parsed and validated.

Documents live in Redis when REDIS_URL is set (shared by every web process; an entry expires
PERSISTED_QUERY_TTL_SECONDS after it was last fetched from there) with an in-process LRU in
front, and in the LRU alone otherwise. A hash names one document for good, so a local copy
never goes stale. Losing the store costs nothing but one more round trip per client.

GET runs stored queries only (`allow_queries_via_get` stays off for documents in the URL):
never a mutation, since caches, prefetchers and crawlers replay GETs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from api.core.errors import AppError, BadInput
from api.core.settings import get_settings

if TYPE_CHECKING:
    from cross_web import AsyncHTTPRequestAdapter
    from strawberry.http import GraphQLRequestData

log = logging.getLogger("api.graphql")

# Longer than any document a client writes by hand or generates (the token limit stops
# parsing at 5000 tokens anyway); checked before hashing, parsing or storing anything.
MAX_DOCUMENT_CHARS = 64 * 1024
# The in-process LRU: enough for every document of several client apps and versions.
LOCAL_MAX_DOCUMENTS = 2000
LOCAL_MAX_CHARS = 16 * 1024 * 1024
REDIS_KEY = "crm:apq:{}"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class PersistedQueryNotFound(AppError):
    """The hash is not stored (never sent, evicted or expired): send the document with it."""

    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        # Apollo's clients recognise the miss by this exact message as well as by the code.
        super().__init__("PersistedQueryNotFound")


@dataclass(frozen=True, slots=True)
class PersistedQuery:
    digest: str
    document: str
    # Sent with this request rather than found in the store: stored once it proves valid.
    sent: bool


class LocalDocuments:
    """A least-recently-used map of documents by hash, bounded in count and in characters."""

    def __init__(self, max_documents: int, max_chars: int) -> None:
        self.max_documents = max_documents
        self.max_chars = max_chars
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def get(self, digest: str) -> str | None:
        document = self._documents.get(digest)
        if document is not None:
            self._documents.move_to_end(digest)
        return document

    def put(self, digest: str, document: str) -> None:
        if digest in self._documents:
            self._documents.move_to_end(digest)
            return
        self._documents[digest] = document
        self._chars += len(document)
        while len(self._documents) > self.max_documents or self._chars > self.max_chars:
            _, evicted = self._documents.popitem(last=False)
            self._chars -= len(evicted)


class DocumentStore:
    """Documents by hash: the local LRU, backed by Redis when a URL is given. Redis being
    unreachable degrades to the LRU alone (logged), never to a failed request."""

    def __init__(self, redis_url: str | None, ttl_seconds: int) -> None:
        self.local = LocalDocuments(LOCAL_MAX_DOCUMENTS, LOCAL_MAX_CHARS)
        self.ttl_seconds = ttl_seconds
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(redis_url)

    async def get(self, digest: str) -> str | None:
        document = self.local.get(digest)
        if document is not None or self._redis is None:
            return document
        from redis import RedisError

        try:
            # Fetching renews the entry: documents in use do not expire.
            raw = await self._redis.getex(REDIS_KEY.format(digest), ex=self.ttl_seconds)
        except RedisError as exc:
            log.warning("persisted query lookup failed: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        document = raw.decode()
        self.local.put(digest, document)
        return document

    async def put(self, digest: str, document: str) -> None:
        if self.local.get(digest) is not None:
            return
        self.local.put(digest, document)
        if self._redis is None:
            return
        from redis import RedisError

        try:
            await self._redis.set(REDIS_KEY.format(digest), document, ex=self.ttl_seconds)
        except RedisError as exc:
            log.warning("persisted query not stored: %s", type(exc).__name__)


@lru_cache
def document_store() -> DocumentStore:
    settings = get_settings()
    return DocumentStore(settings.redis_url, settings.persisted_query_ttl_seconds)


def check_document_size(document: str | None) -> None:
    if document is not None and len(document) > MAX_DOCUMENT_CHARS:
        raise BadInput(
            f"The query is {len(document)} characters long; at most {MAX_DOCUMENT_CHARS} "
            "are accepted",
            field="query",
        )


async def persisted_query(
    document: str | None, extensions: dict[str, Any] | None
) -> PersistedQuery | None:
    """The document a request names by hash, or None when it names none. Raises BadInput for
    a malformed `persistedQuery` or a hash that is not the document's, and
    PersistedQueryNotFound for a hash sent alone that is not stored."""
    requested = (extensions or {}).get("persistedQuery")
    if requested is None:
        return None
    if not isinstance(requested, dict) or requested.get("version") != 1:
        raise BadInput(
            "persistedQuery must be {version: 1, sha256Hash}", field="extensions.persistedQuery"
        )
    digest = requested.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest.lower()):
        raise BadInput(
            "sha256Hash must be 64 hexadecimal digits",
            field="extensions.persistedQuery.sha256Hash",
        )
    digest = digest.lower()
    if document is not None:
        if hashlib.sha256(document.encode()).hexdigest() != digest:
            raise BadInput(
                "sha256Hash is not the SHA-256 of the query",
                field="extensions.persistedQuery.sha256Hash",
            )
        return PersistedQuery(digest, document, sent=True)
    stored = await document_store().get(digest)
    if stored is None:
        raise PersistedQueryNotFound()
    return PersistedQuery(digest, stored, sent=False)


class PersistedQueriesView:
    """Mixed into the GraphQL view ahead of Strawberry's class: resolves
    `extensions.persistedQuery` and lets GET run stored queries (and nothing else)."""

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A hashed GET carries no `query` either: it wants JSON, whatever its Accept says.
        if "extensions" in request.query_params:
            return False
        return super().should_render_graphql_ide(request)  # type: ignore[misc]

    async def execute_single(
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        method = request_adapter.method
        try:
            check_document_size(request_data.query)
            persisted = await persisted_query(request_data.query, request_data.extensions)
        except AppError as refusal:
            # A refusal must not be cached: the same GET succeeds once the document is sent.
            sub_response.headers["Cache-Control"] = "no-store"
            error = GraphQLError(refusal.message, extensions=refusal.extensions)
            return ExecutionResult(data=None, errors=[error])
        if persisted is None:
            # No hash: Strawberry's own path (POST as ever; a GET document stays refused).
            return await super().execute_single(  # type: ignore[misc]
                request=request,
                request_adapter=request_adapter,
                sub_response=sub_response,
                context=context,
                root_value=root_value,
                request_data=request_data,
            )
        if method == "GET":
            if persisted.sent:
                raise HTTPException(400, "Send the query text by POST; GET runs stored queries")
            allowed = {OperationType.QUERY}
        else:
            allowed = OperationType.from_http(method)
        try:
            result = await self.schema.execute(  # type: ignore[attr-defined]
                persisted.document,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            # A mutation by GET: refused before it is validated or run (GraphQL over HTTP).
            raise HTTPException(405, exc.as_http_error_reason(method)) from exc
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc
        if persisted.sent and not isinstance(result, PreExecutionError):
            # Parsed and validated (it ran): worth keeping. Junk is never stored.
            await document_store().put(persisted.digest, persisted.document)
        return result
