"""What PagerDuty's REST API document says about the calls pdconnect makes, in our own words.

Source: `reference/REST/openapiv3.json` in PagerDuty/api-schema (OpenAPI 3.0.2, "2.0.0"),
cited below as REST.json with the operation id or the JSON pointer each expectation comes
from. Where the document is silent or contradicts PagerDuty's real answers, the comment says
which source was followed instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.published.shapes import (
    Value,
    array,
    boolean,
    integer,
    nullable,
    obj,
    string,
)

# REST.json#/components/parameters/header_Accept: required on every operation, "used as a
# versioning header", default below.
ACCEPT = "application/vnd.pagerduty+json;version=2"
# REST.json#/components/parameters/header_Content-Type: enum ["application/json"], listed on
# the services and escalation policy operations.
CONTENT_TYPE = "application/json"

# REST.json#/components/schemas/Tag/allOf/0: the members every object and reference shares.
_COMMON: dict[str, Value] = {
    "summary": string(nullable=True),
    "self": string(nullable=True),
    "html_url": string(nullable=True),
}


def reference(*types: str) -> Value:
    """REST.json#/components/schemas/Reference: `type` and `id` required, plus the common
    members; each *Reference schema narrows `type` to its own enum."""
    return obj(required={"id": string(), "type": string(*types)}, optional=_COMMON)


SERVICE_REFERENCE = reference("service_reference")  # #/components/schemas/ServiceReference
ESCALATION_POLICY_REFERENCE = reference("escalation_policy_reference")
TEAM_REFERENCE = reference("team_reference")
# #/components/schemas/VendorReference. Not nullable in the document, but PagerDuty answers
# `"vendor": null` for an integration made through the API without a vendor.
VENDOR_REFERENCE = nullable(reference("vendor_reference"))
# #/components/schemas/EscalationTargetReference
ESCALATION_TARGET_REFERENCE = reference(
    "user", "schedule", "user_reference", "schedule_reference", "schedule_v3_reference"
)

# #/components/schemas/Integration, `type` enum.
INTEGRATION_TYPES = (
    "aws_cloudwatch_inbound_integration",
    "cloudkick_inbound_integration",
    "event_transformer_api_inbound_integration",
    "generic_email_inbound_integration",
    "generic_events_api_inbound_integration",
    "keynote_inbound_integration",
    "nagios_inbound_integration",
    "pingdom_inbound_integration",
    "sql_monitor_inbound_integration",
    "events_api_v2_inbound_integration",
)
# #/components/schemas/IntegrationReference, `type` enum: the same with `_reference`, plus a
# generic one.
INTEGRATION_REFERENCE = reference(
    *(t + "_reference" for t in INTEGRATION_TYPES), "inbound_integration_reference"
)

# #/components/schemas/Integration: no member is required by the schema; `id` and `type` come
# from Tag and every answer carries them. `integration_key` is not in the document at all:
# pdconnect relies on it as PagerDuty's own Go client does (`Integration.IntegrationKey`), so
# it is checked apart (`INTEGRATION_KEY_LENGTH`).
INTEGRATION = obj(
    required={"id": string(), "type": string(*INTEGRATION_TYPES)},
    optional=_COMMON
    | {
        "name": string(),
        "service": SERVICE_REFERENCE,
        "created_at": string(date_time=True),
        "vendor": VENDOR_REFERENCE,
    },
)
# pagerduty.md §5 (not the document): an Events API v2 integration's key has 32 characters.
INTEGRATION_KEY_LENGTH = 32

# #/components/schemas/Service: `type` and `escalation_policy` required.
SERVICE_STATUSES = ("active", "warning", "critical", "maintenance", "disabled")


def service(*, full_integrations: bool) -> Value:
    """`integrations` are references unless `include[]=integrations` was asked, then full
    Integration objects (the member's description says so)."""
    return obj(
        required={"type": string("service"), "escalation_policy": ESCALATION_POLICY_REFERENCE},
        optional=_COMMON
        | {
            "id": string(),
            "name": string(),
            "description": string(),
            # "Value is `null` if the feature is disabled" (the members' descriptions).
            "auto_resolve_timeout": integer(nullable=True),
            "acknowledgement_timeout": integer(nullable=True),
            "created_at": string(date_time=True),
            "status": string(*SERVICE_STATUSES),
            # Not nullable in the document; PagerDuty answers null for a service that has
            # never had an incident, and so does the sandbox.
            "last_incident_timestamp": string(nullable=True, date_time=True),
            "teams": array(TEAM_REFERENCE),
            "integrations": array(INTEGRATION if full_integrations else INTEGRATION_REFERENCE),
            # #/components/schemas/IncidentUrgencyRule
            "incident_urgency_rule": obj(
                optional={
                    "type": string("constant", "use_support_hours"),
                    "urgency": string("low", "high", "severity_based"),
                }
            ),
            # #/components/schemas/SupportHours; null in PagerDuty's answers when unset.
            "support_hours": obj(optional={"type": string("fixed_time_per_day")}, nullable=True),
            "scheduled_actions": array(),
            "addons": array(),
            "alert_creation": string("create_incidents", "create_alerts_and_incidents"),
            # #/components/schemas/AlertGroupingParameters: `type` nullable, null in its enum.
            "alert_grouping_parameters": obj(
                optional={"type": string("time", "intelligent", "content_based", nullable=True)}
            ),
        },
    )


# #/components/schemas/EscalationRule: `escalation_delay_in_minutes` and `targets` required.
ESCALATION_RULE = obj(
    required={
        "escalation_delay_in_minutes": integer(),
        "targets": array(ESCALATION_TARGET_REFERENCE),
    },
    optional={"id": string()},
)
# #/components/schemas/EscalationPolicy: `type`, `name`, `escalation_rules` required.
ESCALATION_POLICY = obj(
    required={
        "type": string("escalation_policy"),
        "name": string(),
        "escalation_rules": array(ESCALATION_RULE),
    },
    optional=_COMMON
    | {
        "id": string(),
        "description": string(),
        "num_loops": integer(),
        "on_call_handoff_notifications": string("if_has_services", "always"),
        "services": array(SERVICE_REFERENCE),
        "teams": array(TEAM_REFERENCE),
    },
)


# #/components/schemas/WebhookSubscription: `type`, `delivery_method`, `events`, `filter`
# required; `delivery_method` requires `type` and `url`; `filter` requires `type`; `events`
# has minItems 1 and uniqueItems. `secret` is "only provided on the initial create response".
def webhook_subscription(*, secret_shown: bool) -> Value:
    return obj(
        required={
            "type": string("webhook_subscription"),
            "delivery_method": obj(
                required={"type": string("http_delivery_method"), "url": string()},
                optional={
                    "id": string(),
                    "secret": string() if secret_shown else nullable(string()),
                    "temporarily_disabled": boolean(),
                    "custom_headers": array(obj(optional={"name": string(), "value": string()})),
                },
            ),
            "events": array(string(), min_items=1, unique=True),
            "filter": obj(
                required={
                    "type": string("account_reference", "service_reference", "team_reference")
                },
                optional={"id": string()},
            ),
        },
        optional={"id": string(), "active": boolean(), "description": string()},
    )


# The member's description: "The header values are redacted in GET requests"; the document's
# examples show this text in their place.
REDACTED_HEADER_VALUE = "-- redacted --"

# #/components/schemas/Pagination. The schema lists the members without `required`; every
# classic-paginated answer carries them (PagerDuty's pagination page) and pdconnect pages by
# `more`, so the checks require them.
PAGINATION: dict[str, Value] = {
    "offset": integer(),
    "limit": integer(),
    "more": boolean(),
    "total": integer(nullable=True),
}

# #/components/responses/Conflict (which ArgumentError, Unauthorized, Forbidden, NotFound,
# PaymentRequired and TooManyRequests all point to): `{"error": {code, message, errors[]}}`;
# its example, `{"message": "Not Found", "code": 2100}`, always has both, so both are required.
ERROR = obj(
    required={
        "error": obj(
            required={"code": integer(), "message": string()},
            optional={"errors": array(string())},
        )
    }
)


def wrapped(member: str, inner: Value) -> Value:
    """A single-object body: `{"<member>": {...}}` with the member required."""
    return obj(required={member: inner})


def listed(member: str, inner: Value) -> Value:
    """A classic-paginated list body: the member (required) and the pagination members."""
    return obj(required={member: array(inner)} | PAGINATION)


@dataclass(frozen=True)
class Operation:
    """One documented call: what it answers on success and which errors it documents."""

    operation_id: str
    method: str
    path: str  # as the document writes it
    success: int
    answer: Value | None  # None: no body (204)
    errors: tuple[int, ...]
    request: Value | None = None
    # Query parameters pdconnect sends, with what the document allows for each.
    query: dict[str, Value] = field(default_factory=dict)
    # Headers the document lists as parameters, with their required value.
    headers: dict[str, str] = field(default_factory=dict)


_BOTH = {"Accept": ACCEPT, "Content-Type": CONTENT_TYPE}
_ACCEPT_ONLY = {"Accept": ACCEPT}

# #/components/parameters/offset_limit, offset_offset, offset_total
_PAGING: dict[str, Value] = {"limit": integer(), "offset": integer(), "total": boolean()}

LIST_SERVICES = Operation(
    "listServices",
    "GET",
    "/services",
    200,
    listed("services", service(full_integrations=True)),
    (400, 401, 403),
    # #/components/parameters/include_services
    query=_PAGING
    | {
        "include[]": string(
            "escalation_policies", "teams", "integrations", "auto_pause_notifications_parameters"
        )
    },
    headers=_BOTH,
)
GET_SERVICE = Operation(
    "getService",
    "GET",
    "/services/{id}",
    200,
    wrapped("service", service(full_integrations=False)),
    (400, 401, 403, 404),
    headers=_BOTH,
)
CREATE_SERVICE = Operation(
    "createService",
    "POST",
    "/services",
    201,
    wrapped("service", service(full_integrations=False)),
    (400, 401, 402, 403),
    # The request body is `{"service": Service}`: `type` and `escalation_policy` required.
    # `name` is not required by the schema; PagerDuty refuses a service without one.
    request=wrapped(
        "service",
        obj(
            required={
                "type": string("service"),
                "name": string(),
                "escalation_policy": ESCALATION_POLICY_REFERENCE,
            },
            optional={"description": string(), "status": string("active")},
        ),
    ),
    headers=_BOTH,
)
CREATE_INTEGRATION = Operation(
    "createServiceIntegration",
    "POST",
    "/services/{id}/integrations",
    201,
    wrapped("integration", INTEGRATION),
    (400, 401, 403, 429),
    # `{"integration": Integration}`; the document's "events_v2_integration" example sends
    # `type`, `name` and the service reference.
    request=wrapped(
        "integration",
        obj(
            required={"type": string(*INTEGRATION_TYPES)},
            optional={"name": string(), "service": SERVICE_REFERENCE},
        ),
    ),
    headers=_BOTH,
)
GET_INTEGRATION = Operation(
    "getServiceIntegration",
    "GET",
    "/services/{id}/integrations/{integration_id}",
    200,
    wrapped("integration", INTEGRATION),
    (401, 403, 404, 429),
    headers=_BOTH,
)
# Not in the document, which has only GET and PUT on this path. PagerDuty's own Go client
# (go-pagerduty, `DeleteIntegrationWithContext`) and its Terraform provider call it, and it
# answers like every other delete there: 204 without a body, 404 when gone.
DELETE_INTEGRATION = Operation(
    "(undocumented) deleteServiceIntegration",
    "DELETE",
    "/services/{id}/integrations/{integration_id}",
    204,
    None,
    (401, 403, 404),
    headers=_BOTH,
)
LIST_ESCALATION_POLICIES = Operation(
    "listEscalationPolicies",
    "GET",
    "/escalation_policies",
    200,
    listed("escalation_policies", ESCALATION_POLICY),
    (400, 401, 403, 429),
    # #/components/parameters/include_escalation_policy
    query=_PAGING
    | {
        "include[]": string("services", "teams", "targets", "escalation_rule_assignment_strategies")
    },
    headers=_BOTH,
)
GET_ESCALATION_POLICY = Operation(
    "getEscalationPolicy",
    "GET",
    "/escalation_policies/{id}",
    200,
    wrapped("escalation_policy", ESCALATION_POLICY),
    (401, 403, 404),
    headers=_BOTH,
)
CREATE_WEBHOOK_SUBSCRIPTION = Operation(
    "createWebhookSubscription",
    "POST",
    "/webhook_subscriptions",
    # 200, not 201: "The webhook subscription that was created."
    200,
    wrapped("webhook_subscription", webhook_subscription(secret_shown=True)),
    (400, 401, 403),
    request=wrapped(
        "webhook_subscription",
        obj(
            required={
                "type": string("webhook_subscription"),
                "delivery_method": obj(
                    required={"type": string("http_delivery_method"), "url": string()},
                    optional={
                        "custom_headers": array(obj(required={"name": string(), "value": string()}))
                    },
                ),
                "events": array(string(), min_items=1, unique=True),
                "filter": obj(
                    required={
                        "type": string("account_reference", "service_reference", "team_reference")
                    },
                    optional={"id": string()},
                ),
            },
            optional={"description": string(), "active": boolean()},
        ),
    ),
    headers=_ACCEPT_ONLY,
)
LIST_WEBHOOK_SUBSCRIPTIONS = Operation(
    "listWebhookSubscriptions",
    "GET",
    "/webhook_subscriptions",
    200,
    listed("webhook_subscriptions", webhook_subscription(secret_shown=False)),
    (400, 401, 403),
    query=_PAGING | {"filter_type": string("account", "service", "team"), "filter_id": string()},
    headers=_ACCEPT_ONLY,
)
GET_WEBHOOK_SUBSCRIPTION = Operation(
    "getWebhookSubscription",
    "GET",
    "/webhook_subscriptions/{id}",
    200,
    wrapped("webhook_subscription", webhook_subscription(secret_shown=False)),
    (400, 401, 403, 404),
    headers=_ACCEPT_ONLY,
)
DELETE_WEBHOOK_SUBSCRIPTION = Operation(
    "deleteWebhookSubscription",
    "DELETE",
    "/webhook_subscriptions/{id}",
    204,
    None,
    (400, 401, 403, 404),
    headers=_ACCEPT_ONLY,
)

# Every call pdconnect's RestClient makes (app/pagerduty/rest.py).
PRODUCT_CALLS = (
    LIST_SERVICES,
    LIST_ESCALATION_POLICIES,
    CREATE_SERVICE,
    CREATE_INTEGRATION,
    GET_INTEGRATION,
    DELETE_INTEGRATION,
    CREATE_WEBHOOK_SUBSCRIPTION,
    DELETE_WEBHOOK_SUBSCRIPTION,
)


def path_matches(documented: str, actual: str) -> bool:
    """`/services/{id}` matches `/services/PABC123`: one segment per parameter."""
    want, got = documented.strip("/").split("/"), actual.strip("/").split("/")
    return len(want) == len(got) and all(
        w == g or (w.startswith("{") and w.endswith("}") and g != "")
        for w, g in zip(want, got, strict=True)
    )


def operation_for(method: str, path: str) -> Operation:
    found = [
        op
        for op in (*PRODUCT_CALLS, GET_SERVICE, GET_ESCALATION_POLICY, LIST_WEBHOOK_SUBSCRIPTIONS)
        if op.method == method and path_matches(op.path, path)
    ]
    assert len(found) == 1, f"{method} {path} matches {len(found)} documented operations"
    return found[0]


def query_problems(op: Operation, params: list[tuple[str, str]]) -> list[str]:
    """Each query parameter must be one the document lists, with a value it allows."""
    found: list[str] = []
    for name, raw in params:
        expected = op.query.get(name)
        if expected is None:
            found.append(f"{op.operation_id}: query parameter {name!r} is not documented")
            continue
        value: Any = raw
        if expected.json_type == "integer":
            value = int(raw) if raw.isdigit() else raw
        elif expected.json_type == "boolean":
            value = {"true": True, "false": False}.get(raw, raw)
        if expected.enum and value not in expected.enum:
            found.append(f"{op.operation_id}: {name}={raw!r} is not one of {expected.enum}")
        elif expected.json_type == "integer" and not isinstance(value, int):
            found.append(f"{op.operation_id}: {name}={raw!r} is not an integer")
    return found
