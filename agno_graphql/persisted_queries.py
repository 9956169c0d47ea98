"""Automatic persisted queries, as Apollo Client's `PersistedQueryLink` and urql's `persistedExchange` send them.

A client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the document; when the server does
not know the hash it answers `PersistedQueryNotFound` (HTTP 200, code PERSISTED_QUERY_NOT_FOUND) and the client
sends the document with the hash once, which registers it. A document whose hash does not match is BAD_REQUEST.

A hash names its document for good, so every instance keeps the documents it has seen in a bounded map in front
of the shared store: Redis (AGNO_GRAPHQL_REDIS_URL, shared by every instance) or nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from cross_web import HTTPException
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)

NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# A registration is one SET; a lookup one GET: few connections are enough, and a slow Redis waits no longer.
_MAX_CONNECTIONS = 8
_REDIS_TIMEOUT_SECONDS = 2.0


class PersistedQueryNotFound(Exception):
    """The hash names no document this server has seen: the client sends the document next."""


def persisted_query_not_found() -> JSONResponse:
    """The answer Apollo Client and urql look for to send the document (HTTP 200, as Apollo Server answers)."""
    error = {"message": NOT_FOUND_MESSAGE, "extensions": {"code": PERSISTED_QUERY_NOT_FOUND}}
    return JSONResponse({"errors": [error]}, status_code=200)


class DocumentStore(Protocol):
    async def get(self, sha256: str) -> str | None: ...

    async def put(self, sha256: str, document: str) -> None: ...

    async def close(self) -> None: ...


class RedisDocuments:
    """Documents by hash in Redis, each kept `ttl_seconds` from its last registration."""

    def __init__(self, url: str, prefix: str, ttl_seconds: int) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=_MAX_CONNECTIONS,
            timeout=_REDIS_TIMEOUT_SECONDS,
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
            decode_responses=True,  # the pool's connections decode; Redis(decode_responses=...) beside a pool does not
        )
        self._redis: Any = Redis(connection_pool=pool)
        self._prefix = f"{prefix}:apq:"
        self._ttl_seconds = ttl_seconds

    async def get(self, sha256: str) -> str | None:
        try:
            document = await self._redis.get(self._prefix + sha256)
        except (RedisError, OSError) as error:
            # As if unknown: the client sends the document, and the operation runs.
            log.warning("persisted query lookup failed (Redis): %s", error)
            return None
        return str(document) if document is not None else None

    async def put(self, sha256: str, document: str) -> None:
        try:
            await self._redis.set(self._prefix + sha256, document, ex=self._ttl_seconds)
        except (RedisError, OSError) as error:
            log.warning("persisted query not shared (Redis): %s", error)

    async def close(self) -> None:
        await self._redis.aclose()


class NoDocuments:
    """No shared store: this instance's own map is all there is."""

    async def get(self, sha256: str) -> str | None:
        return None

    async def put(self, sha256: str, document: str) -> None:
        return None

    async def close(self) -> None:
        return None


class PersistedQueries:
    """Resolves a request's persisted query: the document it names, or the one it registers."""

    def __init__(self, shared: DocumentStore, cache_size: int) -> None:
        self._shared = shared
        self._cache_size = cache_size
        self._seen: OrderedDict[str, str] = OrderedDict()

    async def document(
        self, query: str | None, extensions: dict[str, Any] | None, may_register: Callable[[], bool]
    ) -> str | None:
        """The document to run: `query` itself when the request names no persisted query (or registers one, if
        `may_register()`), the registered one for a hash alone. PersistedQueryNotFound for an unknown hash; 400 for
        a malformed `persistedQuery` or a document whose hash does not match."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query
        sha256 = _hash_of(persisted)
        if query is None:
            document = await self._known(sha256)
            if document is None:
                raise PersistedQueryNotFound()
            return document
        if hashlib.sha256(query.encode("utf-8")).hexdigest() != sha256:
            raise HTTPException(400, "The sha256Hash of extensions.persistedQuery does not match the query.")
        if sha256 not in self._seen and may_register():
            await self._shared.put(sha256, query)
            self._remember(sha256, query)
        return query

    async def _known(self, sha256: str) -> str | None:
        document = self._seen.get(sha256)
        if document is not None:
            self._seen.move_to_end(sha256)
            return document
        document = await self._shared.get(sha256)
        if document is not None and hashlib.sha256(document.encode("utf-8")).hexdigest() == sha256:
            self._remember(sha256, document)
            return document
        return None

    def _remember(self, sha256: str, document: str) -> None:
        self._seen[sha256] = document
        while len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)

    async def close(self) -> None:
        await self._shared.close()


def _hash_of(persisted: Any) -> str:
    """The hash a `persistedQuery` extension names (version 1, a SHA-256 in hex; other keys are ignored)."""
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise HTTPException(400, "extensions.persistedQuery must be {version: 1, sha256Hash: <hex SHA-256>}.")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise HTTPException(400, "extensions.persistedQuery.sha256Hash must be a SHA-256 in hex (64 characters).")
    return sha256.lower()
