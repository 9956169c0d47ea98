"""What a query selects below a field, so a resolver can fetch in one statement what it will be asked for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import strawberry
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


def _fields(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    """The fields of a selection set, with fragments (named or inline) flattened into it."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, (FragmentSpread, InlineFragment)):
            yield from _fields(selection.selections)


def selects(info: strawberry.Info, *paths: Sequence[str]) -> bool:
    """Whether the current field's selection reaches any of `paths` (field names, aliases ignored)."""
    for path in paths:
        level: list[Selection] = [s for field in info.selected_fields for s in field.selections]
        for position, name in enumerate(path):
            matches = [field for field in _fields(level) if field.name == name]
            if not matches:
                break
            if position == len(path) - 1:
                return True
            level = [s for field in matches for s in field.selections]
    return False
