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
from app.ingest.rulebook import UNMATCHED
from app.ingest.severity import OVERRIDES_MAX, PD_SEVERITIES, SEVERITY_NAME_MAX_LENGTH
from app.ingest.templates import (
    DETAIL_NAME_MAX_LENGTH,
    DETAILS_MAX,
    FIELD_PATHS,
    FILTERS,
    LINKS_MAX,
    TEMPLATE_MAX_LENGTH,
    TEXT_FIELDS,
)
from app.web.apidoc import (
    UUID,
    Json,
    json_body,
    nullable,
    obj,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, ok

_SEVERITY: Json = {"enum": list(PD_SEVERITIES)}
_CONDITION_FIELD = ", ".join(FIELDS) + ", or labels.<name>"
_TEMPLATE: Json = text(
    "Text with placeholders `{{ path | filter … }}`: a path is one of "
    + ", ".join(FIELD_PATHS)
    + ", `labels.<name>` or `details.<name>[.<name>…]`; the filters are "
    + ", ".join(FILTERS)
    + ' (`default:"text"`, `truncate:N`). An empty result keeps the alert\'s own value.',
    max_length=TEMPLATE_MAX_LENGTH,
)
_ACTION: Json = {
    "enum": ["page", "suppress"],
    "description": "page (the default) sends matching alerts to `service_ids`; suppress "
    "accepts them (202) and records them as `suppressed`, naming the rule, paging nobody.",
}
_UNMATCHED: Json = {
    "enum": list(UNMATCHED),
    "description": "What a new alert that no rule matches gets: refuse (422, the default) or "
    "suppress (accepted and recorded as `suppressed`, paging nobody).",
}
_RULE_SERVICES: Json = {
    "type": "array",
    "maxItems": RULE_SERVICES_MAX,
    "uniqueItems": True,
    "items": {**UUID, "description": "One of the tenant's services."},
}


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
    "NewRule": {
        **obj(
            {
                "name": text(min_length=1, max_length=RULE_NAME_MAX_LENGTH),
                "conditions": {
                    "type": "array",
                    "maxItems": CONDITIONS_MAX,
                    "items": schema("Condition"),
                    "description": "All must hold; none makes the catch-all.",
                },
                "action": nullable(_ACTION),
                "service_ids": {
                    **_RULE_SERVICES,
                    "description": "Required (at least one) for a rule that pages; none for "
                    "one that suppresses.",
                },
                "templates": nullable(schema("Templates")),
            },
            required=("name",),
        ),
        "if": obj({"action": {"const": "suppress"}}, required=("action",)),
        "then": obj({"service_ids": {"maxItems": 0}}),
        "else": obj({"service_ids": {"minItems": 1}}, required=("service_ids",)),
    },
    "Templates": {
        **obj(
            {
                **{name: _TEMPLATE for name in TEXT_FIELDS},
                "custom_details": {
                    "type": "object",
                    "maxProperties": DETAILS_MAX,
                    "propertyNames": {"minLength": 1, "maxLength": DETAIL_NAME_MAX_LENGTH},
                    "additionalProperties": _TEMPLATE,
                    "description": "Custom details added to (or replacing) the alert's own.",
                },
                "links": {
                    "type": "array",
                    "maxItems": LINKS_MAX,
                    "items": obj(
                        {"href": _TEMPLATE, "text": _TEMPLATE}, required=("href",), closed=True
                    ),
                    "description": "Links added after the alert's own; one whose href renders "
                    "empty is left out.",
                },
            },
            closed=True,
        ),
        "description": "How a rule shapes the PagerDuty event, from the alert's fields and "
        "labels. Checked when saved (422 naming the template); PagerDuty's limits apply after "
        "rendering.",
    },
    "Rule": obj(
        {
            "id": UUID,
            "name": text(),
            "conditions": {"type": "array", "items": schema("Condition")},
            "service_ids": {"type": "array", "items": UUID},
            "action": _ACTION,
            "templates": schema("Templates"),
            "problems": {
                "type": "array",
                "items": obj({"field": text(), "message": text()}, required=("field", "message")),
                "description": "Regex conditions saved before rules used RE2 syntax that RE2 "
                "refuses: each matches nothing until it is changed.",
            },
        },
        required=("id", "name", "conditions", "service_ids", "action", "templates"),
    ),
    "NewRoutes": obj(
        {
            "routes": {
                "type": "array",
                "maxItems": DEFAULT_MAX_RULES_PER_TENANT,
                "items": schema("NewRule"),
                "description": "At most `PDCONNECT_MAX_RULES_PER_TENANT` rules "
                f"({DEFAULT_MAX_RULES_PER_TENANT} unless set).",
            },
            "unmatched": nullable({**_UNMATCHED, "description": "Unchanged when absent."}),
        },
        required=("routes",),
    ),
    "Routes": obj(
        {"routes": {"type": "array", "items": schema("Rule")}, "unmatched": _UNMATCHED},
        required=("routes", "unmatched"),
    ),
    "TemplatePreview": obj(
        {
            "templates": nullable(schema("Templates")),
            "alert": {
                **schema("NativeAlert"),
                "description": "The alert to render against; without it, the tenant's latest.",
            },
        },
    ),
    "RenderedTemplates": obj(
        {
            "alert": nullable(
                obj(
                    {
                        "summary": nullable(text()),
                        "labels": {"type": "object", "additionalProperties": text()},
                    },
                    required=("summary", "labels"),
                )
            ),
            "rendered": {
                "type": "object",
                "description": "Each template's result, by the name it has in `templates`.",
            },
            "warnings": {
                "type": "array",
                "items": text(min_length=1),
                "description": "Placeholders the alert has no value for (they render empty), "
                "or that there was no recent alert to render against.",
            },
        },
        required=("alert", "rendered", "warnings"),
    ),
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
            description="The first rule whose conditions all hold decides what becomes of a "
            "new alert: its services are paged, or (`action: suppress`) it is accepted and "
            "paging nobody. The whole list is checked, then saved at once.",
        ),
    },
    "/admin/v1/tenants/{tenant_id}/routes/preview": {
        "post": admin_operation(
            "previewTemplates",
            "Render rule templates against an alert",
            ok("What the templates make of the alert.", "RenderedTemplates"),
            parameters=[TENANT],
            body=json_body(
                schema("TemplatePreview"),
                examples={
                    "summary_and_link": {
                        "templates": {
                            "summary": "{{ labels.service | upper }}: {{ summary }}",
                            "links": [{"href": "https://example.com/a/{{ dedup_key }}"}],
                        },
                        "alert": {"summary": "Disk full", "labels": {"service": "db"}},
                    }
                },
            ),
            description="Nothing is saved. A template that does not parse is refused (422 "
            "naming it), as it would be when saved.",
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
