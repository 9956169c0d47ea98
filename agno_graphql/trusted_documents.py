"""Trusted documents: with AGNO_GRAPHQL_TRUSTED_DOCUMENTS set, only the operations of the app's manifest run.

The manifest is the JSON GraphQL Code Generator's client preset writes with `persistedDocuments` (hash to
document). An operation runs when it names a listed hash (`extensions.persistedQuery.sha256Hash`) or sends a
listed document byte for byte; anything else is refused before it is parsed, PERSISTED_QUERY_NOT_ALLOWED. With
introspection on, a document that only asks for `__schema`, `__type` or `__typename` runs too (GraphiQL's schema
and the clients' codegen).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode, SelectionSetNode, parse
from graphql.language import FragmentDefinitionNode, OperationDefinitionNode
from starlette.responses import JSONResponse

PERSISTED_QUERY_NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
_INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "__typename"})


def document_not_allowed() -> JSONResponse:
    error = {"message": DocumentNotAllowed.message, "extensions": {"code": PERSISTED_QUERY_NOT_ALLOWED}}
    return JSONResponse({"errors": [error]}, status_code=400)


class DocumentNotAllowed(Exception):
    message = (
        "Only the app's trusted documents run on this server (AGNO_GRAPHQL_TRUSTED_DOCUMENTS): send one of its "
        "hashes in extensions.persistedQuery.sha256Hash, or its document as it is listed."
    )


class TrustedDocuments:
    def __init__(self, by_hash: Mapping[str, str], introspection: bool) -> None:
        self._by_hash = dict(by_hash)
        self._texts = frozenset(by_hash.values())
        self._introspection = introspection

    @classmethod
    def load(cls, path: Path, introspection: bool) -> TrustedDocuments:
        """The manifest at `path`; ValueError saying what is wrong with it."""
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read {path} as JSON: {error}") from None
        if not isinstance(manifest, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in manifest.items()
        ):
            raise ValueError(f"{path} must be a JSON object of hashes to documents, as GraphQL Code Generator writes")
        return cls(manifest, introspection)

    def __len__(self) -> int:
        return len(self._by_hash)

    def document(self, query: str | None, extensions: Mapping[str, Any] | None) -> str:
        """The document to run, or DocumentNotAllowed."""
        persisted = (extensions or {}).get("persistedQuery")
        sha256 = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if isinstance(sha256, str) and sha256 in self._by_hash:
            listed = self._by_hash[sha256]
            if query is None or query == listed:
                return listed
            raise DocumentNotAllowed()
        if persisted is None and query is not None and self._allows_text(query):
            return query
        raise DocumentNotAllowed()

    def _allows_text(self, query: str) -> bool:
        return query in self._texts or (self._introspection and _only_introspection(query))


def _only_introspection(query: str) -> bool:
    """Whether every operation of the document asks for nothing but `__schema`, `__type` and `__typename`."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return False
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return bool(operations) and all(_introspective(o.selection_set, fragments, set()) for o in operations)


def _introspective(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> bool:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value not in _INTROSPECTION_FIELDS:
                return False
        elif isinstance(selection, InlineFragmentNode):
            if not _introspective(selection.selection_set, fragments, seen):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen:
                continue
            fragment = fragments.get(name)
            if fragment is None or not _introspective(fragment.selection_set, fragments, seen | {name}):
                return False
    return True
