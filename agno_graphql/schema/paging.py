"""The Relay page arguments (`first`, `after`, `last`, `before`), spelled once for every list field.

A resolver declares one `page: PageArgs` parameter and is wrapped with `@relay_page`: the schema shows the
four arguments where `page` stands (so their order in schema.graphql is the order written here), and the
resolver receives them as one `PageArgs`. Strawberry reads a resolver's arguments from
`inspect.signature`, which honours `__signature__`; the byte-for-byte schema test holds the result.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from agno_graphql.records import PageArgs

R = TypeVar("R")

PAGE_PARAMETERS = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    for name, annotation in (("first", int | None), ("after", str | None), ("last", int | None), ("before", str | None))
)


def relay_page(resolver: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """The resolver with its `page: PageArgs` parameter shown to GraphQL as the four Relay arguments."""
    signature = inspect.signature(resolver)
    if "page" not in signature.parameters:
        raise TypeError(f"{resolver.__qualname__} has no `page` parameter for @relay_page")
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name == "page":
            parameters.extend(PAGE_PARAMETERS)
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) if parameters else parameter)

    @functools.wraps(resolver)
    async def paged(
        *args: Any,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        **kwargs: Any,
    ) -> R:
        return await resolver(*args, page=PageArgs(first=first, after=after, last=last, before=before), **kwargs)

    cast(Any, paged).__signature__ = signature.replace(parameters=parameters)
    return paged
