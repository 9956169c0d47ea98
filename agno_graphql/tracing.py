"""Traces: OpenTelemetry spans for every request and operation, every database read and write, and every run.

On when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: spans go out over
OTLP/HTTP in batches, with the SDK's own settings (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS, ...). Otherwise
none of it is installed: no middleware, no extension, no instrumented engine.

- A request's span comes from OpenTelemetry's ASGI middleware, which continues an incoming `traceparent`.
- An operation is a span (`GraphQL query Sessions`) current while it runs, so what it does is its children;
  resolvers get spans of their own only with AGNO_GRAPHQL_TRACE_RESOLVERS.
- SQL statements (ours and Agno's, through SQLAlchemy; our driver reads on MySQL) are spans.
- A run is a span (`agno_graphql.run`, with its run, session and agent ids) around everything Agno does for it;
  OpenInference's Agno instrumentation adds the model requests and tool calls as its children.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer

INSTRUMENTATION_NAME = "agno_graphql"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass(frozen=True)
class Tracing:
    provider: trace.TracerProvider
    trace_resolvers: bool = False

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer(INSTRUMENTATION_NAME)

    @classmethod
    def from_environment(cls, trace_resolvers: bool = False) -> Tracing | None:
        """OTLP/HTTP export when its endpoint is set in the environment; None (no tracing at all) otherwise."""
        if not any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "agno-graphql")})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, trace_resolvers)

    def instrument_engine(self, engine: Any) -> None:
        """Spans for every statement run on the engine (an AsyncEngine's sync engine), Agno's included."""
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # Its declared range ends below SQLAlchemy 2.1, whose engine events it uses are the same (tests/test_traces.py).
        SQLAlchemyInstrumentor().instrument(
            engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True
        )

    def instrument_agno(self) -> None:
        """Model requests and tool calls as spans (OpenInference): Agno's classes are patched process-wide, once."""
        from openinference.instrumentation.agno import AgnoInstrumentor

        instrumentor = AgnoInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=self.provider)

    def add_middleware(self, app: Any) -> None:
        """Request spans that continue an incoming `traceparent` (a websocket: one span for the connection, none
        per message), around the Starlette app."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        app.add_middleware(
            OpenTelemetryMiddleware,
            tracer_provider=self.provider,
            exclude_spans=["receive", "send"],
            excluded_urls="healthz,readyz",
        )

    def extension(self) -> type[Any]:
        """The schema extension making operation (and, if asked, resolver) spans with this provider."""
        from agno_graphql.operation_spans import OperationAndResolverSpans, OperationSpans

        base = OperationAndResolverSpans if self.trace_resolvers else OperationSpans
        return type("TracedOperations", (base,), {"tracer": self.tracer})

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


@contextmanager
def span(tracer: Tracer | None, name: str, **attributes: Any) -> Iterator[None]:
    """A current span when tracing is on; nothing otherwise."""
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None}):
        yield
