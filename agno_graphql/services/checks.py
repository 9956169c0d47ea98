"""Checks of the identifiers and names clients send, shared by the services."""

from __future__ import annotations

from agno_graphql.errors import BadUserInput

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 200


def plausible_id(value: str) -> bool:
    """Whether `value` could name something stored; a lookup of anything else finds nothing without a query."""
    return bool(value) and len(value) <= MAX_ID_CHARS


def check_id(value: str, argument: str) -> str:
    if not plausible_id(value) or not value.isprintable():
        raise BadUserInput(f"`{argument}` must be 1 to {MAX_ID_CHARS} printable characters.", argument=argument)
    return value


def check_length(value: str, argument: str, most: int) -> None:
    if len(value) > most:
        raise BadUserInput(f"`{argument}` is longer than {most} characters.", argument=argument)


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME_CHARS:
        raise BadUserInput(f"`name` must be 1 to {MAX_NAME_CHARS} characters.", argument="name")
    return cleaned
