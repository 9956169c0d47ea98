"""The schema extensions of tracing.py: an operation as a span, and optionally each resolver."""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from strawberry.extensions import SchemaExtension


class OperationSpans(SchemaExtension):
    """The operation as a span current while it runs (Strawberry's OpenTelemetryExtension starts one that is not
    current, so the database spans beneath would not be its children)."""

    tracer: Tracer

    def on_operation(self) -> Generator[None, None, None]:
        context = self.execution_context
        with self.tracer.start_as_current_span("GraphQL operation", kind=SpanKind.SERVER) as current:
            yield
            operation_type = _operation_type(context)
            name = context.operation_name
            current.update_name(" ".join(part for part in ("GraphQL", operation_type, name) if part))
            current.set_attribute("graphql.operation.type", operation_type or "")
            if name:
                current.set_attribute("graphql.operation.name", name)
            if context.query:
                current.set_attribute("graphql.document", context.query)
            if context.result is not None and context.result.errors:
                current.set_status(trace.Status(trace.StatusCode.ERROR))


class OperationAndResolverSpans(OperationSpans):
    """And a span for each field with a resolver of its own (AGNO_GRAPHQL_TRACE_RESOLVERS)."""

    async def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        with self.tracer.start_as_current_span(f"GraphQL resolve {info.parent_type.name}.{info.field_name}"):
            result = _next(root, info, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result


def _operation_type(context: Any) -> str | None:
    try:
        return str(context.operation_type.value)
    except (RuntimeError, AttributeError):
        return None
