"""A tenant's maintenance windows in the OpenAPI document, with the limits that
app/ingest/windows.py and maintenance.py enforce."""

from __future__ import annotations

from app.ingest.maintenance import WINDOWS_MAX
from app.ingest.routing import CONDITIONS_MAX
from app.ingest.windows import (
    NAME_MAX_LENGTH,
    ONCE_MAX,
    SERVICES_MAX,
    TIME_MAX_LENGTH,
    WEEKLY_MAX,
    ZONE_MAX_LENGTH,
)
from app.web.apidoc import (
    TIMESTAMP,
    UUID,
    Json,
    answer,
    json_body,
    nullable,
    obj,
    path_id,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, list_of, ok

BASE = "/admin/v1/tenants/{tenant_id}/maintenance-windows"
WINDOW = path_id("window_id", "maintenance window")

_TIME: Json = {
    **TIMESTAMP,
    "maxLength": TIME_MAX_LENGTH,
    "description": "RFC 3339 with a UTC offset (Z or +01:00), from 1970 to 9998.",
}
_RECURRENCE: Json = {
    "enum": ["once", "weekly"],
    "description": f"once (at most {ONCE_MAX.days} days long) or weekly: the same wall-clock "
    f"times every week in `time_zone` (at most {WEEKLY_MAX.days} days long). Default once.",
}
_ON_END: Json = {
    "enum": ["drop", "send"],
    "description": "What happens to the alerts it suppressed that are still firing when it "
    "ends: drop forgets them, send triggers them then. Default drop.",
}
_ZONE: Json = text(
    "An IANA time zone (Europe/Berlin) that a weekly window keeps its times in across DST. "
    "Default UTC.",
    min_length=1,
    max_length=ZONE_MAX_LENGTH,
)
_CONDITIONS: Json = {
    "type": "array",
    "maxItems": CONDITIONS_MAX,
    "items": schema("Condition"),
    "description": "As a routing rule's: all must hold for an alert to be suppressed; none "
    "suppresses every alert of the services covered.",
}
_SERVICES: Json = {
    "type": "array",
    "maxItems": SERVICES_MAX,
    "items": {**UUID, "description": "One of the tenant's services."},
    "description": "The services it covers; none (or empty) covers them all.",
}

_NEW_FIELDS: Json = {
    "name": nullable(text("Default `Maintenance`.", max_length=NAME_MAX_LENGTH)),
    "starts_at": _TIME,
    "ends_at": {**_TIME, "description": "After `starts_at`."},
    "recurrence": nullable(_RECURRENCE),
    "time_zone": nullable(_ZONE),
    "recurs_until": nullable(
        {**_TIME, "description": "A weekly window's last occurrence starts at this time at most."}
    ),
    "service_ids": nullable(_SERVICES),
    "conditions": nullable(_CONDITIONS),
    "on_end": nullable(_ON_END),
}

_WINDOW_FIELDS: Json = {
    "id": UUID,
    "name": text(),
    "starts_at": TIMESTAMP,
    "ends_at": TIMESTAMP,
    "recurrence": {"enum": ["once", "weekly"]},
    "time_zone": text(),
    "recurs_until": nullable(TIMESTAMP),
    "service_ids": {"type": "array", "items": UUID},
    "conditions": {"type": "array", "items": schema("Condition")},
    "on_end": {"enum": ["drop", "send"]},
    "ended_early_at": nullable({**TIMESTAMP, "description": "When it was ended early."}),
    "active": {"type": "boolean", "description": "Whether it suppresses alerts now."},
    "current_ends_at": nullable(
        {**TIMESTAMP, "description": "When the occurrence that is on now ends."}
    ),
    "next_starts_at": nullable({**TIMESTAMP, "description": "When the next occurrence begins."}),
}

SCHEMAS: Json = {
    "NewMaintenanceWindow": obj(_NEW_FIELDS, required=("starts_at", "ends_at")),
    "MaintenanceWindowChange": {
        **obj(_NEW_FIELDS),
        "description": "The fields to change; the others keep their values.",
    },
    "MaintenanceWindow": obj(_WINDOW_FIELDS, required=tuple(_WINDOW_FIELDS)),
    "MaintenanceWindows": list_of("maintenance_windows", "MaintenanceWindow"),
}

_ABOUT = (
    "While a window is on, new alerts for the services it covers whose conditions hold are "
    "accepted (202) and recorded as `suppressed`, naming the window; an alert that paged "
    "before it acknowledges and resolves as usual."
)

PATHS: Json = {
    BASE: {
        "get": admin_operation(
            "listMaintenanceWindows",
            "The tenant's maintenance windows",
            ok("The windows, oldest first.", "MaintenanceWindows"),
            parameters=[TENANT],
        ),
        "post": admin_operation(
            "createMaintenanceWindow",
            "Create a maintenance window",
            ok("The window as saved.", "MaintenanceWindow", code="201"),
            parameters=[TENANT],
            body=json_body(
                schema("NewMaintenanceWindow"),
                examples={
                    "tonight": {
                        "name": "Database upgrade",
                        "starts_at": "2030-01-31T22:00:00Z",
                        "ends_at": "2030-02-01T02:00:00Z",
                    },
                    "every_sunday": {
                        "starts_at": "2030-02-03T02:00:00+01:00",
                        "ends_at": "2030-02-03T04:00:00+01:00",
                        "recurrence": "weekly",
                        "time_zone": "Europe/Berlin",
                        "conditions": [{"field": "labels.env", "op": "equals", "value": "staging"}],
                        "on_end": "send",
                    },
                },
            ),
            description=f"{_ABOUT} At most {WINDOWS_MAX} windows a tenant.",
        ),
    },
    BASE + "/{window_id}": {
        "get": admin_operation(
            "getMaintenanceWindow",
            "One maintenance window",
            ok("The window.", "MaintenanceWindow"),
            parameters=[TENANT, WINDOW],
        ),
        "put": admin_operation(
            "replaceMaintenanceWindow",
            "Replace a maintenance window",
            ok("The window as saved.", "MaintenanceWindow"),
            parameters=[TENANT, WINDOW],
            body=json_body(schema("NewMaintenanceWindow")),
            description="Alerts it holds go when the changed window ends (at once, if it is no "
            "longer on), sent or dropped as `on_end` says.",
        ),
        "patch": admin_operation(
            "changeMaintenanceWindow",
            "Change some of a maintenance window's fields",
            ok("The window as saved.", "MaintenanceWindow"),
            parameters=[TENANT, WINDOW],
            body=json_body(schema("MaintenanceWindowChange")),
        ),
        "delete": admin_operation(
            "deleteMaintenanceWindow",
            "Remove a maintenance window",
            {"204": answer("Removed; alerts it still held are forgotten, not sent.")},
            parameters=[TENANT, WINDOW],
        ),
    },
    BASE + "/{window_id}/end": {
        "post": admin_operation(
            "endMaintenanceWindow",
            "End a maintenance window now",
            ok("The window, ended.", "MaintenanceWindow"),
            parameters=[TENANT, WINDOW],
            description="Its alerts still firing are sent or dropped as `on_end` says. A weekly "
            "window's later occurrences still come.",
        ),
    },
}
