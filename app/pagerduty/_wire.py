"""Reading PagerDuty's JSON answers defensively: a missing or mistyped field becomes a
`MalformedResponse` that names it, never a KeyError or TypeError escaping."""

from collections.abc import Mapping
from typing import cast

import httpx2

from app.pagerduty.errors import MalformedResponse


def read_json(response: httpx2.Response) -> object:
    try:
        return cast(object, response.json())
    except ValueError as exc:  # includes json.JSONDecodeError and UnicodeDecodeError
        raise MalformedResponse("the body is not JSON", status=response.status_code) from exc


def as_object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{where} is not an object")
    return cast(Mapping[str, object], value)


def as_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise MalformedResponse(f"{where} is not a list")
    return cast(list[object], value)


def required_str(obj: Mapping[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"{where}.{key} is missing or not a string")
    return value


def optional_str(obj: Mapping[str, object], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{where}.{key} is not a string")
    return value


def optional_object(obj: Mapping[str, object], key: str, where: str) -> Mapping[str, object]:
    """An absent or null member reads as an empty object."""
    value = obj.get(key)
    if value is None:
        return {}
    return as_object(value, f"{where}.{key}")
