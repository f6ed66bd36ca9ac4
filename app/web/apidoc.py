"""Pieces every part of the OpenAPI document shares: references, bodies, our error shape and
the error answers, security schemes. Each domain's part (its `openapi` module) builds on
these; app/openapi.py assembles them.

Everything here is plain JSON (dicts and lists), written by hand to say exactly what the
endpoints do; the tests hold each documented answer against the running service. A limit a
schema states comes from the constant the code enforces, never a number typed here again.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

JSON = "application/json"

# Security requirement objects.
INGEST_KEY: list[Json] = [{"ingestKey": []}]
ADMIN_TOKEN: list[Json] = [{"adminToken": []}]
# The drop-ins and the `/k/…` paths carry the key where the security scheme cannot see it.
KEY_ELSEWHERE: list[Json] = []


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> Json:
    return ref("schemas", name)


def response(name: str) -> Json:
    return ref("responses", name)


def text(
    description: str | None = None, *, min_length: int = 0, max_length: int | None = None
) -> Json:
    out: Json = {"type": "string"}
    if min_length:
        out["minLength"] = min_length
    if max_length is not None:
        out["maxLength"] = max_length
    if description:
        out["description"] = description
    return out


def byte_size(count: int) -> str:
    """A body limit as people write it: 1 MiB, 512 KiB."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def nullable(value: Json) -> Json:
    """The same schema, or null (OpenAPI 3.1 writes it as a type list)."""
    out = dict(value)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    else:
        out = {"anyOf": [value, {"type": "null"}]}
    return out


def obj(properties: Json, *, required: tuple[str, ...] = (), closed: bool = False) -> Json:
    out: Json = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


UUID: Json = {"type": "string", "format": "uuid"}
TIMESTAMP: Json = {"type": "string", "format": "date-time"}


def json_body(
    body_schema: Json,
    *,
    required: bool = True,
    description: str | None = None,
    examples: dict[str, Json] | None = None,
) -> Json:
    media: Json = {"schema": body_schema}
    if examples:
        media["examples"] = {
            name: {"summary": name.replace("_", " "), "value": value}
            for name, value in examples.items()
        }
    out: Json = {"required": required, "content": {JSON: media}}
    if description:
        out["description"] = description
    return out


def answer(description: str, body_schema: Json | None = None, **headers: Json) -> Json:
    out: Json = {"description": description}
    if body_schema is not None:
        out["content"] = {JSON: {"schema": body_schema}}
    if headers:
        out["headers"] = headers
    return out


def path_id(name: str, what: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id. An id that is malformed, unknown, or another "
        "tenant's answers 404 alike.",
        "schema": UUID,
    }


def query(name: str, param_schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": param_schema,
    }


ERROR: Json = obj(
    {
        "error": obj(
            {
                "message": text("What is wrong, in words a person can act on.", min_length=1),
                "field": text(
                    "Where: a JSON path into the body (`alerts[2].summary`, "
                    "`routes[0].conditions[1].value`) or a query parameter's name. Absent "
                    "when the request as a whole is refused.",
                    min_length=1,
                ),
            },
            required=("message",),
            closed=True,
        )
    },
    required=("error",),
    closed=True,
)

HEADERS: Json = {
    "WWW-Authenticate": {
        "description": "Always `Bearer`.",
        "schema": {"type": "string", "const": "Bearer"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def _error(description: str) -> Json:
    return answer(description, schema("Error"))


RESPONSES: Json = {
    "BadRequest": _error(
        "The body is empty or not JSON (or not a JSON object where one is expected), or a "
        "query parameter is wrong; `field` names the parameter."
    ),
    "Unauthorized": answer(
        "The credentials are missing or wrong.",
        schema("Error"),
        **{"WWW-Authenticate": ref("headers", "WWW-Authenticate")},
    ),
    "NotFound": _error("No such thing for this caller."),
    "Conflict": _error("The request clashes with what exists; `field` says with what."),
    "TooLarge": _error(
        "The body is larger than this endpoint takes; on ingest, also a request that would "
        "write more than one request may (`PDCONNECT_MAX_ALERTS_PER_REQUEST` alerts, "
        "`PDCONNECT_MAX_EVENTS_PER_REQUEST` events after fan-out, or more events than the "
        "ingest key's whole burst). Nothing of it was stored."
    ),
    "Unprocessable": _error(
        "The body is JSON but not what this endpoint takes; `field` names the first problem."
    ),
    "Unavailable": answer(
        "The database is unreachable; nothing was stored, and the same request may be sent "
        "again after `Retry-After`.",
        schema("Error"),
        **{"Retry-After": ref("headers", "Retry-After")},
    ),
}

# Every operation that reads or writes the database.
UNAVAILABLE: Json = {"503": response("Unavailable")}

SECURITY_SCHEMES: Json = {
    "ingestKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "pdc_…",
        "description": "A tenant's ingest key, from `POST /admin/v1/tenants` or "
        "`POST /admin/v1/tenants/{tenant_id}/ingest-keys`. Senders that only take a URL put it "
        "in the path instead (`/k/{ingest_key}/…`); PagerDuty's drop-in endpoints take it as "
        "the body's `routing_key` (Events API v2) or `service_key` (v1).",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's `ADMIN_TOKEN` setting.",
    },
}

COMMON_SCHEMAS: Json = {"Error": ERROR}


def operation(
    *,
    operation_id: str,
    summary: str,
    tag: str,
    responses: Json,
    security: list[Json],
    description: str | None = None,
    parameters: list[Json] | None = None,
    request_body: Json | None = None,
) -> Json:
    out: Json = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
        "responses": responses,
    }
    if description:
        out["description"] = description
    if parameters:
        out["parameters"] = parameters
    if request_body is not None:
        out["requestBody"] = request_body
    return out
