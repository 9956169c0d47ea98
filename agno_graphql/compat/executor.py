"""The executor: graphql-core's, with plain fields completed directly.

Most fields this API returns are plain attributes of Strawberry types with a scalar or enum type and no
resolver, argument, permission or extension: a session's id, a message's content, a delta's text. graphql-core
completes each one through a path, a resolve info, Strawberry's resolver wrapper and the completion chain, which
was about half of a session page's CPU and most of a streamed event's. Here such a field is read and coerced
directly, with the same resolver and the same coercion; anything else, and any value that is not plainly valid
(null for a non-null field, a failed coercion), goes through graphql-core's own path, so results and errors are
the same as without this executor (tests/test_execution.py compares them).

Fenced here because all of it is graphql-core's and Strawberry's undocumented machinery, checked with graphql-core
3.3.2 and strawberry-graphql 0.341.2 (tests/test_compat.py asserts each part): graphql-core's `ExecutionContext`
methods `execute_fields`, `execute_field`, `execute_collected_root_fields`, `complete_iterable_value`,
`collect_subfields`, `get_stream_usage`, `settle_in_background` and `is_awaitable`, `graphql.execution.collect_fields`'
`FieldDetailsList` / `GroupedFieldSet`; Strawberry's `_is_default` mark and `_get_basic_result` wrapper on a
field's resolver, the converter's `_exception_handler_specs`, `Schema._schema`, and `Info(_raw_info=, _field=)`.

A list of objects whose selected fields are all plain (a page's nodes) is completed in one loop, without
graphql-core's path, resolve info and completion per item; the first item or field that is not plainly valid sends
the whole list through graphql-core's path instead.

Small synchronous resolvers made direct by `lighten_simple_resolvers` (a session's `name`) count as plain: they
are called with an `Info` that has no resolve info behind it, so one that needs `info` (its context, its path)
raises at that use, before doing anything, and the field goes through graphql-core's path with a real one.

Subscriptions execute their selection once per event. graphql-core collects the root fields again for every
event, which also defeats its memo of sub-selections (keyed by the identity of the collected fields, and grown by
one entry per event for the life of the subscription); the root fields are collected once per subscription here.
And an event whose selection is all plain fields (a streamed delta: its type name, ids, index, text) is completed
without an executor of its own: graphql-core copies the executor for every event (`build_per_event_executor`) and
runs the whole operation on the copy (the root field's identity resolver, the abstract type's resolution, the
object's completion). Here the copy's place is taken by the event's finished result, computed from a plan made
once per subscription and event class: Strawberry's subscription field resolves each event to itself, and a
Strawberry type's GraphQL type is the one its definition names (what Strawberry's type resolver answers for an
object that is not cast). Anything else (a nested object such as a tool call, a value that is not plainly valid,
a cast object, middleware) is executed by graphql-core as before. graphql-core's `map_source_to_response_event`
calls `build_per_event_executor` and then, in `execute_subscription_event`, only `execute_operation` on what it
returned (tests/test_compat.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import strawberry
from graphql import (
    ExecutionResult,
    GraphQLAbstractType,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    OperationType,
    Undefined,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet, collect_fields
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.cast import get_strawberry_type_cast

from agno_graphql.compat.strawberry_parts import graphql_core_schema

TYPENAME = "__typename"


class _Leaf:
    """How to complete one plain field directly."""

    __slots__ = ("attribute", "leaf_type", "nullable", "resolve")

    def __init__(
        self, resolve: Callable[..., Any], leaf_type: GraphQLLeafType, nullable: bool, attribute: str | None = None
    ) -> None:
        self.resolve = resolve
        # For a field without a resolver whose schema reads attributes with `getattr` (Strawberry's default): the
        # attribute, read here without the two calls of Strawberry's wrapper.
        self.attribute = attribute
        self.leaf_type = leaf_type
        self.nullable = nullable


# How each field of a collected selection is completed, in its order: a _Leaf, the type name for __typename, or
# None for graphql-core's own path.
_Plan = tuple[_Leaf | str | None, ...]
_PLANS_KEPT = 4096
# Plans by selection, across requests: a selection is told by the identity of its type (several schemas may share
# a parsed document), its response names and the identity of its syntax nodes. Each value keeps the type and the
# nodes alive, so no other object can take one of those identities while the key is kept.
_plans: dict[tuple[Any, ...], tuple[tuple[Any, ...], _Plan]] = {}


class PlainFieldExecutor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Shared with the per-event copies of a subscription's executor (graphql-core copies it shallowly).
        self._plans: dict[int, tuple[GroupedFieldSet, _Plan]] = {}
        self._root_fields: dict[str, GroupedFieldSet] = {}
        middleware = self.middleware_manager
        self._direct = middleware is None or not middleware.middlewares
        # A subscription's root field, as (response name, its field details, its named type), or None when its events
        # go through graphql-core; made on the first event. Then each event class's plain fields, or None.
        self._event_root: tuple[str, FieldDetailsList, GraphQLOutputType] | None = None
        self._event_root_known = False
        self._event_fields: dict[type, tuple[tuple[str, _Leaf | str], ...] | None] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        """The executor of one subscription event: the event's result, when it is all plain fields (see above)."""
        if self._direct:
            data = self._plain_event(payload)
            if data is not None:
                return _EventResult(data)
        return super().build_per_event_executor(payload)

    def _plain_event(self, payload: Any) -> dict[str, Any] | None:
        if not self._event_root_known:
            self._event_root, self._event_root_known = self._subscription_root(), True
        if self._event_root is None:
            return None
        response_name, details, named_type = self._event_root
        try:
            fields = self._event_fields[payload.__class__]
        except KeyError:
            fields = self._event_fields[payload.__class__] = self._event_class_fields(payload, details, named_type)
        if fields is None or get_strawberry_type_cast(payload) is not None:
            return None
        row = _plain_row(fields, payload, self.is_awaitable)
        return None if row is None else {response_name: row}

    def _subscription_root(self) -> tuple[str, FieldDetailsList, GraphQLOutputType] | None:
        operation = self.operation
        root_type = self.schema.subscription_type
        if operation.operation != OperationType.SUBSCRIPTION or root_type is None:
            return None
        collected = collect_fields(
            self.schema, self.fragments, self.variable_values, root_type, operation, self.hide_suggestions
        )
        if collected is None or len(collected[0]) != 1 or collected[1]:
            return None
        ((response_name, details),) = collected[0].items()
        field = root_type.fields.get(details[0].node.name.value)
        # Strawberry's subscription fields resolve each event to itself; a field with a resolver of its own does not
        # qualify (graphql-core's default resolver, for one, would read the event's attribute of the field's name).
        if field is None or field.subscribe is None or field.resolve is None or field.resolve.__name__ != "<lambda>":
            return None
        if any(detail.fragment_variable_values is not None for detail in details):
            return None
        return response_name, details, get_nullable_type(field.type)

    def _event_class_fields(
        self, payload: Any, details: FieldDetailsList, named_type: GraphQLOutputType
    ) -> tuple[tuple[str, _Leaf | str], ...] | None:
        """The plain fields selected on the GraphQL type of objects of `payload`'s class; None when any is not."""
        definition = getattr(payload.__class__, "__strawberry_definition__", None)
        if not isinstance(definition, StrawberryObjectDefinition) or definition.is_graphql_generic:
            return None
        object_type = self.schema.type_map.get(definition.name)
        if not isinstance(object_type, GraphQLObjectType):
            return None
        if object_type is not named_type and not (
            is_abstract_type(named_type) and self.schema.is_sub_type(cast(GraphQLAbstractType, named_type), object_type)
        ):
            return None
        return self._plain_fields(object_type, details)

    def execute_collected_root_fields(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        new_defer_usages: Any,
    ) -> Any:
        if self.operation.operation == OperationType.SUBSCRIPTION:
            # Same document, variables and root type for every event: the same collected fields.
            grouped_field_set = self._root_fields.setdefault(root_type.name, grouped_field_set)
        return super().execute_collected_root_fields(
            root_type, root_value, grouped_field_set, serially, new_defer_usages
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if not self._direct:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            plan = self._plan(parent_type, grouped_field_set)
            for (response_name, field_details_list), how in zip(grouped_field_set.items(), plan, strict=True):
                if isinstance(how, str):
                    results[response_name] = how
                    continue
                if how is not None:
                    value = _complete_directly(how, source_value, is_awaitable)
                    if value is not Undefined:
                        results[response_name] = value
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                name = awaitable_fields[0]
                results[name] = await results[name]
            else:
                values = await gather_with_cancel(*(results[name] for name in awaitable_fields))
                results.update(zip(awaitable_fields, values, strict=True))
            return results

        return get_results()

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo,
        path: Path,
        items: Any,
        position_context: Any,
    ) -> Any:
        """A list whose items are objects with only plain fields selected, each plainly valid, in one loop; anything
        else through graphql-core (nothing here has been recorded or sent by then)."""
        plain = self._plain_item_fields(item_type, field_details_list, path, position_context)
        if plain is not None and items.__class__ is list:
            is_type_of, fields = plain
            is_awaitable = self.is_awaitable
            completed: list[dict[str, Any]] = []
            for item in items:
                # Strawberry's check for types with interfaces is a synchronous isinstance; anything else goes the
                # long way.
                if (
                    item is None
                    or is_awaitable(item)
                    or (is_type_of is not None and is_type_of(item, info) is not True)
                ):
                    break
                row = _plain_row(fields, item, is_awaitable)
                if row is None:
                    break
                completed.append(row)
            else:
                return completed
        return super().complete_iterable_value(item_type, field_details_list, info, path, items, position_context)

    def _plain_item_fields(
        self, item_type: GraphQLOutputType, field_details_list: FieldDetailsList, path: Path, position_context: Any
    ) -> tuple[Callable[..., Any] | None, tuple[tuple[str, _Leaf | str], ...]] | None:
        """(the type check, the fields by response name) when the items are objects whose selected fields are all
        plain, with no @stream or @defer; else None."""
        if not self._direct or position_context is not None:
            return None
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(object_type, GraphQLObjectType):
            return None
        if self.get_stream_usage(field_details_list, path) is not None:
            return None
        fields = self._plain_fields(object_type, field_details_list)
        return None if fields is None else (object_type.is_type_of, fields)

    def _plain_fields(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> tuple[tuple[str, _Leaf | str], ...] | None:
        """The fields selected on `object_type` by response name, when all are plain and none is deferred."""
        grouped_field_set, new_defer_usages, _forbidden = self.collect_subfields(object_type, field_details_list)
        if new_defer_usages:
            return None
        plan = self._plan(object_type, grouped_field_set)
        if None in plan:
            return None
        fields = cast(tuple[_Leaf | str, ...], plan)  # no None: checked above
        return tuple(zip(grouped_field_set, fields, strict=True))

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan:
        # graphql-core memoizes collected sub-fields, so the same selection on many objects (a page's nodes, a
        # stream's events) is the same object within an operation; the value keeps the key's object alive.
        local = self._plans.get(id(grouped_field_set))
        if local is not None:
            return local[1]
        nodes = (parent_type, *(detail.node for details in grouped_field_set.values() for detail in details))
        key = (tuple(grouped_field_set), tuple(map(id, nodes)))
        shared = _plans.get(key)
        if shared is None:
            plan = tuple(_how(parent_type, details) for details in grouped_field_set.values())
            if len(_plans) >= _PLANS_KEPT:
                del _plans[next(iter(_plans))]
            _plans[key] = shared = (nodes, plan)
        self._plans[id(grouped_field_set)] = (grouped_field_set, shared[1])
        return shared[1]


class _EventResult:
    """In place of an event's executor: its result, already complete (what `execute_operation` would return)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return ExecutionResult(data=self.data)


def _how(parent_type: GraphQLObjectType, details: FieldDetailsList) -> _Leaf | str | None:
    node = details[0].node
    name = node.name.value
    if any(detail.fragment_variable_values is not None for detail in details):
        return None
    if name == TYPENAME:
        return parent_type.name
    field = parent_type.fields.get(name)
    if field is None or field.args or node.arguments:
        return None
    # Strawberry marks the resolver of a field with no resolver, permission, extension or error handler; ours marks
    # the small resolvers it calls directly.
    if not (getattr(field.resolve, "_is_default", False) or getattr(field.resolve, _DIRECT_MARK, False)):
        return None
    field_type = field.type
    nullable = not is_non_null_type(field_type)
    named = get_nullable_type(field_type)
    if not is_leaf_type(named):
        return None
    definition = field.extensions.get("strawberry-definition")
    attribute = None
    # Only Strawberry's wrapper for a basic field (no resolver, no extension such as a permission) reads the attribute
    # and nothing else; its other wrappers marked `_is_default` still run extensions.
    if (
        definition is not None
        and getattr(field.resolve, "__name__", None) == "_get_basic_result"
        and getattr(definition, "is_basic_field", False)
        and getattr(definition, "default_resolver", None) is getattr
    ):
        attribute = definition.python_name
    return _Leaf(field.resolve, named, nullable, attribute)


_PLAIN_VALUES = frozenset({str, int, float, bool, datetime})
_DIRECT_MARK = "_agno_graphql_direct"


def _complete_directly(leaf: _Leaf, source: Any, is_awaitable: Callable[[Any], bool]) -> Any:
    """The completed value, or Undefined when graphql-core should complete it (and report any error)."""
    try:
        attribute = leaf.attribute
        value = getattr(source, attribute) if attribute is not None else leaf.resolve(source, None)
        if value is None:
            return None if leaf.nullable else Undefined
        if value.__class__ not in _PLAIN_VALUES and is_awaitable(value):
            return Undefined  # graphql-core awaits it (a String would otherwise serialize the awaitable itself)
        coerced = leaf.leaf_type.coerce_output_value(value)
    except Exception:  # graphql-core completes it again and reports the error
        return Undefined
    return Undefined if coerced is None else coerced


def _plain_row(
    fields: tuple[tuple[str, _Leaf | str], ...], source: Any, is_awaitable: Callable[[Any], bool]
) -> dict[str, Any] | None:
    """One object's plain fields, or None when one of them is not plainly valid."""
    row: dict[str, Any] = {}
    for response_name, how in fields:
        if isinstance(how, str):
            row[response_name] = how
            continue
        value = _complete_directly(how, source, is_awaitable)
        if value is Undefined:
            return None
        row[response_name] = value
    return row


def lighten_simple_resolvers(schema: strawberry.Schema) -> int:
    """Give fields with a small synchronous resolver (no argument, permission, extension or error handler; it
    takes the object and at most `info`) a resolver that calls it directly, as Strawberry would but without
    converting arguments and chaining extensions for each call (a session's `name` on every node of a page).
    Returns how many fields it changed."""
    converter = schema.schema_converter
    if converter._exception_handler_specs:
        return 0
    info_class = schema.config.info_class
    changed = 0
    graphql_schema = graphql_core_schema(schema)
    for graphql_type in graphql_schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type is graphql_schema.subscription_type:
            continue
        for graphql_field in graphql_type.fields.values():
            field = graphql_field.extensions.get("strawberry-definition")
            resolver = getattr(field, "base_resolver", None)
            if resolver is None or graphql_field.args or not _is_simple(field, resolver):
                continue
            graphql_field.resolve = _direct_resolver(resolver.wrapped_func, resolver.info_parameter, field, info_class)
            changed += 1
    return changed


def _is_simple(field: Any, resolver: Any) -> bool:
    if field.arguments or field.extensions or field.permission_classes or resolver.is_async:
        return False
    if resolver.self_parameter is None or resolver.root_parameter or resolver.parent_parameter:
        return False
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    return set(resolver.signature.parameters) <= {resolver.self_parameter.name, info_name}


def _direct_resolver(
    function: Callable[..., Any], info_parameter: Any, field: Any, info_class: type[Any]
) -> Callable[..., Any]:
    if info_parameter is None:

        def resolve_without_info(source: Any, info: Any) -> Any:
            return function(source)

        setattr(resolve_without_info, _DIRECT_MARK, True)
        return resolve_without_info
    name = info_parameter.name

    def resolve_with_info(source: Any, info: Any) -> Any:
        return function(source, **{name: info_class(_raw_info=info, _field=field)})

    setattr(resolve_with_info, _DIRECT_MARK, True)
    return resolve_with_info
