"""Strawberry's undocumented parts the app leans on. Checked with strawberry-graphql 0.341.2."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import strawberry
from graphql import GraphQLResolveInfo, GraphQLSchema
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import StreamResultContextManager
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.http.streaming import HTTPStreamTransport
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType


def graphql_core_info(info: strawberry.Info[Any, Any]) -> GraphQLResolveInfo:
    """graphql-core's resolve info behind Strawberry's `Info` (`_raw_info`): its syntax tree of the selection is
    read directly, where Strawberry's `selected_fields` converts the whole selection on every call."""
    return info._raw_info


def graphql_core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """graphql-core's schema behind Strawberry's (`Schema._schema`, which Strawberry's own ValidationCache reads):
    the node limit and the executor walk its types."""
    return schema._schema


class StreamTransportChoice:
    """A mixin for `strawberry.asgi.GraphQL` that picks the stream transport (SSE, multipart) of a request itself.

    Strawberry streams whenever a streaming type appears anywhere in `Accept`, in the private
    `_get_stream_transport_from_headers`, over the transports of `_stream_transport_map`; there is no public hook."""

    def choose_stream_transport(
        self, headers: Mapping[str, str], transports: Iterable[HTTPStreamTransport]
    ) -> HTTPStreamTransport | None:
        raise NotImplementedError

    def _get_stream_transport_from_headers(self, headers: Mapping[str, str]) -> HTTPStreamTransport | None:
        # The view's own (this is mixed into a Strawberry view): a cached property of Strawberry's base view.
        transports: dict[str, HTTPStreamTransport] = cast(Any, self)._stream_transport_map
        return self.choose_stream_transport(headers, transports.values())


# The reason of Strawberry's HTTP 400 for a body it cannot read (async_base_view.py); no exception class tells it.
UNSUPPORTED_CONTENT_TYPE = "Unsupported content type"


def refused_operation_over(reason: str, method: str) -> OperationType | None:
    """The operation type an HTTP 400 of Strawberry refused for the method (a mutation over GET, a subscription over
    plain HTTP), told from its reason: Strawberry raises a plain HTTPException whose only trace of the refusal is
    the text `InvalidOperationTypeError.as_http_error_reason` made."""
    for operation in (OperationType.MUTATION, OperationType.SUBSCRIPTION):
        if reason == InvalidOperationTypeError(operation).as_http_error_reason(method):
            return operation
    return None


# No hooks for a result: one context manager for all (nullcontext keeps no state, so it can be entered again).
_NO_STREAM_HOOKS = contextlib.nullcontext()


class LeanExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's extension runner, with the work it does per result of a subscription cut to the extensions that
    take part: for every event, Strawberry's builds the `on_stream_result` hooks of every extension (a look-up and
    an inspection each) and awaits every extension's `get_results`, although most extensions define neither. Here
    the two lists are made once per operation; the hooks run as Strawberry runs them (its own context manager).
    An extension that can tell at a glance that a result is none of its business says so in
    `leaves_stream_result(result)` (ErrorPolicy: a result without errors); when every extension with a hook leaves a
    result, no hook is built for it (Strawberry's context manager costs some 10 µs per event to build).
    Given by `Schema.create_extensions_runner` (public); `SchemaExtensionsRunner`'s methods are its own."""

    def __init__(self, execution_context: Any, extensions: list[SchemaExtension] | None = None) -> None:
        super().__init__(execution_context, extensions)
        self._streaming = [e for e in self.extensions if _overrides(e, "on_stream_result")]
        self._reporting = [e for e in self.extensions if _overrides(e, "get_results")]
        leaving = [getattr(e, "leaves_stream_result", None) for e in self._streaming]
        self._leaving: list[Callable[[Any], bool]] | None = None if None in leaving else cast(Any, leaving)

    def on_stream_result(self, result: Any) -> Any:
        leaving = self._leaving
        if leaving is not None and all(leaves(result) for leaves in leaving):
            return _NO_STREAM_HOOKS
        return StreamResultContextManager(self._streaming, result)

    async def get_extensions_results(self, ctx: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self._reporting:
            found = extension.get_results()
            data.update(await found if inspect.isawaitable(found) else found)
        data.update(ctx.extensions_results)
        return data


def _overrides(extension: SchemaExtension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(SchemaExtension, hook)
