"""A tenant's routing rules and severity map in the OpenAPI document, with the limits that
app/ingest/routing.py and severity.py enforce."""

from __future__ import annotations

from app.config.model import DEFAULT_MAX_RULES_PER_TENANT
from app.ingest.routing import (
    CONDITIONS_MAX,
    FIELDS,
    LABEL_NAME_MAX_LENGTH,
    REGEX_MAX_LENGTH,
    RULE_NAME_MAX_LENGTH,
    RULE_SERVICES_MAX,
    VALUE_MAX_LENGTH,
)
from app.ingest.severity import OVERRIDES_MAX, PD_SEVERITIES, SEVERITY_NAME_MAX_LENGTH
from app.web.apidoc import (
    UUID,
    Json,
    json_body,
    nullable,
    obj,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, list_of, ok

_SEVERITY: Json = {"enum": list(PD_SEVERITIES)}
_CONDITION_FIELD = ", ".join(FIELDS) + ", or labels.<name>"


SCHEMAS: Json = {
    "Condition": {
        **obj(
            {
                "field": {
                    **text(_CONDITION_FIELD),
                    "pattern": f"^({'|'.join(FIELDS)}|labels[.].{{1,{LABEL_NAME_MAX_LENGTH}}})$",
                },
                "op": {"enum": ["equals", "regex", "exists"]},
                "value": nullable(
                    text(
                        f"The text to equal (at most {VALUE_MAX_LENGTH} characters) or a regex "
                        f"to search (1 to {REGEX_MAX_LENGTH} characters, RE2 syntax: no "
                        "backreferences or lookarounds); none for exists.",
                        # One field holds either, so the longer bound is the schema's.
                        max_length=max(VALUE_MAX_LENGTH, REGEX_MAX_LENGTH),
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
            "name": text(min_length=1, max_length=RULE_NAME_MAX_LENGTH),
            "conditions": {
                "type": "array",
                "maxItems": CONDITIONS_MAX,
                "items": schema("Condition"),
                "description": "All must hold; none makes the catch-all.",
            },
            "service_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": RULE_SERVICES_MAX,
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
        {
            "routes": {
                "type": "array",
                "maxItems": DEFAULT_MAX_RULES_PER_TENANT,
                "items": schema("NewRule"),
                "description": "At most `PDCONNECT_MAX_RULES_PER_TENANT` rules "
                f"({DEFAULT_MAX_RULES_PER_TENANT} unless set).",
            }
        },
        required=("routes",),
    ),
    "Routes": list_of("routes", "Rule"),
    "NewSeverityMap": {
        **obj(
            {
                "default": nullable(_SEVERITY),
                "overrides": nullable(
                    {
                        "type": "object",
                        "maxProperties": OVERRIDES_MAX,
                        "propertyNames": {"minLength": 1, "maxLength": SEVERITY_NAME_MAX_LENGTH},
                        "additionalProperties": _SEVERITY,
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
            "default": _SEVERITY,
            "overrides": {"type": "object", "additionalProperties": _SEVERITY},
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
