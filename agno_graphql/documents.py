"""Which document an operation runs, on every transport: the text it sends, the one its persisted query names,
or, with trusted documents set, only one of those.

Called by the HTTP view before the body becomes an operation, and by the websocket handlers before a subscribe
message does, so no transport runs around the trusted list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agno_graphql.persisted_queries import PersistedQueries
from agno_graphql.trusted_documents import TrustedDocuments


class Documents:
    def __init__(self, persisted: PersistedQueries, trusted: TrustedDocuments | None) -> None:
        self.persisted = persisted
        self.trusted = trusted

    async def resolve(
        self, query: str | None, extensions: Mapping[str, Any] | None, may_register: Callable[[], bool]
    ) -> str | None:
        """The document to run. DocumentNotAllowed (trusted documents only), PersistedQueryNotFound, or a 400
        HTTPException (a malformed persisted query). An empty `query` beside a persisted query counts as none: what
        clients send over graphql-ws, whose messages need a string there."""
        if query == "" and extensions and "persistedQuery" in extensions:
            query = None
        if self.trusted is not None:
            return self.trusted.document(query, extensions)
        if extensions and "persistedQuery" in extensions:
            return await self.persisted.document(query, dict(extensions), may_register)
        return query

    async def close(self) -> None:
        await self.persisted.close()
