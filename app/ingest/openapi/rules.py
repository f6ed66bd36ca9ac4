"""A tenant's routing rules and severity map in the OpenAPI document."""

from __future__ import annotations

from app.web.openapi import (
    UUID,
    Json,
    json_body,
    nullable,
    obj,
    schema,
    text,
)
from app.web.openapi_admin import TENANT, admin_operation, list_of, ok

PD_SEVERITIES = ["critical", "error", "warning", "info"]
_CONDITION_FIELD = (
    "summary, severity, source, component, group, class, dedup_key, status, or labels.<name>"
)


SCHEMAS: Json = {
    "Condition": {
        **obj(
            {
                "field": {
                    **text(_CONDITION_FIELD),
                    "pattern": "^(summary|severity|source|component|group|class|dedup_key"
                    "|status|labels[.].{1,100})$",
                },
                "op": {"enum": ["equals", "regex", "exists"]},
                "value": nullable(
                    text(
                        "The text to equal (at most 1024 characters) or a regex to search "
                        "(1 to 200 characters, RE2 syntax: no backreferences or lookarounds); "
                        "none for exists.",
                        max_length=1024,
                    )
                ),
            },
            required=("field", "op"),
        ),
        "if": obj({"op": {"const": "exists"}}, required=("op",)),
        "then": obj({"value": {"type": "null"}}),
        "else": obj({"value": {"type": "string"}}, required=("value",)),
    },
    "NewRule": obj(
        {
            "name": text(min_length=1, max_length=100),
            "conditions": {
                "type": "array",
                "maxItems": 20,
                "items": schema("Condition"),
                "description": "All must hold; none makes the catch-all.",
            },
            "service_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "uniqueItems": True,
                "items": {**UUID, "description": "One of the tenant's services."},
            },
        },
        required=("name", "service_ids"),
    ),
    "Rule": obj(
        {
            "id": UUID,
            "name": text(),
            "conditions": {"type": "array", "items": schema("Condition")},
            "service_ids": {"type": "array", "items": UUID},
            "problems": {
                "type": "array",
                "items": obj({"field": text(), "message": text()}, required=("field", "message")),
                "description": "Regex conditions saved before rules used RE2 syntax that RE2 "
                "refuses: each matches nothing until it is changed.",
            },
        },
        required=("id", "name", "conditions", "service_ids"),
    ),
    "NewRoutes": obj(
        {"routes": {"type": "array", "maxItems": 100, "items": schema("NewRule")}},
        required=("routes",),
    ),
    "Routes": list_of("routes", "Rule"),
    "NewSeverityMap": {
        **obj(
            {
                "default": nullable({"enum": PD_SEVERITIES}),
                "overrides": nullable(
                    {
                        "type": "object",
                        "maxProperties": 200,
                        "propertyNames": {"minLength": 1, "maxLength": 100},
                        "additionalProperties": {"enum": PD_SEVERITIES},
                        "description": "A sender's severity name to PagerDuty's. Names "
                        "compare without case, spaces, dashes or underscores, so each must "
                        "differ from the others in more than those.",
                    }
                ),
            },
            closed=True,
        ),
        "description": "An empty body or `{}` restores the defaults.",
    },
    "SeverityMap": obj(
        {
            "default": {"enum": PD_SEVERITIES},
            "overrides": {"type": "object", "additionalProperties": {"enum": PD_SEVERITIES}},
        },
        required=("default", "overrides"),
    ),
}

PATHS: Json = {
    "/admin/v1/tenants/{tenant_id}/routes": {
        "get": admin_operation(
            "getRoutes",
            "The tenant's routing rules, in order",
            ok("The rules.", "Routes"),
            parameters=[TENANT],
        ),
        "put": admin_operation(
            "putRoutes",
            "Replace the routing rules",
            ok("The rules as saved.", "Routes"),
            parameters=[TENANT],
            body=json_body(schema("NewRoutes")),
            description="The first rule whose conditions all hold sends an alert to its "
            "services. The whole list is checked, then saved at once.",
        ),
    },
    "/admin/v1/tenants/{tenant_id}/severity-map": {
        "get": admin_operation(
            "getSeverityMap",
            "The tenant's severity map",
            ok("The map.", "SeverityMap"),
            parameters=[TENANT],
        ),
        "put": admin_operation(
            "putSeverityMap",
            "Replace the severity map",
            ok("The map as saved.", "SeverityMap"),
            parameters=[TENANT],
            body=json_body(schema("NewSeverityMap"), required=False),
            extra=("400", "413", "422"),
        ),
    },
}
