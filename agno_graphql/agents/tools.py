"""The calculator agent's tools. Type hints and docstrings become their JSON Schemas."""

from __future__ import annotations


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
