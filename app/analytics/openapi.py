"""A tenant's analytics and targets in the OpenAPI document."""

from __future__ import annotations

from app.analytics.store import SEVERITIES, SOURCE_MAX_LENGTH
from app.analytics.targets import TARGET_MAX_SECONDS
from app.analytics.windows import DEFAULT_WINDOW, WINDOWS
from app.web.apidoc import TIMESTAMP, UUID, Json, json_body, nullable, obj, query, schema, text
from app.web.apidoc_admin import TENANT, admin_operation, ok

_COUNT: Json = {"type": "integer", "minimum": 0}
_SECONDS: Json = nullable({"type": "number", "minimum": 0})
_TARGET_SECONDS: Json = nullable({"type": "integer", "minimum": 1, "maximum": TARGET_MAX_SECONDS})
_FIGURES: Json = {
    "alerts": {**_COUNT, "description": "Trigger events received (one per service sent to)."},
    "incidents": {
        **_COUNT,
        "description": "Alerts opened, per service they went to: each opens an incident there.",
    },
    "suppressed": {**_COUNT, "description": "Events accepted and deliberately not sent."},
    "delivered": _COUNT,
    "failed": _COUNT,
    "cancelled": _COUNT,
    "delivery_success_rate": nullable(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "delivered / (delivered + failed)",
        }
    ),
    "time_to_page_seconds": obj(
        {"p50": _SECONDS, "p95": _SECONDS},
        required=("p50", "p95"),
    ),
    "mtta_seconds": _SECONDS,
    "mttr_seconds": _SECONDS,
    "acknowledged": _COUNT,
    "resolved": _COUNT,
    "noise": obj(
        {"alerts_per_incident": _SECONDS, "resolved_without_acknowledgement": _COUNT},
        required=("alerts_per_incident", "resolved_without_acknowledgement"),
    ),
}
_TARGET: Json = obj(
    {"acknowledge_seconds": _TARGET_SECONDS, "resolve_seconds": _TARGET_SECONDS},
    closed=True,
)
_TARGETS: Json = {
    "type": "object",
    "propertyNames": {"enum": list(SEVERITIES)},
    "additionalProperties": _TARGET,
}

SCHEMAS: Json = {
    "AnalyticsFigures": obj(_FIGURES, required=tuple(_FIGURES)),
    "AnalyticsTargets": obj({"targets": _TARGETS}, required=("targets",)),
    "NewAnalyticsTargets": {
        **obj({"targets": _TARGETS}, closed=True),
        "description": "The whole set: a severity left out, or given nulls, has no target.",
    },
    "Analytics": obj(
        {
            "window": {"enum": list(WINDOWS)},
            "from": TIMESTAMP,
            "to": TIMESTAMP,
            "as_of": {
                **nullable(TIMESTAMP),
                "description": "Everything up to this moment is counted (a minute or two ago).",
            },
            "totals": schema("AnalyticsFigures"),
            "services": {
                "type": "array",
                "items": {
                    "allOf": [
                        schema("AnalyticsFigures"),
                        obj(
                            {
                                "service_id": nullable(UUID),
                                "name": nullable(text()),
                            },
                            required=("service_id", "name"),
                        ),
                    ]
                },
            },
            "series": obj(
                {
                    "unit": {"enum": ["hour", "day"]},
                    "bars": {
                        "type": "array",
                        "items": obj(
                            {
                                "from": TIMESTAMP,
                                "alerts": _COUNT,
                                "incidents": _COUNT,
                                "suppressed": _COUNT,
                            },
                            required=("from", "alerts", "incidents", "suppressed"),
                        ),
                    },
                },
                required=("unit", "bars"),
            ),
            "busiest_sources": {
                "type": "array",
                "items": obj(
                    {"source": text(max_length=SOURCE_MAX_LENGTH), "alerts": _COUNT},
                    required=("source", "alerts"),
                ),
            },
            "targets": _TARGETS,
            "breaches": obj(
                {
                    "acknowledge": _COUNT,
                    "resolve": _COUNT,
                    "recent": {
                        "type": "array",
                        "items": obj(
                            {
                                "alert_id": UUID,
                                "target": {"enum": ["acknowledge", "resolve"]},
                                "dedup_key": text(),
                                "summary": nullable(text()),
                                "severity": {"enum": list(SEVERITIES)},
                                "service_ids": {"type": "array", "items": UUID},
                                "opened_at": TIMESTAMP,
                                "target_seconds": {"type": "integer", "minimum": 1},
                                "took_seconds": {
                                    **_SECONDS,
                                    "description": "Null while the alert was still waiting.",
                                },
                                "found_at": TIMESTAMP,
                            },
                            required=("alert_id", "target", "dedup_key", "opened_at"),
                        ),
                    },
                },
                required=("acknowledge", "resolve", "recent"),
            ),
        },
        required=("window", "from", "to", "totals", "services", "series", "breaches"),
    ),
}

PATHS: Json = {
    "/admin/v1/tenants/{tenant_id}/analytics": {
        "get": admin_operation(
            "getAnalytics",
            "How paging goes for the tenant, in total and per service",
            ok("The figures.", "Analytics"),
            parameters=[
                TENANT,
                query(
                    "window",
                    {"enum": list(WINDOWS), "default": DEFAULT_WINDOW},
                    "The last 24 hours (by hour), 7 or 30 days (by day, UTC).",
                ),
            ],
            extra=("400",),
            description="Read from hourly rollups that trail the clock by a minute or two "
            "(`as_of`). Everything is counted in the hour its alert or event arrived.",
        ),
    },
    "/admin/v1/tenants/{tenant_id}/analytics/targets": {
        "get": admin_operation(
            "getAnalyticsTargets",
            "The tenant's acknowledge and resolve targets per severity",
            ok("The targets.", "AnalyticsTargets"),
            parameters=[TENANT],
        ),
        "put": admin_operation(
            "putAnalyticsTargets",
            "Replace the acknowledge and resolve targets",
            ok("The targets as saved.", "AnalyticsTargets"),
            parameters=[TENANT],
            body=json_body(schema("NewAnalyticsTargets")),
            description="An alert acknowledged (or resolved) later than its severity's target "
            "after it opened, or still waiting past it, is a breach.",
        ),
    },
}
