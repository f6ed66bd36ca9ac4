"""Running a parser whose refusal is part of its contract, and judging what it let through."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def outcome(call: Callable[[], T], refusal: type[E]) -> T | E:
    """What `call` returns, or the documented refusal it raised, as a value to check; any
    other exception goes through and fails the test."""
    try:
        return call()
    except refusal as exc:
        return exc


def storable(text: str) -> bool:
    """PostgreSQL text can hold it (no NUL) and it encodes as UTF-8 (no lone surrogate)."""
    return "\x00" not in text and text == text.encode("utf-8", "replace").decode("utf-8")
