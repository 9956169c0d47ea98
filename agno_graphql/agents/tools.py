"""The calculator agent's tools (type hints and docstrings become their JSON Schemas), and the timeout that
every agent's tools run under."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from agno.tools.function import Function
from agno.tools.toolkit import Toolkit


def _tidy(value: float) -> int | float:
    """12.0 reads better as 12 in an answer."""
    return int(value) if float(value).is_integer() else value


def add(a: float, b: float) -> int | float:
    """Add two numbers and return the sum.

    Args:
        a: The first number.
        b: The second number.
    """
    return _tidy(a + b)


def subtract(a: float, b: float) -> int | float:
    """Subtract b from a and return the difference.

    Args:
        a: The number to subtract from.
        b: The number to subtract.
    """
    return _tidy(a - b)


def multiply(a: float, b: float) -> int | float:
    """Multiply two numbers and return the product.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return _tidy(a * b)


def divide(a: float, b: float) -> int | float | str:
    """Divide a by b and return the quotient.

    Args:
        a: The dividend.
        b: The divisor (not zero).
    """
    if b == 0:
        return "Error: division by zero is undefined."
    return _tidy(a / b)


CALCULATOR_TOOLS = [add, subtract, multiply, divide]


class ToolTimedOut(Exception):
    """A tool did not finish in time. Agno turns it into a failed tool call whose result is this message."""


def with_timeout(tool: Any, seconds: float) -> Any:
    """The tool, ended with ToolTimedOut when a call takes longer than `seconds`.

    Plain functions and Agno `Function`s (from `@tool`) are wrapped; toolkits are left as they are. A
    function that is not async runs in a thread, as Agno runs it: at the timeout the run goes on without
    it, but the thread itself cannot be stopped and finishes in the background."""
    if isinstance(tool, Function):
        if tool.entrypoint is None:
            return tool
        timed = tool.model_copy()
        timed.entrypoint = _timed(tool.entrypoint, tool.name, seconds)
        return timed
    if isinstance(tool, Toolkit) or not inspect.isfunction(tool):
        return tool
    return _timed(tool, tool.__name__, seconds)


def _timed(function: Callable[..., Any], name: str, seconds: float) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        return function
    message = f"The tool {name} did not finish within {seconds:g} s and was stopped."

    @functools.wraps(function)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        call = function(*args, **kwargs) if inspect.iscoroutinefunction(function) else None
        try:
            if call is not None:
                return await asyncio.wait_for(call, seconds)
            return await asyncio.wait_for(asyncio.to_thread(function, *args, **kwargs), seconds)
        except TimeoutError:
            raise ToolTimedOut(message) from None

    return timed
