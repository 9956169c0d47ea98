"""The node limit: how many nodes an operation may ask for, counted before it runs, by GitHub's rule.

A connection's page size is `last`, else `first`, else the default page size; a variable counts with its value, or
its default when absent. The count is the sum, over every connection whose `nodes` or `edges` are selected, of its
page size times the page sizes of the connections above it (`nodes` and `edges` together count once). A list of
agents multiplies what is under it by the number of registered agents, other lists by one. Aliases count each time,
as they run each time; fields sharing a response key (a field also selected by a fragment) are merged first, as
execution merges them. A subscription counts the selection of one event.

Connections are read from the schema, not listed: a field with a `first` or `last` argument whose type is an object
type with `nodes` or `edges`. So a new connection counts without a change here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
)
from strawberry.extensions import SchemaExtension

from agno_graphql.compat.strawberry_parts import graphql_core_schema
from agno_graphql.context import Context
from agno_graphql.db.pagination import DEFAULT_PAGE_SIZE
from agno_graphql.errors import QueryTooComplex

PAGE_ARGUMENTS = ("last", "first")  # in this order: the first one given sets the page size
ITEM_FIELDS = frozenset({"nodes", "edges"})
AGENT_TYPE = "Agent"


def count_nodes(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
    *,
    default_page_size: int = DEFAULT_PAGE_SIZE,
    agent_count: int = 1,
) -> int:
    """The nodes the operation asks for (0 when the document has no such operation: execution refuses it)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    page_variables = PageVariables.of(document, operation)
    page_sizes = dict(zip(page_variables.names, page_variables.values(variables), strict=True))
    return _Count(schema, document, page_sizes, default_page_size, agent_count).operation(operation)


class NodeCounter:
    """Counts of operations, remembered by document text, operation name, page variables and agent count: a repeated
    operation costs two dict lookups. Each cache keeps the latest `cache_size` entries."""

    def __init__(self, default_page_size: int = DEFAULT_PAGE_SIZE, cache_size: int = 512) -> None:
        self.default_page_size = default_page_size
        self.cache_size = cache_size
        self._page_variables: dict[tuple[str, str | None], PageVariables] = {}
        self._counts: dict[tuple[str, str | None, tuple[int | None, ...], int], int] = {}

    def count(
        self,
        schema: GraphQLSchema,
        text: str | None,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        agent_count: int,
    ) -> int:
        """The nodes of the operation `operation_name` of `document`, parsed from `text`; not remembered without the
        text (a document given parsed: none of the app's transports does)."""
        if text is None:
            return count_nodes(
                schema,
                document,
                operation_name,
                variables,
                default_page_size=self.default_page_size,
                agent_count=agent_count,
            )
        page_variables = self._page_variables.get((text, operation_name))
        if page_variables is None:
            operation = get_operation_ast(document, operation_name)
            if operation is None:
                return 0
            page_variables = PageVariables.of(document, operation)
            self._remember(self._page_variables, (text, operation_name), page_variables)
        values = page_variables.values(variables)
        key = (text, operation_name, values, agent_count)
        nodes = self._counts.get(key)
        if nodes is None:
            operation = get_operation_ast(document, operation_name)
            assert operation is not None  # it was found when its page variables were read
            page_sizes = dict(zip(page_variables.names, values, strict=True))
            nodes = _Count(schema, document, page_sizes, self.default_page_size, agent_count).operation(operation)
            self._remember(self._counts, key, nodes)
        return nodes

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        if len(cache) >= self.cache_size:
            del cache[next(iter(cache))]
        cache[key] = value


class NodeLimit(SchemaExtension):
    """Refuses an operation asking for more than `max_nodes` nodes before it runs: QUERY_TOO_COMPLEX, with `nodes`
    (the count) and `limit` in the error's extensions."""

    def __init__(self, counter: NodeCounter, max_nodes: int) -> None:
        self.counter = counter
        self.max_nodes = max_nodes

    def on_execute(self) -> Iterator[None]:
        # Raised here, the error is the whole result, for `execute` and for `stream` (no source stream is made for a
        # subscription). A hook on validation comes too late: Strawberry reads the validation errors inside the
        # validation hooks (strawberry-graphql 0.341.2).
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            nodes = self.counter.count(
                graphql_core_schema(context.schema),
                context.query,
                document,
                context.operation_name,
                context.variables,
                _registered_agents(context.context),
            )
            if nodes > self.max_nodes:
                raise QueryTooComplex(nodes=nodes, limit=self.max_nodes).as_graphql_error()
        yield


@dataclass(frozen=True, slots=True)
class PageVariables:
    """The variables that can set a page size (given to a `first` or `last` anywhere in the document), with the
    operation's defaults for them."""

    names: tuple[str, ...]
    defaults: tuple[int | None, ...]

    @classmethod
    def of(cls, document: DocumentNode, operation: OperationDefinitionNode) -> PageVariables:
        names: set[str] = set()
        pending = [
            definition.selection_set
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
        ]
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    names.update(
                        argument.value.name.value
                        for argument in selection.arguments or ()
                        if argument.name.value in PAGE_ARGUMENTS and isinstance(argument.value, VariableNode)
                    )
                if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set is not None:
                    pending.append(selection.selection_set)
        declared = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        ordered = tuple(sorted(names))
        return cls(ordered, tuple(_literal_int(declared.get(name)) for name in ordered))

    def values(self, variables: Mapping[str, Any] | None) -> tuple[int | None, ...]:
        """Each variable's page size: its value when given (null, or not a number, sets none), else its default."""
        given = variables or {}
        return tuple(
            _int(given[name]) if name in given else default
            for name, default in zip(self.names, self.defaults, strict=True)
        )


class _Count:
    """One count of one operation with known page sizes. A field reached again through the same fragment (spread in
    several places) is counted once, so the count takes time in the size of the document, not of its expansion."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        page_sizes: Mapping[str, int | None],
        default_page_size: int,
        agent_count: int,
    ) -> None:
        self.schema = schema
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.page_sizes = page_sizes
        self.default_page_size = default_page_size
        self.agent_count = agent_count
        self.holding_connections = _types_holding_connections(schema)
        self._fields: dict[tuple[str, tuple[int, ...]], int] = {}

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        return self._selection(root, [operation.selection_set]) if root is not None else 0

    def _selection(self, parent: GraphQLNamedType, selection_sets: list[SelectionSetNode]) -> int:
        if is_abstract_type(parent):
            # The runtime type decides which fragments apply: the most that any one of the types asks for.
            possible = self.schema.get_possible_types(parent)
            return max((self._object(object_type, selection_sets) for object_type in possible), default=0)
        return self._object(parent, selection_sets) if isinstance(parent, GraphQLObjectType) else 0

    def _object(self, parent: GraphQLObjectType, selection_sets: list[SelectionSetNode]) -> int:
        return sum(self._field(parent, nodes) for nodes in self._collect(parent, selection_sets).values())

    def _field(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> int:
        key = (parent.name, tuple(id(node) for node in nodes))
        count = self._fields.get(key)
        if count is None:
            count = self._fields[key] = self._count_field(parent, nodes)
        return count

    def _count_field(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> int:
        field = parent.fields.get(nodes[0].name.value)  # None for __typename and introspection: no connections
        selection_sets = [node.selection_set for node in nodes if node.selection_set is not None]
        if field is None or not selection_sets:
            return 0
        item_type = get_named_type(field.type)
        connection = isinstance(item_type, GraphQLObjectType) and _is_connection(field, item_type)
        if not connection and item_type.name not in self.holding_connections:
            return 0
        if isinstance(item_type, GraphQLObjectType) and connection:
            size = self._page_size(field, nodes[0])
            selects_items, below_items, beside_items = False, 0, 0
            for group in self._collect(item_type, selection_sets).values():
                if group[0].name.value in ITEM_FIELDS:
                    selects_items = True
                    below_items += self._field(item_type, group)
                else:
                    beside_items += self._field(item_type, group)
            return size * (int(selects_items) + below_items) + beside_items
        times = self.agent_count if _is_list_of(field.type, AGENT_TYPE) else 1
        return times * self._selection(item_type, selection_sets)

    def _collect(self, parent: GraphQLObjectType, selection_sets: list[SelectionSetNode]) -> dict[str, list[FieldNode]]:
        """The fields selected on an object of type `parent`, by response key, as execution groups them. `@skip` and
        `@include` are not evaluated: the fields under them count as selected, so the count is an upper bound."""
        fields: dict[str, list[FieldNode]] = {}
        spread: set[str] = set()
        pending = list(selection_sets)
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    fields.setdefault((selection.alias or selection.name).value, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if self._applies(selection.type_condition, parent):
                        pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in spread:
                    spread.add(selection.name.value)
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is not None and self._applies(fragment.type_condition, parent):
                        pending.append(fragment.selection_set)
        return fields

    def _applies(self, condition: NamedTypeNode | None, parent: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        named = self.schema.get_type(condition.name.value)
        return named is parent or (is_abstract_type(named) and self.schema.is_sub_type(named, parent))

    def _page_size(self, field: GraphQLField, node: FieldNode) -> int:
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in PAGE_ARGUMENTS:
            if name in given:
                size = self._value(given[name])
            elif name in field.args:
                size = _int(field.args[name].default_value)
            else:
                size = None
            if size is not None:
                return max(size, 0)
        return self.default_page_size

    def _value(self, value: ValueNode) -> int | None:
        if isinstance(value, VariableNode):
            return self.page_sizes.get(value.name.value)
        return _literal_int(value)


@functools.lru_cache(maxsize=8)
def _types_holding_connections(schema: GraphQLSchema) -> frozenset[str]:
    """The types under which a connection can be selected, at any depth: a selection on any other type counts
    nothing, whatever it holds, and is not walked (a run event's fragments, for one)."""
    composite = [
        named
        for named in schema.type_map.values()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
    ]
    holding: set[str] = set()
    grew = True
    while grew:
        grew = False
        for named in composite:
            if named.name not in holding and _holds_connections(schema, named, holding):
                holding.add(named.name)
                grew = True
    return frozenset(holding)


def _holds_connections(
    schema: GraphQLSchema, named: GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType, holding: set[str]
) -> bool:
    if is_abstract_type(named) and any(possible.name in holding for possible in schema.get_possible_types(named)):
        return True
    for field in {} if isinstance(named, GraphQLUnionType) else named.fields.values():
        item_type = get_named_type(field.type)
        if item_type.name in holding or (isinstance(item_type, GraphQLObjectType) and _is_connection(field, item_type)):
            return True
    return False


def _is_connection(field: GraphQLField, item_type: GraphQLObjectType) -> bool:
    pages = any(name in field.args for name in PAGE_ARGUMENTS)
    return pages and any(name in item_type.fields for name in ITEM_FIELDS)


def _is_list_of(output_type: GraphQLOutputType, type_name: str) -> bool:
    unwrapped = output_type.of_type if isinstance(output_type, GraphQLNonNull) else output_type
    return isinstance(unwrapped, GraphQLList) and get_named_type(unwrapped).name == type_name


def _literal_int(value: ValueNode | None) -> int | None:
    return int(value.value) if isinstance(value, IntValueNode) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _registered_agents(context: object) -> int:
    """The app's agents. A schema executed without the app's context (a test running it alone) knows no registry:
    its agents count by one, as other lists do."""
    return len(context.services.agents.specs()) if isinstance(context, Context) else 1
