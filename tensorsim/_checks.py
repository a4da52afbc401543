"""Argument checks shared by the library's modules (messages name the argument)."""

from __future__ import annotations

__all__ = ["check_int"]


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is a Python ``int`` (not ``bool``) ``>= minimum``.

    Raises
    ------
    ValueError
        Otherwise, naming ``name`` and the bound.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value
