"""Reading untrusted JSON values: every refusal is an `InputError` naming the JSON path.

Beyond types, text must survive the trip to PostgreSQL (jsonb refuses NUL characters) and to
the wire (an unpaired surrogate cannot be encoded as UTF-8), and numbers must serialise
(`json.dumps` refuses NaN with allow_nan=False, and ints over 4300 digits).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from app.errors import InputError, key_name, text_problem

# Deeper than this is not a detail anyone reads, and it keeps the copy's recursion bounded.
JSON_MAX_DEPTH = 32
# Any 64-bit integer, signed or not; PagerDuty's side cannot be trusted with more.
JSON_INT_MIN = -(2**63)
JSON_INT_MAX = 2**64 - 1

_ISO_8601 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(Z|[+-](\d{2})(?::?(\d{2}))?)?",
    re.ASCII | re.IGNORECASE,
)


def join(prefix: str, name: str) -> str:
    """`alerts[3].` + `summary`, or just `summary` at the top."""
    return f"{prefix}.{name}" if prefix else name


def check_text(value: str, path: str) -> str:
    problem = text_problem(value)
    if problem:
        raise InputError(path, problem)
    return value


def is_iso_8601(value: str) -> bool:
    """A date and time as ISO 8601 writes it (PagerDuty's example: 2015-07-17T08:42:58.315+0000),
    with the calendar and clock checked, not just the shape."""
    match = _ISO_8601.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups()[:6])
    off_hours, off_minutes = int(match.group(9) or 0), int(match.group(10) or 0)
    if off_minutes >= 60:
        return False
    try:
        zone = timezone(timedelta(hours=off_hours, minutes=off_minutes))
        datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return False
    return True


def optional_text(obj: dict[Any, Any], key: str, prefix: str) -> str | None:
    """A string field; absent, null, empty or all spaces reads as absent."""
    value = obj.get(key)
    if value is None:
        return None
    path = join(prefix, key)
    if not isinstance(value, str):
        raise InputError(path, "must be a string")
    check_text(value, path)
    return value if value.strip() else None


def optional_object(obj: dict[Any, Any], key: str, prefix: str) -> dict[Any, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(join(prefix, key), "must be an object")
    return value


def optional_list(obj: dict[Any, Any], key: str, prefix: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(join(prefix, key), "must be a list")
    return value


def string_map(value: dict[Any, Any], path: str) -> dict[str, str]:
    """An object of string to string (labels, annotations), copied."""
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InputError(path, "keys must be strings")
        where = join(path, key_name(key))
        check_text(key, where)
        if not isinstance(item, str):
            raise InputError(where, "must be a string")
        out[key] = check_text(item, where)
    return out


def json_copy(value: object, path: str, depth: int = 0) -> Any:
    """A copy of a JSON value that will serialise strictly and store in jsonb."""
    if depth > JSON_MAX_DEPTH:
        raise InputError(path, f"is nested deeper than {JSON_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_text(value, path)
    if isinstance(value, int):
        if not JSON_INT_MIN <= value <= JSON_INT_MAX:
            raise InputError(path, "is a number too large to send")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(path, "must be a finite number")
        return float(value)
    if isinstance(value, list):
        return [json_copy(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(path, "keys must be strings")
            where = join(path, key_name(key))
            check_text(key, where)
            out[key] = json_copy(item, where, depth + 1)
        return out
    raise InputError(path, "is not a JSON value")
