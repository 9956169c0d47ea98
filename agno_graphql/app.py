"""The Starlette app factory: GraphQL over HTTP and websockets, health checks, limits, lifecycle."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import strawberry
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.http.streaming import HTTPStreamTransport
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.aio import aclosing

from agno_graphql import api
from agno_graphql.agents.broker import BrokerLimits, InProcessBroker, RunBroker
from agno_graphql.agents.models import build_model
from agno_graphql.agents.redis_broker import RedisBroker
from agno_graphql.agents.registry import AgentRegistry, builtin_agents, load_agents_module
from agno_graphql.agents.runner import RunLimits, RunManager
from agno_graphql.auth import TokenVerifier, ensure_secret
from agno_graphql.compat.executor import PlainFieldExecutor, lighten_simple_resolvers
from agno_graphql.compat.strawberry_parts import LeanExtensionsRunner, StreamTransportChoice
from agno_graphql.context import Context, init_payload_token
from agno_graphql.db.database import Database
from agno_graphql.db.pagination import PageLimits
from agno_graphql.diagnostics import METRICS_PATH, ConnectionTracker, metrics_endpoint
from agno_graphql.documents import Documents
from agno_graphql.downloads import attachment_download
from agno_graphql.error_policy import ErrorPolicy
from agno_graphql.errors import AppError, pre_execution_code
from agno_graphql.graphiql import graphiql_page
from agno_graphql.guards import (
    GuardedWebSocketAdapter,
    SocketLimits,
    http_error_response,
    parse_json_body,
    remember_viewer,
)
from agno_graphql.logs import begin_request, configure_logging, note_user
from agno_graphql.media.links import ATTACHMENTS_PATH, LinkSigner, ensure_link_secret
from agno_graphql.media.storage import AttachmentStorage, LocalStorage, S3Settings, S3Storage
from agno_graphql.node_limit import NodeCounter, NodeLimit
from agno_graphql.persisted_queries import (
    DocumentStore,
    NoDocuments,
    PersistedQueries,
    PersistedQueryNotFound,
    RedisDocuments,
    persisted_query_not_found,
)
from agno_graphql.services import Services
from agno_graphql.services.attachments import AttachmentLimits, AttachmentService
from agno_graphql.services.editing import EditService
from agno_graphql.services.history import HistoryService
from agno_graphql.services.recovery import LostRuns
from agno_graphql.services.run_steps import StoredRunSteps
from agno_graphql.services.runs import RunService
from agno_graphql.services.sessions import SessionService
from agno_graphql.settings import Settings, SettingsError
from agno_graphql.socket_handlers import LegacyWSHandler, TransportWSHandler
from agno_graphql.sse import (
    GRAPHQL_RESPONSE_JSON,
    STREAM_TRANSPORTS,
    accept_header,
    preferred_stream_transport,
    prefers_graphql_response_json,
)
from agno_graphql.tracing import Tracing
from agno_graphql.trusted_documents import DocumentNotAllowed, TrustedDocuments, document_not_allowed
from agno_graphql.uploads import MULTIPART_OVERHEAD_BYTES, UploadGate, is_multipart, multipart_operation
from agno_graphql.web import CHAT_PATH, local_graphiql_page, web_routes

log = logging.getLogger(__name__)

GRAPHQL_PATH = "/graphql"


class AppSchema(strawberry.Schema):
    def create_extensions_runner(self, execution_context: Any, extensions: list[Any]) -> Any:
        """Per subscription event only the extensions that take part in a result (LeanExtensionsRunner)."""
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        """ErrorPolicy logs the unexpected errors, once, with their request id; expected ones are not logged."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Plain HTTP requests (`execute`, not `stream`) cannot carry a subscription's events: refuse them (400)
        instead of executing them into a null for a non-null field (INTERNAL_SERVER_ERROR)."""
        allowed = kwargs.get("allowed_operation_types") or set(OperationType)
        kwargs["allowed_operation_types"] = set(allowed) - {OperationType.SUBSCRIPTION}
        return await super().execute(*args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """A syntax error escapes Strawberry's stream (ParserCache parses in its hook), cutting an SSE or multipart
        response; turn it into the pre-execution error Strawberry makes without the cache, as `execute` does."""
        return _syntax_error_as_result(await super().stream(*args, **kwargs))


async def _syntax_error_as_result(results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    async with aclosing(results):
        try:
            first = await anext(results)
        except StopAsyncIteration:
            return
        except GraphQLError as error:
            yield PreExecutionError(data=None, errors=[error])
            return
        yield first
        async for result in results:
            yield result


def build_schema(settings: Settings, tracing: Tracing | None = None) -> strawberry.Schema:
    # The limiters' validation rules are built once: every limiter instance makes new rule classes, and
    # ValidationCache is keyed by the rules, so limiters made per request made it miss on every request
    # (validation was a quarter of a session list's CPU; BENCHMARKS.md).
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    # One counter for the schema's life, so its counts are remembered across requests.
    node_counter = NodeCounter(default_page_size=settings.page_size_default)
    extensions: list[Any] = [
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: NodeLimit(node_counter, max_nodes=settings.max_nodes),
        ErrorPolicy,
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    if tracing is not None:
        extensions.insert(0, tracing.extension())
    schema = AppSchema(
        query=api.Query,
        mutation=api.Mutation,
        subscription=api.Subscription,
        types=api.EVENT_TYPES,
        extensions=extensions,
        execution_context_class=PlainFieldExecutor,
    )
    lighten_simple_resolvers(schema)
    return schema


class GraphQLApp(StreamTransportChoice, GraphQL[Context, None]):
    """Strawberry's ASGI app with our context and websocket authentication."""

    websocket_adapter_class = GuardedWebSocketAdapter
    stream_transport_classes_by_protocol = STREAM_TRANSPORTS
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: strawberry.Schema, services: Services, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            # Websockets, and for clients behind proxies that drop them: graphql-sse (distinct connections
            # mode) and multipart subscriptions (Apollo HttpLink), authenticated by the Authorization header.
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL,
                GRAPHQL_WS_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL,
                MULTIPART_SUBSCRIPTION_PROTOCOL,
            ),
            connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            allowed_origins=settings.allowed_origins,
            # Uploads (uploadAttachment): safe here because every request needs a bearer token (uploads.py).
            multipart_uploads_enabled=True,
        )
        self.services = services
        # Read by the websocket guard, which Strawberry builds with this view.
        self.socket_limits = SocketLimits(
            max_bytes=settings.max_body_bytes, init_timeout_seconds=settings.connection_init_timeout_seconds
        )
        self.connections = ConnectionTracker()

    def encode_json(self, data: object) -> str:
        """Every response and message in JSON, by orjson (a fifth of the CPU json.dumps takes for a streamed event or
        a page of sessions); text, as websocket messages of GraphQL's protocols are text frames. What orjson does not
        take (an integer beyond 64 bits in a JSON scalar, a key that is not a string) goes to json.dumps."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return str(super().encode_json(data))  # Strawberry's: json.dumps, text

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        graphql_response_json = prefers_graphql_response_json(accept_header(request.headers))
        request.state.graphql_response_json = graphql_response_json
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = http_error_response(error, request.method)
        except PersistedQueryNotFound:
            response = persisted_query_not_found()
        except DocumentNotAllowed:
            response = document_not_allowed()
        if graphql_response_json and response.headers.get("content-type", "").startswith("application/json"):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        if request.method == "GET":
            # Every answer depends on the viewer: no shared cache may keep one for another.
            response.headers["Cache-Control"] = "private"
            response.headers.add_vary_header("Authorization")
        try:
            await response(scope, receive, send)
        finally:
            # A multipart request's spooled file is closed (and its disk freed) now, not when collected.
            await request.close()

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET that carries extensions: a persisted query, whatever its Accept header."""
        return "extensions" not in request.query_params and super().should_render_graphql_ide(request)

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            data.query = await self.services.documents.resolve(
                data.query, data.extensions, may_register=lambda: self._authenticated(request)
            )
        return data

    def _authenticated(self, request: Any) -> bool:
        """Only a signed-in client registers documents (it is refused anyway, but should not fill the store)."""
        try:
            self.services.verifier.verify_header(request.headers.get("authorization"))
        except AppError:
            return False
        return True

    def parse_json(self, data: str | bytes) -> Any:
        return parse_json_body(data)

    async def parse_multipart(self, request: Any) -> dict[str, Any]:
        """One operation with one file (a message's attachments are uploaded one by one), as the spec lays it out."""
        form = await request.get_form_data()
        return multipart_operation(form.form, self.parse_json)

    def choose_stream_transport(
        self, headers: Mapping[str, str], transports: Iterable[HTTPStreamTransport]
    ) -> HTTPStreamTransport | None:
        return preferred_stream_transport(accept_header(headers), transports)

    @property
    def graphql_ide_html(self) -> str:
        return local_graphiql_page() or graphiql_page()

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """Give errors raised before execution (parsing) their code too. A client that asked for
        application/graphql-response+json gets a request that failed before execution (a document that does not
        parse or validate, variables that do not fit, a request limit) as a 400 with no `data`, as the
        GraphQL-over-HTTP spec says; application/json keeps 200."""
        response = process_result(result)
        for error, formatted in zip(result.errors or [], response.get("errors") or [], strict=False):
            assert isinstance(formatted, dict)
            extensions = formatted.setdefault("extensions", {})
            extensions.setdefault("code", pre_execution_code(error))
        sub_response = getattr(request.state, "sub_response", None)
        if getattr(request.state, "graphql_response_json", False) and _failed_before_execution(result):
            response.pop("data", None)
            if sub_response is not None:
                sub_response.status_code = 400
        return response

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if isinstance(request, Request):
            request.state.sub_response = sub_response  # for process_result's status
        return sub_response

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        context = Context(services=self.services, request=request, response=response)
        begin_request(context.request_id)
        return context

    async def on_ws_connect(self, context: Context) -> Any:
        """Refuse the socket (4403) unless connection_init carries a valid token."""
        try:
            viewer = self.services.verifier.verify_header(init_payload_token(context.connection_params))
        except AppError as exc:
            raise ConnectionRejectionError({"message": exc.message, "code": exc.code}) from None
        context.viewer = viewer
        note_user(viewer.user_id)
        if isinstance(context.request, WebSocket):
            remember_viewer(context.request, viewer)
        return {"userId": viewer.user_id}


def _failed_before_execution(result: ExecutionResult) -> bool:
    """No data, and errors of the request rather than of a field (those have a path)."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(not error.path for error in errors)


class BodySizeLimit:
    """413 for request bodies over the limit, declared or streamed: `max_bytes` for JSON, `max_multipart_bytes` for
    an upload."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_multipart_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_multipart_bytes = max_multipart_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = self.max_multipart_bytes if is_multipart(scope) else self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > most:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > most:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"errors": [{"message": "Request body too large.", "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]},
            status_code=413,
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def build_broker(settings: Settings) -> RunBroker:
    """Redis when several instances share the runs (AGNO_GRAPHQL_REDIS_URL), else this process alone."""
    limits = BrokerLimits(
        max_runs_per_user=settings.max_runs_per_user,
        max_events_per_run=settings.run_events_max,
        retention_seconds=settings.run_events_retention_seconds,
        lease_seconds=settings.run_lease_seconds,
        running_ttl_seconds=settings.run_timeout_seconds + settings.cancel_grace_seconds + 300,
    )
    if settings.redis_url:
        return RedisBroker(settings.redis_url, limits, prefix=settings.redis_prefix)
    return InProcessBroker(limits)


def build_documents(settings: Settings) -> Documents:
    """Persisted queries by hash (this instance's bounded map, in front of Redis when instances share the work),
    and the trusted documents' manifest when one is set."""
    shared: DocumentStore = NoDocuments()
    if settings.redis_url:
        shared = RedisDocuments(settings.redis_url, settings.redis_prefix, settings.persisted_queries_ttl_seconds)
    trusted = None
    if settings.trusted_documents:
        try:
            trusted = TrustedDocuments.load(Path(settings.trusted_documents), introspection=settings.introspection)
        except ValueError as error:
            raise SettingsError(f"AGNO_GRAPHQL_TRUSTED_DOCUMENTS: {error}") from None
    return Documents(PersistedQueries(shared, settings.persisted_queries_cache_size), trusted)


def build_attachments(settings: Settings, db: Database) -> AttachmentService:
    secret, _ = ensure_link_secret(settings.attachment_url_secret, settings.state_path)
    if settings.redis_url and not settings.attachment_url_secret:
        log.warning(
            "several instances (REDIS_URL) need one AGNO_GRAPHQL_ATTACHMENT_URL_SECRET: a link signed by one instance "
            "works on another only if they share it (or share the state folder)"
        )
    limits = AttachmentLimits(
        max_bytes=settings.max_attachment_bytes,
        max_per_message=settings.max_attachments_per_message,
        types=settings.attachment_types,
        unused_seconds=settings.attachment_unused_seconds,
    )
    links = LinkSigner(secret, settings.attachment_url_seconds, settings.public_base_url)
    storage: AttachmentStorage = LocalStorage(settings.media_path)
    if settings.media_s3_bucket:
        storage = S3Storage(
            S3Settings(
                bucket=settings.media_s3_bucket,
                prefix=settings.media_s3_prefix,
                endpoint_url=settings.media_s3_endpoint or None,
                region=settings.media_s3_region or None,
                access_key_id=settings.media_s3_access_key_id or None,
                secret_access_key=settings.media_s3_secret_access_key or None,
            )
        )
    return AttachmentService(db, storage, links, limits)


def build_services(settings: Settings, tracing: Tracing | None = None) -> Services:
    """Everything the API needs, built from settings, each service handed what it calls; bad settings raise errors
    that say what to fix. Traced with `tracing`, else when the environment names an OTLP endpoint."""
    tracing = tracing or Tracing.from_environment(settings.trace_resolvers)
    tracer = tracing.tracer if tracing is not None else None
    db = Database(settings.effective_database_url, tracer=tracer)
    if tracing is not None:
        tracing.instrument_engine(db.engine)
        tracing.instrument_agno()
    model = build_model(settings)
    agents = load_agents_module(settings.agents) if settings.agents else builtin_agents(model)
    attachments = build_attachments(settings, db)
    registry = AgentRegistry(
        agents,
        db.agno_db,
        model,
        tool_timeout_seconds=settings.tool_timeout_seconds,
        media_storage=attachments.storage.agno,
    )
    secret = None if settings.jwt_public_key_file else ensure_secret(settings)[0]
    verifier = TokenVerifier(settings, secret)
    broker = build_broker(settings)
    manager = RunManager(
        broker,
        StoredRunSteps(db, broker, settings.store_retry_seconds),
        registry,
        RunLimits(
            cancel_grace_seconds=settings.cancel_grace_seconds,
            run_timeout_seconds=settings.run_timeout_seconds,
            coalesce_seconds=settings.stream_coalesce_ms / 1000,
        ),
        tracer=tracer,
    )
    limits = PageLimits(default_size=settings.page_size_default, max_size=settings.page_size_max)
    sessions = SessionService(
        db=db, agents=registry, broker=broker, runs=manager, limits=limits, attachments=attachments
    )
    # Over Redis, another instance notices a dead one's runs within the lease and this interval (both under 2 x).
    lost_runs = LostRuns(db, broker, manager, interval_seconds=settings.run_lease_seconds / 2)
    runs = RunService(
        db=db,
        agents=registry,
        sessions=sessions,
        broker=broker,
        manager=manager,
        lost=lost_runs,
        attachments=attachments,
        max_message_chars=settings.max_message_chars,
        max_queued_per_session=settings.max_queued_per_session,
    )
    return Services(
        agents=registry,
        sessions=sessions,
        history=HistoryService(db, limits),
        runs=runs,
        edits=EditService(db, registry, sessions, runs, manager, attachments, settings.max_message_chars),
        attachments=attachments,
        verifier=verifier,
        documents=build_documents(settings),
        db=db,
        run_manager=manager,
        lost_runs=lost_runs,
        tracing=tracing,
    )


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    services = services or build_services(settings)
    graphql_app = GraphQLApp(build_schema(settings, services.tracing), services, settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = {"database": await services.db.ping()}
        if settings.redis_url:
            checks["redis"] = await services.run_manager.broker_answers()
        body: dict[str, str] = {name: "ok" if up else "unreachable" for name, up in checks.items()}
        if all(checks.values()):
            return JSONResponse({"status": "ready", **body})
        return JSONResponse({"status": "not ready", **body}, status_code=503)

    async def root(request: Request) -> Response:
        return PlainTextResponse(f"agno-graphql: GraphQL at {GRAPHQL_PATH}, the example chat page at {CHAT_PATH}\n")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await services.db.ensure_ready()
        except AppError:
            log.warning("database unreachable at startup; serving anyway, /readyz reports it")
        await services.run_manager.open()
        await services.lost_runs.start()
        await services.attachments.start()
        yield
        await services.attachments.stop()
        await services.lost_runs.stop()
        await services.run_manager.shutdown(grace_seconds=settings.shutdown_grace_seconds)
        await services.agents.aclose()
        await services.documents.close()
        await services.db.dispose()
        if services.tracing is not None:
            services.tracing.shutdown()  # what is still batched goes out

    metrics_routes = (
        [Route(METRICS_PATH, metrics_endpoint(services.db, services.run_manager, graphql_app.connections))]
        if settings.metrics
        else []
    )
    app = Starlette(
        routes=[
            Route("/", root),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route(GRAPHQL_PATH, UploadGate(graphql_app, services.verifier), methods=["GET", "POST"]),
            Route(f"{ATTACHMENTS_PATH}/{{attachment_id}}/{{name}}", attachment_download(services.attachments)),
            WebSocketRoute(GRAPHQL_PATH, graphql_app),
            *web_routes(settings),
            *metrics_routes,
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        max_multipart_bytes=settings.max_attachment_bytes + MULTIPART_OVERHEAD_BYTES,
    )
    # Frontends on another origin (a dev server) call over HTTP with a bearer token, never cookies, so
    # allowing any origin does not expose ambient credentials; ALLOWED_ORIGINS narrows it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins) or ["*"],
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        allow_credentials=False,
        max_age=600,
    )
    if services.tracing is not None:
        services.tracing.add_middleware(app)  # outermost: a request's span covers all of it
    return app


def freeze_startup_objects() -> None:
    """Keep what exists once the app is built (modules, the schema, Agno's and SQLAlchemy's classes: some 200,000
    objects) out of the garbage collector's full collections, which otherwise walk all of it again and again
    under load (BENCHMARKS.md, change 13). For a serving process, not for the tests' many apps in one process."""
    gc.collect()
    gc.freeze()


def app_from_environment() -> Starlette:
    """The app built from AGNO_GRAPHQL_* settings: the factory each worker of `serve --workers N` calls."""
    from agno_graphql.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # a worker process sets up its own
    app = create_app(settings, build_services(settings))
    freeze_startup_objects()
    return app
