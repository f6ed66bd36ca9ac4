"""Who is on call in the OpenAPI document: for the operator (admin token) and for the vendor's
product (the tenant's ingest key), the same answer."""

from __future__ import annotations

from app.web.apidoc import (
    INGEST_KEY,
    TIMESTAMP,
    UNAVAILABLE,
    UUID,
    Json,
    answer,
    nullable,
    obj,
    operation,
    response,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, ok

TAG = "Delivery"
_NAMED = obj({"id": text(), "name": text()}, required=("id", "name"))

SCHEMAS: Json = {
    "OnCallUser": obj(
        {
            "user_id": text("PagerDuty's id of the user."),
            "name": text(),
            "email": nullable(text()),
            "level": {"type": "integer", "minimum": 1, "description": "Escalation level."},
            "since": nullable(TIMESTAMP),
            "until": nullable(
                {
                    **TIMESTAMP,
                    "description": "When the shift ends. Null: the level names the user "
                    "directly, so they are on call for good.",
                }
            ),
            "schedule": nullable(_NAMED),
        },
        required=("user_id", "name", "email", "level", "since", "until", "schedule"),
    ),
    "OnCallService": obj(
        {
            "id": UUID,
            "pd_service_id": nullable(text()),
            "name": text(),
            "escalation_policy": nullable(_NAMED),
            "on_call": {
                "type": "array",
                "items": schema("OnCallUser"),
                "description": "Who is paged first: the first level with anyone on call.",
            },
            "levels": {
                "type": "array",
                "items": obj(
                    {
                        "level": {"type": "integer", "minimum": 1},
                        "escalation_delay_in_minutes": nullable({"type": "integer"}),
                        "targets": {
                            "type": "array",
                            "items": obj(
                                {
                                    "type": {"enum": ["schedule", "user"]},
                                    "id": text(),
                                    "name": text(),
                                },
                                required=("type", "id", "name"),
                            ),
                        },
                        "on_call": {"type": "array", "items": schema("OnCallUser")},
                    },
                    required=("level", "escalation_delay_in_minutes", "targets", "on_call"),
                ),
            },
            "error": nullable(text("This service's own problem, e.g. deleted in PagerDuty.")),
        },
        required=(
            *("id", "pd_service_id", "name", "escalation_policy", "on_call", "levels"),
            "error",
        ),
    ),
    "OnCallAccount": obj(
        {
            "installation_id": UUID,
            "method": {"enum": ["oauth", "simple_install", "manual"]},
            "subdomain": nullable(text()),
            "available": {
                "type": "boolean",
                "description": "False for keys added by hand and Simple Install: they give "
                "no access to PagerDuty's REST API (`unavailable_reason` says so).",
            },
            "unavailable_reason": nullable(text()),
            "fetched_at": nullable(
                {**TIMESTAMP, "description": "When this was read from PagerDuty."}
            ),
            "stale": {
                "type": "boolean",
                "description": "Due to be read again (PDCONNECT_ONCALL_REFRESH, or a "
                "handover passed); it is being read in the background.",
            },
            "error": nullable(text("Why the last read failed; the read before it is shown.")),
            "services": {"type": "array", "items": schema("OnCallService")},
        },
        required=(
            *("installation_id", "method", "subdomain", "available", "unavailable_reason"),
            *("fetched_at", "stale", "error", "services"),
        ),
    ),
    "OnCall": obj(
        {"accounts": {"type": "array", "items": schema("OnCallAccount")}},
        required=("accounts",),
    ),
}

_DESCRIPTION = (
    "For each connected PagerDuty account and service: the escalation policy's levels, whom "
    "each pages (schedules, users), and who is on call on each now and until when. Read from "
    "PagerDuty's REST API for accounts connected with OAuth and kept for "
    "`PDCONNECT_ONCALL_REFRESH` seconds (300), or until the next handover."
)

PATHS: Json = {
    "/admin/v1/tenants/{tenant_id}/oncall": {
        "get": admin_operation(
            "getTenantOnCall",
            "Who is on call for the tenant's services",
            ok("Each account and service.", "OnCall"),
            parameters=[TENANT],
            description=_DESCRIPTION,
        )
    },
    "/v1/oncall": {
        "get": operation(
            operation_id="getOnCall",
            summary="Who is on call for your services",
            description=_DESCRIPTION,
            tag=TAG,
            security=INGEST_KEY,
            responses={
                "200": answer("Each account and service.", schema("OnCall")),
                "401": response("Unauthorized"),
                "429": response("RateLimited"),
                **UNAVAILABLE,
            },
        )
    },
}
