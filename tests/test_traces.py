"""Traces on a real server, on SQLite and MariaDB: request, operation, database and run spans in one trace that
continues the client's `traceparent`, exported to the SDK's in-memory exporter; and once over OTLP/HTTP from a
`serve` process to a loopback receiver that decodes the real protobuf."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openinference.instrumentation.agno import AgnoInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agno_graphql.logs import JsonLines
from agno_graphql.tracing import Tracing
from tests.client import bearer
from tests.conftest import TEST_SECRET, RunningServer, make_token, serve_in_thread, server_settings, start_server
from tests.openai_stub import OpenAIStub
from tests.process_support import cli_env, serving_process
from tests.test_http_streaming import open_stream, stream_results
from tests.test_provider import STUB_API_KEY, STUB_MODEL

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SESSIONS = "query Sessions { sessions(first: 5) { nodes { id name } } }"
RUN = "subscription Run($input: RunAgentInput!) { runAgent(input: $input) { __typename runId } }"


@pytest.fixture(scope="module")
def traced(
    stub: OpenAIStub, new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, InMemorySpanExporter]]:
    """A traced server whose agents talk to the loopback OpenAI-compatible stub (a model Agno's instrumentation
    knows: the offline demo model is not one of Agno's classes)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = server_settings(
        new_database_url("traces"),
        tmp_path_factory.mktemp("traces"),
        model=STUB_MODEL,
        model_base_url=stub.base_url,
        model_api_key=STUB_API_KEY,
    )
    running = start_server(settings, Tracing(provider))
    yield running, exporter
    running.stop()
    AgnoInstrumentor().uninstrument()  # Agno's classes are patched process-wide


def spans_of_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        s for s in exporter.get_finished_spans() if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
    ]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The names of the span's parents, nearest first."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names, parent = [], span.parent
    while parent is not None and parent.span_id in by_id:
        found = by_id[parent.span_id]
        names.append(found.name)
        parent = found.parent
    return names


def wait_for(check: Callable[[], Any], what: str) -> Any:
    """Spans end as the response is sent: poll a little (bounded)."""
    for _ in range(100):
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


async def test_a_query_continues_the_clients_trace_down_to_its_sql(
    traced: tuple[RunningServer, InMemorySpanExporter], user_id: str
) -> None:
    server, exporter = traced
    headers = {**bearer(make_token(user_id)), "traceparent": TRACEPARENT}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(server.http_url, json={"query": SESSIONS}, headers=headers)
    assert response.json() == {"data": {"sessions": {"nodes": []}}}
    spans = wait_for(
        lambda: (s := spans_of_trace(exporter, TRACE_ID)) and any(x.name == "GraphQL query Sessions" for x in s) and s,
        "the operation's span",
    )
    operation = next(s for s in spans if s.name == "GraphQL query Sessions")
    assert operation.attributes is not None and operation.attributes["graphql.operation.name"] == "Sessions"
    # Beneath the request's span, itself a child of the client's span.
    request = next(s for s in spans if s.parent is not None and s.parent.span_id == int("00f067aa0ba902b7", 16))
    assert request.name in ancestors(operation, spans), [s.name for s in spans]
    sql = [s for s in spans if s.attributes and "db.statement" in s.attributes]
    assert sql, [s.name for s in spans]
    assert all("GraphQL query Sessions" in ancestors(s, spans) for s in sql)
    assert not [s for s in spans if s.name.startswith("GraphQL resolve")]  # resolver spans are off by default


async def test_a_run_is_a_span_with_its_model_request_and_tool_calls_beneath(
    traced: tuple[RunningServer, InMemorySpanExporter], token: str
) -> None:
    server, exporter = traced
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    variables = {"input": {"agentId": "calculator", "message": "What is 12 * 7?"}}
    results = await stream_results(
        open_stream(server, token, "sse", RUN, variables, headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"})
    )
    run_id = results[0]["data"]["runAgent"]["runId"]
    assert results[-1]["data"]["runAgent"]["__typename"] == "RunCompleted"

    def run_span() -> list[ReadableSpan] | None:
        spans = spans_of_trace(exporter, trace_id)
        return spans if any(s.name == "agno_graphql.run" for s in spans) else None

    spans = wait_for(run_span, "the run's span")
    run = next(s for s in spans if s.name == "agno_graphql.run")
    assert run.attributes is not None and run.attributes["agno_graphql.run_id"] == run_id
    beneath = [s for s in spans if "agno_graphql.run" in ancestors(s, spans)]
    names = [s.name for s in beneath]
    assert any("multiply" in name for name in names), names  # the tool call
    assert any(s.attributes and s.attributes.get("openinference.span.kind") == "LLM" for s in beneath), names


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: decodes each export request's protobuf."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    async def traces(self, request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        with self.lock:
            self.requests.append(message)
        return Response(b"", media_type="application/x-protobuf")

    def spans(self) -> list[tuple[str, str, dict[str, str]]]:
        """(service name, span name, string attributes) of everything received."""
        out = []
        with self.lock:
            for message in self.requests:
                for resource_spans in message.resource_spans:
                    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            attributes = {a.key: a.value.string_value for a in span.attributes}
                            out.append((resource.get("service.name", ""), span.name, attributes))
        return out


def test_serve_exports_over_otlp_http_when_its_endpoint_is_set(tmp_path: Path) -> None:
    receiver = Receiver()
    app = Starlette(routes=[Route("/v1/traces", receiver.traces, methods=["POST"])])
    server, thread, port = serve_in_thread(app, "otlp-receiver", lifespan="off")
    try:
        env = cli_env(tmp_path / "state", f"sqlite:///{tmp_path / 'otlp.db'}", jwt_secret=TEST_SECRET)
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"})
        with serving_process(tmp_path, env) as served:
            body = {"query": SESSIONS}
            headers = {**bearer(make_token("otlp-user")), "traceparent": TRACEPARENT}
            assert httpx.post(served.http_url, json=body, headers=headers, timeout=30).status_code == 200
            received = wait_for(
                lambda: [s for s in receiver.spans() if s[1] == "GraphQL query Sessions"], "the exported operation"
            )
        assert received[0][0] == "agno-graphql"
        assert received[0][2]["graphql.document"] == SESSIONS
        assert any("db.statement" in attributes for _, _, attributes in receiver.spans())
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_no_tracing_is_installed_without_an_endpoint(server: RunningServer) -> None:
    """The suite's shared server runs with no OTLP endpoint in its environment: nothing is on its hot path."""
    assert server.services.tracing is None


def test_a_log_line_written_in_a_span_carries_its_trace_id() -> None:
    """AGNO_GRAPHQL_LOG_FORMAT=json: what a request logs can be found from its trace, and the other way round."""
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as current:
        record = logging.LogRecord("agno_graphql.app", logging.WARNING, __file__, 1, "slow %s", ("query",), None)
        line = json.loads(JsonLines().format(record))
    assert line["traceId"] == format(current.get_span_context().trace_id, "032x")
    assert (line["level"], line["message"]) == ("warning", "slow query")
