"""What every operation of the operator's admin API shares: the tag, the admin token, the
tenant in the path, and the answers that follow from those."""

from __future__ import annotations

from app.web.apidoc import (
    ADMIN_TOKEN,
    UNAVAILABLE,
    Json,
    answer,
    obj,
    operation,
    path_id,
    response,
    schema,
)

TAG = "Admin"
TENANT = path_id("tenant_id", "tenant")

_ERRORS = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "404": "NotFound",
    "409": "Conflict",
    "413": "TooLarge",
    "422": "Unprocessable",
}


def list_of(name: str, item: str) -> Json:
    return obj({name: {"type": "array", "items": schema(item)}}, required=(name,))


def ok(description: str, name: str, code: str = "200") -> Json:
    return {code: answer(description, schema(name))}


def admin_operation(
    operation_id: str,
    summary: str,
    success: Json,
    *,
    parameters: list[Json] | None = None,
    body: Json | None = None,
    extra: tuple[str, ...] = (),
    description: str | None = None,
) -> Json:
    """Every admin operation can answer 401 and 503, every one with an id in its path 404,
    and every one that needs a body 400, 413 and 422."""
    codes = {"401", *extra}
    if any(p["in"] == "path" for p in parameters or ()):
        codes.add("404")
    if body is not None and body.get("required"):
        codes |= {"400", "413", "422"}
    responses: Json = {**success, **{code: response(_ERRORS[code]) for code in sorted(codes)}}
    return operation(
        operation_id=operation_id,
        summary=summary,
        tag=TAG,
        security=ADMIN_TOKEN,
        parameters=parameters,
        request_body=body,
        responses={**responses, **UNAVAILABLE},
        description=description,
    )
