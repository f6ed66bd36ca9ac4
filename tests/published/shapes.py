"""A small checker for the parts of an OpenAPI schema the expectations use: required members,
JSON types, enums, nullability, date-times, array items and uniqueness.

It is deliberately not a JSON Schema validator: an expectation names only what the document
says and pdconnect cares about, and members it does not name are left alone (PagerDuty's
objects are open: they grow members over time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Value:
    json_type: str  # "string", "integer", "boolean", "object", "array"
    enum: tuple[object, ...] = ()
    nullable: bool = False
    date_time: bool = False
    required: Mapping[str, Value] = field(default_factory=dict)
    optional: Mapping[str, Value] = field(default_factory=dict)
    items: Value | None = None
    min_items: int = 0
    unique: bool = False


def string(*enum: str, nullable: bool = False, date_time: bool = False) -> Value:
    return Value("string", enum=enum, nullable=nullable, date_time=date_time)


def integer(*, nullable: bool = False) -> Value:
    return Value("integer", nullable=nullable)


def boolean() -> Value:
    return Value("boolean")


def obj(
    required: Mapping[str, Value] | None = None,
    optional: Mapping[str, Value] | None = None,
    *,
    nullable: bool = False,
) -> Value:
    return Value("object", nullable=nullable, required=required or {}, optional=optional or {})


def array(items: Value | None = None, *, min_items: int = 0, unique: bool = False) -> Value:
    return Value("array", items=items, min_items=min_items, unique=unique)


def nullable(value: Value) -> Value:
    return Value(**{**value.__dict__, "nullable": True})


def _is_date_time(value: str) -> bool:
    # RFC 3339's date-time; "+0000" (no colon) appears in PagerDuty's own examples.
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or " " in value


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def problems(value: Any, expected: Value, where: str = "$") -> list[str]:
    """Every way `value` differs from `expected`, each naming where; empty when it conforms."""
    if value is None:
        return [] if expected.nullable else [f"{where} is null"]
    # bool is an int in Python, never in JSON
    is_bool_as_int = isinstance(value, bool) and expected.json_type == "integer"
    if not isinstance(value, _TYPES[expected.json_type]) or is_bool_as_int:
        return [f"{where} is {type(value).__name__}, not {expected.json_type}"]
    found: list[str] = []
    if expected.enum and value not in expected.enum:
        found.append(f"{where} = {value!r} is not one of {list(expected.enum)}")
    if expected.date_time and isinstance(value, str) and not _is_date_time(value):
        found.append(f"{where} = {value!r} is not a date-time")
    if isinstance(value, dict):
        for name, member in expected.required.items():
            if name not in value:
                found.append(f"{where}.{name} is missing")
            else:
                found += problems(value[name], member, f"{where}.{name}")
        for name, member in expected.optional.items():
            if name in value:
                found += problems(value[name], member, f"{where}.{name}")
    if isinstance(value, list):
        if len(value) < expected.min_items:
            found.append(f"{where} has {len(value)} items, fewer than {expected.min_items}")
        if expected.unique and len({repr(v) for v in value}) != len(value):
            found.append(f"{where} repeats an item")
        if expected.items is not None:
            for i, item in enumerate(value):
                found += problems(item, expected.items, f"{where}[{i}]")
    return found


def conforms(value: Any, expected: Value) -> None:
    """Fail with every difference at once, so one run shows the whole picture."""
    found = problems(value, expected)
    assert not found, "\n".join(found)
