"""A tenant's services and PagerDuty accounts in the OpenAPI document: pasted keys, re-keying,
removing, disconnecting."""

from __future__ import annotations

from app.installations.health_check import LABELS as HEALTH_CHECKS
from app.installations.manual import NAME_MAX_LENGTH, ROUTING_KEY, ROUTING_KEY_LENGTH
from app.web.apidoc import (
    TIMESTAMP,
    UUID,
    Json,
    json_body,
    nullable,
    obj,
    path_id,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, list_of, ok

SCHEMAS: Json = {
    "NewManualService": obj(
        {
            "name": text(min_length=1, max_length=NAME_MAX_LENGTH),
            "routing_key": {
                "type": "string",
                "pattern": ROUTING_KEY.pattern,
                "description": "PagerDuty's integration key (v2) or service key (v1). Never "
                "shown again.",
            },
            "api": {"enum": ["v2", "v1"], "default": "v2"},
            "region": {
                "enum": ["us", "eu"],
                "description": "The service region of the key's PagerDuty account: its events "
                "go to that region's Events API. Default: the deployment's PAGERDUTY_REGION "
                "(us unless set).",
            },
        },
        required=("name", "routing_key"),
    ),
    "NewRoutingKey": obj(
        {"routing_key": {"type": "string", "pattern": ROUTING_KEY.pattern}},
        required=("routing_key",),
    ),
    "Service": obj(
        {
            "id": UUID,
            "installation_id": UUID,
            "region": {"enum": ["us", "eu"]},
            "pd_service_id": nullable(text()),
            "name": text(),
            "kind": text(),
            "api": {"enum": ["v2", "v1"]},
            "integration_id": nullable(text()),
            "rate_limit_per_minute": {"type": "integer", "minimum": 1},
            "health": {"enum": ["healthy", "unhealthy", "gone"]},
            "health_reason": nullable(text()),
            "created_at": TIMESTAMP,
        },
        required=(
            *("id", "installation_id", "region", "pd_service_id", "name", "kind", "api"),
            *("integration_id", "rate_limit_per_minute", "health", "health_reason"),
            "created_at",
        ),
    ),
    "ServiceList": list_of("services", "Service"),
    "ServiceRemoved": obj(
        {
            "removed": UUID,
            "cancelled_events": {"type": "integer", "minimum": 0},
        },
        required=("removed", "cancelled_events"),
    ),
    "Installation": obj(
        {
            "id": UUID,
            "method": {"enum": ["oauth", "simple_install", "manual"]},
            "account_id": nullable(text()),
            "subdomain": nullable(text()),
            "region": {"enum": ["us", "eu"]},
            "status": {"enum": ["active", "needs_reconnect"]},
            "status_reason": nullable(text()),
            "created_at": TIMESTAMP,
        },
        required=(
            *("id", "method", "account_id", "subdomain", "region", "status"),
            *("status_reason", "created_at"),
        ),
    ),
    "InstallationList": list_of("installations", "Installation"),
    "DisconnectReport": obj(
        {
            "deleted_in_pagerduty": {"type": "array", "items": text()},
            "not_deleted": {"type": "array", "items": text()},
            "delete_in_pagerduty_yourself": {"type": "array", "items": text()},
            "token_revoked": nullable({"type": "boolean"}),
            "revoke_access_in_pagerduty_yourself": nullable(
                text(
                    "Set when PagerDuty did not confirm the token's revocation (it documents "
                    "no revocation endpoint): where in PagerDuty the admin removes the app's "
                    "access."
                )
            ),
            "cancelled_events": {"type": "integer", "minimum": 0},
        },
        required=(
            *("deleted_in_pagerduty", "not_deleted", "delete_in_pagerduty_yourself"),
            *("token_revoked", "revoke_access_in_pagerduty_yourself", "cancelled_events"),
        ),
    ),
}

_HEALTH_STATUS: Json = {"enum": ["ok", "warning", "failed"]}
SCHEMAS |= {
    "HealthLine": obj(
        {
            "check": {"enum": list(HEALTH_CHECKS)},
            "label": text(),
            "status": _HEALTH_STATUS,
            "value": text("What was measured."),
            "action": nullable(text("What to do about it; null when there is nothing to do.")),
            "service_id": nullable(UUID),
            "subject": nullable(text("The service's name, for a line about one service.")),
        },
        required=("check", "label", "status", "value", "action", "service_id", "subject"),
    ),
    "HealthReport": obj(
        {
            "installation_id": UUID,
            "method": {"enum": ["oauth", "simple_install", "manual"]},
            "subdomain": nullable(text()),
            "checked_at": TIMESTAMP,
            "trigger": {"enum": ["settings", "api", "scheduled"]},
            "status": _HEALTH_STATUS,
            "not_checked": nullable(
                text("Why the REST lines are missing (no REST access without OAuth).")
            ),
            "keys_probed_at": nullable(
                {**TIMESTAMP, "description": "When the routing keys were last probed."}
            ),
            "lines": {"type": "array", "items": schema("HealthLine")},
        },
        required=(
            *("installation_id", "method", "subdomain", "checked_at", "trigger", "status"),
            *("not_checked", "keys_probed_at", "lines"),
        ),
    ),
    "HealthReports": obj(
        {
            "status": nullable({**_HEALTH_STATUS, "description": "The worst line's."}),
            "accounts": {"type": "array", "items": schema("HealthReport")},
        },
        required=("status", "accounts"),
    ),
}

_HEALTH_DESCRIPTION = (
    "Per PagerDuty account, one line per check, each with a status, the measured value and "
    "what to do: PagerDuty's REST API reachable and its latency, the access token valid, its "
    "scopes (as granted), each service and pdconnect's integration present, each webhook "
    "subscription enabled and its last delivery (OAuth accounts), the delivery error rate of "
    "the last 24 hours, and each routing key accepted, proven with a change event (it pages "
    "nobody; ruleset and v1 keys cannot take one, and their line says so)."
)

_SERVICE = path_id("service_id", "service")
_INSTALLATION = path_id("installation_id", "PagerDuty account")

PATHS: Json = {
    "/admin/v1/tenants/{tenant_id}/health-check": {
        "post": admin_operation(
            "runHealthCheck",
            "Check the tenant's PagerDuty connections now",
            ok("A report per account; each is kept as the account's last.", "HealthReports"),
            parameters=[TENANT],
            description=_HEALTH_DESCRIPTION,
        ),
        "get": admin_operation(
            "getHealthCheck",
            "The last connection check of each account",
            ok(
                "The last report of each account checked so far (the scheduled check runs "
                "every PDCONNECT_HEALTH_CHECK_SECONDS for OAuth accounts).",
                "HealthReports",
            ),
            parameters=[TENANT],
        ),
    },
    "/admin/v1/tenants/{tenant_id}/services": {
        "post": admin_operation(
            "addManualService",
            "Connect a service by a pasted key",
            ok("The service; its key is never echoed.", "Service", "201"),
            parameters=[TENANT],
            body=json_body(
                schema("NewManualService"),
                examples={
                    "a_v2_key": {
                        "name": "Checkout",
                        "routing_key": "R" * ROUTING_KEY_LENGTH,
                        "api": "v2",
                    },
                    "an_eu_key": {
                        "name": "Billing (EU)",
                        "routing_key": "E" * ROUTING_KEY_LENGTH,
                        "api": "v2",
                        "region": "eu",
                    },
                },
            ),
            extra=("409",),
        ),
        "get": admin_operation(
            "listServices",
            "The tenant's services",
            ok("Every service, with its health.", "ServiceList"),
            parameters=[TENANT],
        ),
    },
    "/admin/v1/tenants/{tenant_id}/services/{service_id}": {
        "delete": admin_operation(
            "removeService",
            "Remove a service",
            ok("Removed; its pending events are cancelled.", "ServiceRemoved"),
            parameters=[TENANT, _SERVICE],
        )
    },
    "/admin/v1/tenants/{tenant_id}/services/{service_id}/routing-key": {
        "put": admin_operation(
            "rekeyService",
            "Give a service a new routing key",
            ok("The service; its held events are sent under the new key.", "Service"),
            parameters=[TENANT, _SERVICE],
            body=json_body(schema("NewRoutingKey")),
            extra=("409",),
        )
    },
    "/admin/v1/tenants/{tenant_id}/installations": {
        "get": admin_operation(
            "listInstallations",
            "The tenant's connected PagerDuty accounts",
            ok("Every account.", "InstallationList"),
            parameters=[TENANT],
        )
    },
    "/admin/v1/tenants/{tenant_id}/installations/{installation_id}": {
        "delete": admin_operation(
            "disconnectInstallation",
            "Disconnect a PagerDuty account",
            ok("What was deleted in PagerDuty, and what the admin must.", "DisconnectReport"),
            parameters=[TENANT, _INSTALLATION],
        )
    },
}
