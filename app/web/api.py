"""Shared pieces of the JSON APIs: reading an object, checking the admin token, field checks."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.crypto import same
from app.deps import Deps
from app.errors import InputError, NotFoundError, Unauthenticated
from app.jsoncodec import dumps_compact
from app.web.body import parse_json, read_body

_SURROGATES = range(0xD800, 0xE000)


class CompactJSONResponse(JSONResponse):
    """A JSONResponse (the same bytes), encoded faster: the ingest endpoints answer thousands
    a second (app/jsoncodec.py)."""

    def render(self, content: Any) -> bytes:
        return dumps_compact(content)


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def require_admin(request: Request) -> Deps:
    deps = get_deps(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if (
        scheme.lower() != "bearer"
        or not token
        or not same(token.strip(), deps.config.admin_token)
    ):
        raise Unauthenticated()
    return deps


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object."""
    raw = await read_body(request)
    if not raw:
        return {}
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise InputError("", "request body must be a JSON object", status=400)
    return value


def string_field(
    body: dict[str, Any], name: str, *, required: bool, max_length: int = 200
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InputError(name, "is required")
        return None
    if not isinstance(value, str):
        raise InputError(name, "must be a string")
    value = value.strip()
    if not value:
        if required:
            raise InputError(name, "must not be empty")
        return None
    if len(value) > max_length:
        raise InputError(name, f"must be at most {max_length} characters")
    if any(ord(c) < 32 for c in value):
        raise InputError(name, "must not contain control characters")
    if any(_SURROGATES.start <= ord(c) < _SURROGATES.stop for c in value):
        # JSON can carry a lone \ud800 escape; PostgreSQL cannot store it.
        raise InputError(name, "must be valid Unicode (no unpaired surrogate)")
    return value


def path_uuid(request: Request, name: str, what: str) -> UUID:
    """A malformed id is simply an id that does not exist."""
    try:
        return UUID(str(request.path_params[name]))
    except ValueError as exc:
        raise NotFoundError(what) from exc
