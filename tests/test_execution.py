"""The executor (agno_graphql/execution.py) answers exactly as graphql-core and Strawberry do without it.

A schema made for the comparison holds every kind of field the fast paths see or must leave alone: plain scalars
and enums (nullable or not), values that fail coercion, null in a non-null field, nested objects, lists,
interfaces, small sync resolvers with and without `info`, async resolvers, arguments, a permission class, an
awaitable held in a plain attribute, plus this API's own run events. The same operation runs on two builds of it,
one with our executor and lightened resolvers and one as Strawberry builds it, and the results (data and errors
with their paths) must be equal: for hand-written operations, for operations hypothesis-graphql writes, and for
every event of a subscription.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import graphql.execution.executor
import pytest
import strawberry
from hypothesis import HealthCheck, given, settings
from hypothesis_graphql import queries
from strawberry.extensions import ParserCache
from strawberry.permission import BasePermission
from strawberry.scalars import JSON

from agno_graphql import records as domain
from agno_graphql.compat.executor import PlainFieldExecutor, lighten_simple_resolvers
from agno_graphql.records import RunMetricsData, ToolCallRecord
from agno_graphql.resolvers.runs import to_run_event
from agno_graphql.schema import events

pytestmark = pytest.mark.filterwarnings(
    r"ignore:coroutine '(Executor|GraphQLCoreConverter)\..*' was never awaited:RuntimeWarning"
)

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@strawberry.enum
class Mood(enum.Enum):
    CALM = "calm"
    BUSY = "busy"


class Refused(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.interface
class Thing:
    id: strawberry.ID
    label: str | None


@strawberry.type
class Part:
    name: str
    weight: float | None
    tags: list[str]


class Later:
    """An awaitable held in a plain attribute (as a DataLoader's future can be): awaited only when selected."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return self.value


@strawberry.type
class Widget(Thing):
    count: int
    strict_count: int
    ratio: float
    on: bool
    mood: Mood
    maybe_mood: Mood | None
    at: datetime
    data: JSON | None
    required_text: str
    part: Part
    maybe_part: Part | None
    parts: list[Part]
    pending: str | None
    secret: str | None = strawberry.field(permission_classes=[Refused])

    @strawberry.field
    def shout(self) -> str:
        return self.required_text.upper()

    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        return f"{info.path.key}:{info.field_name}:{info.context['who']}"

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError("this field fails")

    @strawberry.field
    async def slow_count(self) -> int:
        await asyncio.sleep(0)
        return self.count

    @strawberry.field
    def times(self, by: int = 2) -> int:
        return self.count * by


@strawberry.type
class Gadget(Thing):
    size: int


def widget(i: int, **changes: Any) -> Widget:
    values: dict[str, Any] = {
        "id": strawberry.ID(f"w{i}"),
        "label": f"widget {i}" if i % 2 else None,
        "count": i,
        "strict_count": i,
        "ratio": i / 3,
        "on": bool(i % 2),
        "mood": Mood.CALM if i % 2 else Mood.BUSY,
        "maybe_mood": None if i % 3 else Mood.BUSY,
        "at": AT,
        "data": {"i": i, "list": [1, "two", None]},
        "required_text": f"text {i}",
        "part": Part(name=f"p{i}", weight=None if i % 2 else 1.5, tags=["a", "b"]),
        "maybe_part": None,
        "parts": [Part(name=f"q{j}", weight=float(j), tags=[]) for j in range(i % 3)],
        "pending": Later(f"later {i}"),
        "secret": "hidden",
    }
    values.update(changes)
    return Widget(**values)


def run_events() -> list[events.RunEvent]:
    base = {"run_id": "r1", "session_id": "s1", "created_at": 1764072000.5}
    call = ToolCallRecord(id="c1", name="multiply", arguments={"a": 12, "b": 7})
    metrics = RunMetricsData(input_tokens=3, output_tokens=4, total_tokens=7, duration_ms=12.5)
    domain_events: list[domain.Event] = [
        domain.Started(**base, index=0, agent_id="calculator", model_provider="offline", model_id="offline-demo"),
        domain.ContentDelta(**base, index=1, delta="The "),
        domain.ReasoningDelta(**base, index=2, delta="thinking"),
        domain.ToolStarted(**base, index=3, tool_call=call),
        domain.ToolCompleted(**base, index=4, tool_call=call, result="84", failed=False),
        domain.Completed(**base, index=5, content="The answer is 84.", metrics=metrics),
        domain.Failed(**base, index=6, message="model down", code="MODEL_UNAVAILABLE", retry_after_seconds=None),
        domain.Cancelled(**base, index=7, reason=None, content="The"),
    ]
    return [to_run_event(event) for event in domain_events]


def things() -> list[Thing]:
    return [widget(1), Gadget(id=strawberry.ID("g1"), label="gadget", size=3), widget(2), widget(3)]


@strawberry.type
class Query:
    @strawberry.field
    def widgets(self) -> list[Widget]:
        return [widget(i) for i in range(4)]

    @strawberry.field
    def things(self) -> list[Thing]:
        return things()

    @strawberry.field
    def broken(self) -> list[Widget | None]:
        """Widgets with bad values: null for non-null fields, values that are not what the type says."""
        return [
            widget(5, required_text=None),
            widget(6, strict_count="many"),
            widget(7, mood="not a mood"),
            widget(8, part=None),
            widget(9),
        ]

    @strawberry.field
    def events(self) -> list[events.RunEvent]:
        return run_events()


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def run(self) -> AsyncGenerator[events.RunEvent, None]:
        for event in run_events():
            yield event


def _schema(fast: bool) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=Query,
        subscription=Subscription,
        types=[Gadget, *events.EVENT_TYPES],
        execution_context_class=PlainFieldExecutor if fast else None,
    )
    if fast:
        assert lighten_simple_resolvers(schema) >= 2  # shout and where; not fails' error path, which stays the same
    return schema


FAST, REFERENCE = _schema(fast=True), _schema(fast=False)
CONTEXT = {"who": "tester"}

OPERATIONS = [
    "{ widgets { id label count strictCount ratio on mood maybeMood at data requiredText } }",
    "{ widgets { __typename id part { name weight tags } maybePart { name } parts { name weight } } }",
    "{ widgets { a: id b: id id count c: count } }",
    "{ widgets { shout where fails slowCount times t3: times(by: 3) pending secret } }",
    "{ things { __typename id label ... on Widget { count mood part { name } } ... on Gadget { size } } }",
    "{ things { ...W ...G } } fragment W on Widget { id count parts { ...P } } fragment G on Gadget { id size } "
    "fragment P on Part { name tags }",
    "{ widgets { id part { name } part { weight } } }",
    "{ broken { id requiredText } }",
    "{ broken { id strictCount } }",
    "{ broken { id mood maybeMood } }",
    "{ broken { id part { name } } }",
    "{ broken { id label shout } }",
    "{ events { __typename runId sessionId index createdAt "
    "... on RunStarted { agentId model { provider id } } "
    "... on RunContentDelta { delta } ... on ReasoningDelta { delta } "
    "... on ToolCallStarted { toolCall { id name arguments } } "
    "... on ToolCallCompleted { toolCall { id name } result failed } "
    "... on RunCompleted { content metrics { inputTokens outputTokens totalTokens durationMs } } "
    "... on RunFailed { message code retryAfterSeconds } ... on RunCancelled { reason content } } }",
]

VARIABLE_OPERATIONS = [
    (
        "query Q($on: Boolean!, $off: Boolean!) { widgets { id count @include(if: $on) label @skip(if: $on) "
        "part @include(if: $off) { name } mood @skip(if: $off) } }",
        [{"on": True, "off": False}, {"on": False, "off": True}],
    ),
]


async def _both(document: str, variables: dict[str, Any] | None = None) -> tuple[Any, Any]:
    fast = await FAST.execute(document, variable_values=variables, context_value=CONTEXT)
    reference = await REFERENCE.execute(document, variable_values=variables, context_value=CONTEXT)
    return _comparable(fast), _comparable(reference)


def _comparable(result: Any) -> tuple[Any, Any]:
    errors = sorted(
        (error.message, tuple(error.path or ()), tuple((loc.line, loc.column) for loc in error.locations or ()))
        for error in result.errors or []
    )
    return result.data, errors


@pytest.mark.parametrize("document", OPERATIONS)
async def test_each_operation_answers_as_without_the_executor(document: str) -> None:
    fast, reference = await _both(document)
    assert fast == reference
    assert fast[0] is not None or fast[1]


@pytest.mark.parametrize(("document", "variable_sets"), VARIABLE_OPERATIONS)
async def test_skip_and_include_follow_each_requests_variables(document: str, variable_sets: list[Any]) -> None:
    answers = []
    for variables in variable_sets:
        fast, reference = await _both(document, variables)
        assert fast == reference
        answers.append(fast)
    assert answers[0] != answers[1]  # the same document, other fields: no plan was reused across variables


async def test_bad_values_report_the_same_errors_at_the_same_paths() -> None:
    fast, reference = await _both("{ broken { id requiredText strictCount mood part { name } } }")
    assert fast == reference
    paths = {path for _message, path, _locations in fast[1]}
    assert ("broken", 0, "requiredText") in paths and ("broken", 1, "strictCount") in paths
    assert ("broken", 2, "mood") in paths and ("broken", 3, "part") in paths
    assert fast[0] == {"broken": [None, None, None, None, reference[0]["broken"][4]]}


async def test_a_subscription_yields_every_event_as_without_the_executor() -> None:
    document = (
        "subscription { run { __typename index createdAt ... on RunContentDelta { delta } "
        "... on ToolCallCompleted { toolCall { name arguments } result failed } "
        "... on RunCompleted { content metrics { totalTokens } } } }"
    )

    async def collect(schema: strawberry.Schema) -> list[Any]:
        stream = await schema.subscribe(document, context_value=CONTEXT)
        return [_comparable(result) async for result in stream]  # type: ignore[union-attr]

    fast, reference = await collect(FAST), await collect(REFERENCE)
    assert fast == reference and len(fast) == 8
    assert fast[1][0]["run"] == {
        "__typename": "RunContentDelta",
        "index": 1,
        "createdAt": fast[1][0]["run"]["createdAt"],
        "delta": "The ",
    }


def odd_events() -> list[Any]:
    """Events the plain path must leave to graphql-core, between plain ones: a null in a non-null field, a value
    that fails coercion, an awaitable held in a plain attribute, an object cast to another event type, and an
    object that is no Strawberry type at all."""
    plain = run_events()[1]
    awaiting = events.RunContentDelta(**{**vars(plain), "index": 12})

    async def late_text() -> str:
        return "late"

    awaiting.delta = late_text()  # type: ignore[assignment]
    cast_one = strawberry.cast(events.ReasoningDelta, events.RunContentDelta(**{**vars(plain), "index": 13}))
    return [
        plain,
        events.RunContentDelta(**{**vars(plain), "index": 10, "delta": None}),
        events.RunContentDelta(**{**vars(plain), "index": 11, "created_at": "not a time"}),
        awaiting,
        cast_one,
        plain,
        {"index": 14},
    ]


@pytest.mark.parametrize(
    "document",
    [
        "subscription { odd { __typename index createdAt ... on RunContentDelta { delta } "
        "... on ReasoningDelta { reasoning: delta } } }",
        "subscription { odd { index ... on RunEvent { runId createdAt } ... on RunContentDelta { delta } } }",
        "subscription { oddTwice: odd { __typename createdAt ... on RunContentDelta { text: delta } } }",
    ],
)
async def test_events_the_plain_path_leaves_to_graphql_core_answer_as_without_the_executor(document: str) -> None:
    built: list[str] = []

    class Recording(PlainFieldExecutor):
        def build_per_event_executor(self, payload: Any) -> Any:
            executor = super().build_per_event_executor(payload)
            built.append("plain" if not isinstance(executor, PlainFieldExecutor) else "graphql-core")
            return executor

    @strawberry.type
    class OddSubscription:
        @strawberry.subscription
        async def odd(self) -> AsyncGenerator[events.RunEvent, None]:
            for event in odd_events():
                yield event

    async def collect(executor: type[Any] | None) -> list[Any]:
        schema = strawberry.Schema(
            query=Query, subscription=OddSubscription, types=events.EVENT_TYPES, execution_context_class=executor
        )
        stream = await schema.subscribe(document, context_value=CONTEXT)
        return [_comparable(result) async for result in stream]  # type: ignore[union-attr]

    fast, reference = await collect(Recording), await collect(None)
    assert fast == reference and len(fast) == 7
    assert not fast[0][1] and fast[1][1] and fast[6][1]  # a null delta and a non-event fail, as without it
    # The two plain deltas are answered from the plan; every odd one by graphql-core.
    assert built == ["plain", "graphql-core", "graphql-core", "graphql-core", "graphql-core", "plain", "graphql-core"]


LONG_RUN_ROUNDS = 5  # every kind of event, five times over


def count_sub_field_collections(monkeypatch: pytest.MonkeyPatch, schema: strawberry.Schema) -> list[int]:
    """A counter of the sub-selections graphql-core collects for `schema` from now on, as a one-item list.

    graphql-core's executor memoizes collected sub-fields and calls `collect_subfields`, as imported into
    `graphql.execution.executor` (graphql-core 3.3.2), on each miss only, adding one entry to the memo: the count is
    the memo's growth. Should graphql-core move it, `setattr` fails here by name.
    """
    collections = [0]
    collect = graphql.execution.executor.collect_subfields

    def counted(graphql_schema: Any, *args: Any, **kwargs: Any) -> Any:
        if graphql_schema is schema._schema:
            collections[0] += 1
        return collect(graphql_schema, *args, **kwargs)

    monkeypatch.setattr(graphql.execution.executor, "collect_subfields", counted)
    return collections


async def test_a_long_subscription_collects_its_fields_once_not_once_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """graphql-core's memo of collected sub-fields grew by one entry per event, for the life of the subscription."""
    executors: list[PlainFieldExecutor] = []

    class Recording(PlainFieldExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            executors.append(self)

    @strawberry.type
    class LongSubscription:
        @strawberry.subscription
        async def run(self) -> AsyncGenerator[events.RunEvent, None]:
            for _ in range(LONG_RUN_ROUNDS):
                for event in run_events():
                    yield event

    schema = strawberry.Schema(query=Query, subscription=LongSubscription, types=events.EVENT_TYPES)
    schema.execution_context_class = Recording
    collections = count_sub_field_collections(monkeypatch, schema)
    stream = await schema.subscribe("subscription { run { __typename index ... on RunContentDelta { delta } } }")
    results = [result async for result in stream]  # type: ignore[union-attr]
    assert len(results) == 8 * LONG_RUN_ROUNDS and not any(result.errors for result in results)
    assert len(executors) == 1
    # Once per concrete event type met, whatever the number of events.
    types_met = {result.data["run"]["__typename"] for result in results if result.data}
    assert len(types_met) <= len(events.EVENT_TYPES)
    assert collections == [len(types_met)]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(document=queries(str(REFERENCE)))
async def test_generated_operations_answer_as_without_the_executor(document: str) -> None:
    fast, reference = await _both(document)
    assert fast == reference


@strawberry.type(name="Item")
class IntItem:
    value: int


@strawberry.type(name="Query")
class IntRoot:
    @strawberry.field
    def item(self) -> IntItem:
        return IntItem(value=7)


@strawberry.type(name="Item")
class TextItem:
    value: str | None


@strawberry.type(name="Query")
class TextRoot:
    @strawberry.field
    def item(self) -> TextItem:
        return TextItem(value="seven")


async def test_two_schemas_sharing_a_parsed_document_keep_their_own_plans() -> None:
    """Strawberry's ParserCache shares parsed documents between schemas: a plan made for one schema's type must
    not answer for another schema's type of the same name."""

    def schema_of(root: type) -> strawberry.Schema:
        built = strawberry.Schema(query=root, execution_context_class=PlainFieldExecutor, extensions=[ParserCache()])
        lighten_simple_resolvers(built)
        return built

    int_schema, text_schema = schema_of(IntRoot), schema_of(TextRoot)
    document = "{ item { value } }"
    for _ in range(2):  # the text schema first: its plan would coerce the other's 7 to "7"
        assert (await text_schema.execute(document)).data == {"item": {"value": "seven"}}
        assert (await int_schema.execute(document)).data == {"item": {"value": 7}}


async def test_a_list_of_plain_objects_is_completed_in_one_loop_and_anything_else_item_by_item() -> None:
    """Widgets whose selected fields are all plain (a small resolver that needs no `info` among them) skip
    graphql-core's per-item completion; a field needing `info` or a value that is not plainly valid sends the whole
    list through it, with the same answer."""
    items_completed: list[int] = []

    class Counting(PlainFieldExecutor):
        def complete_list_item_value(self, *args: Any, **kwargs: Any) -> bool:
            items_completed.append(1)
            return super().complete_list_item_value(*args, **kwargs)

    schema = _schema(fast=True)
    schema.execution_context_class = Counting
    cases = [
        ("{ widgets { id count mood at shout } }", 0),
        ("{ widgets { id where } }", 4),  # `where` reads info.path: graphql-core's path, per item
        ("{ widgets { id secret } }", 4),  # a permission runs on graphql-core's path
        ("{ broken { id strictCount } }", 5),  # "many" is no Int: the error comes from graphql-core
    ]
    for document, expected_items in cases:
        items_completed.clear()
        result = await schema.execute(document, context_value=CONTEXT)
        assert _comparable(result) == _comparable(await REFERENCE.execute(document, context_value=CONTEXT))
        assert len(items_completed) == expected_items, document


async def test_a_streamed_error_still_gets_its_code_and_an_unexpected_one_is_masked() -> None:
    """Error-free events skip the extensions' per-result hooks (LeanExtensionsRunner); one with errors does not."""
    from agno_graphql.app import AppSchema
    from agno_graphql.error_policy import ErrorPolicy
    from agno_graphql.errors import EventsExpired

    failures: list[Exception] = [EventsExpired("gone"), RuntimeError("secret detail")]

    @strawberry.type
    class Failing:
        @strawberry.subscription
        async def run(self) -> AsyncGenerator[events.RunEvent, None]:
            yield run_events()[1]
            raise failures.pop(0)

    schema = AppSchema(
        query=Query,
        subscription=Failing,
        types=events.EVENT_TYPES,
        extensions=[ErrorPolicy],
        execution_context_class=PlainFieldExecutor,
    )
    document = "subscription { run { __typename ... on RunContentDelta { delta } } }"
    seen = []
    for _ in range(2):
        stream = await schema.subscribe(document, context_value=CONTEXT)
        seen.append([result async for result in stream])  # type: ignore[union-attr]
    for results in seen:
        assert results[0].data == {"run": {"__typename": "RunContentDelta", "delta": "The "}} and not results[0].errors
    expired, unexpected = seen[0][1].errors[0], seen[1][1].errors[0]
    assert expired.message == "gone" and expired.extensions["code"] == "EVENTS_EXPIRED"
    assert unexpected.message == "Internal server error." and unexpected.extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in str(unexpected.extensions)
