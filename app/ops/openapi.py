"""The operations endpoints in the OpenAPI document: liveness, readiness, metrics, and this
document itself."""

from __future__ import annotations

from app.web.apidoc import Json, answer, obj, operation, schema, text

TAG = "Operations"
OPEN: list[Json] = []

_STATUS: Json = obj(
    {"status": {"enum": ["ok", "unavailable"]}, "reason": text("Why it is unavailable.")},
    required=("status",),
)

SCHEMAS: Json = {"Status": _STATUS}

PATHS: Json = {
    "/healthz": {
        "get": operation(
            operation_id="healthz",
            summary="The process answers",
            tag=TAG,
            security=OPEN,
            responses={"200": answer("Up.", schema("Status"))},
        )
    },
    "/readyz": {
        "get": operation(
            operation_id="readyz",
            summary="The database answers and every migration is applied",
            tag=TAG,
            security=OPEN,
            responses={
                "200": answer("Ready.", schema("Status")),
                "503": answer("Not ready; `reason` says why.", schema("Status")),
            },
        )
    },
    "/metrics": {
        "get": operation(
            operation_id="metrics",
            summary="Prometheus metrics",
            tag=TAG,
            security=OPEN,
            description="Open unless `PDCONNECT_METRICS_TOKEN` is set; then it wants "
            "`Authorization: Bearer <token>`.",
            responses={
                "200": {
                    "description": "Prometheus' text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": {"description": "The metrics token is set and was not presented."},
            },
        )
    },
    "/openapi.json": {
        "get": operation(
            operation_id="openapi",
            summary="This document",
            tag=TAG,
            security=OPEN,
            responses={"200": answer("OpenAPI 3.1.", {"type": "object"})},
        )
    },
}
