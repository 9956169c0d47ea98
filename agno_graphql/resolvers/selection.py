"""What a query selects below a field, so a resolver can fetch in one statement what it will be asked for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode, SelectionNode

from agno_graphql.compat.strawberry_parts import graphql_core_info
from agno_graphql.context import Info


def _fields(
    selections: Iterable[SelectionNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterable[FieldNode]:
    """The fields of a selection set, with fragments (named or inline) flattened into it."""
    for selection in selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set.selections, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set.selections, fragments)


def _children(fields: Iterable[FieldNode]) -> list[SelectionNode]:
    return [s for field in fields if field.selection_set is not None for s in field.selection_set.selections]


def selects(info: Info, *paths: Sequence[str]) -> bool:
    """Whether the current field's selection reaches any of `paths` (field names, aliases ignored).

    Read from graphql-core's syntax tree: Strawberry's `selected_fields` converts the whole selection on every
    call, which cost more than the answer saves on a page of sessions."""
    raw = graphql_core_info(info)
    fragments = raw.fragments
    for path in paths:
        level = _children(raw.field_nodes)
        for position, name in enumerate(path):
            matches = [field for field in _fields(level, fragments) if field.name.value == name]
            if not matches:
                break
            if position == len(path) - 1:
                return True
            level = _children(matches)
    return False
