"""Cursor pagination: validating page arguments, opaque cursors, and keyset bounds.

Cursors carry the sort key of a row (never an offset), so a page stays right
while rows are added or deleted elsewhere in the list.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_

from agno_graphql.errors import BadUserInput
from agno_graphql.records import PageArgs

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class PageRequest:
    """Validated Relay arguments: how many, which end, and the keys to page from."""

    size: int
    backward: bool
    after: tuple[Any, ...] | None
    before: tuple[Any, ...] | None


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, types: Sequence[type]) -> tuple[Any, ...]:
    """The key inside a cursor of this kind; BAD_USER_INPUT for anything else."""
    if len(cursor) > 512:
        raise BadUserInput("Invalid cursor.", argument="cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("Invalid cursor.", argument="cursor") from None
    if not isinstance(data, list) or len(data) != len(types) + 1 or data[0] != kind:
        raise BadUserInput("Invalid cursor: it belongs to another list.", argument="cursor")
    key = tuple(data[1:])
    for value, expected in zip(key, types, strict=True):
        if not isinstance(value, expected) or isinstance(value, bool):
            raise BadUserInput("Invalid cursor.", argument="cursor")
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise BadUserInput("Invalid cursor.", argument="cursor")
    return key


@dataclass(frozen=True, slots=True)
class PageLimits:
    """How long a page is when the client does not say, and the most it may ask for."""

    default_size: int = DEFAULT_PAGE_SIZE
    max_size: int = MAX_PAGE_SIZE


def page_request(kind: str, key_types: Sequence[type], args: PageArgs, limits: PageLimits) -> PageRequest:
    """The validated request of `args` for a list whose cursors are of `kind` with keys of `key_types`."""
    first, after, last, before = args.first, args.after, args.last, args.before
    max_size = limits.max_size
    if first is not None and last is not None:
        raise BadUserInput("Pass either `first` or `last`, not both.", argument="first")
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise BadUserInput(f"`{name}` must not be negative.", argument=name)
        if value is not None and value > max_size:
            raise BadUserInput(f"`{name}` must be at most {max_size}.", argument=name)
    backward = last is not None or (first is None and before is not None and after is None)
    size = last if last is not None else first if first is not None else limits.default_size
    return PageRequest(
        size=size,
        backward=backward,
        after=decode_cursor(kind, after, key_types) if after is not None else None,
        before=decode_cursor(kind, before, key_types) if before is not None else None,
    )


def beyond(columns: Sequence[ColumnElement[Any]], key: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """Rows strictly past `key` in the order (columns, descending), written so an index range applies."""
    head, head_value = columns[0], key[0]
    if len(columns) == 1:
        return head < head_value if descending else head > head_value
    rest = beyond(columns[1:], key[1:], descending)
    strict = head < head_value if descending else head > head_value
    loose = head <= head_value if descending else head >= head_value
    return and_(loose, or_(strict, and_(head == head_value, rest)))


@dataclass
class Page(Generic[T]):
    """One page of items, as the Connection spec describes it. Cursors are made when asked for: a page shown as
    `nodes` needs only the first and the last."""

    items: list[T]
    cursor_of: Callable[[T], str]
    has_next_page: bool
    has_previous_page: bool
    count_total: Callable[[], Awaitable[int]]

    def cursors(self) -> list[str]:
        return [self.cursor_of(item) for item in self.items]

    @property
    def start_cursor(self) -> str | None:
        return self.cursor_of(self.items[0]) if self.items else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursor_of(self.items[-1]) if self.items else None


def finish_page(
    rows: list[T],
    request: PageRequest,
    cursor_of: Callable[[T], str],
    count_total: Callable[[], Awaitable[int]],
) -> Page[T]:
    """Trim the one extra row fetched to learn whether more exist, and put rows in list order."""
    more = len(rows) > request.size
    rows = rows[: request.size]
    if request.backward:
        rows.reverse()
        has_next, has_previous = request.before is not None, more
    else:
        has_next, has_previous = more, request.after is not None
    return Page(
        items=rows,
        cursor_of=cursor_of,
        has_next_page=has_next,
        has_previous_page=has_previous,
        count_total=count_total,
    )
