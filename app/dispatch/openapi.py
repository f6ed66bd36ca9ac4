"""The delivery API in the OpenAPI document: what became of each event, with every attempt and
PagerDuty's answers, read with the tenant's ingest key (and spending its rate limit)."""

from __future__ import annotations

from app.dispatch.routes import BEFORE_MAX, LIMIT_DEFAULT, LIMIT_MAX, STATUSES
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
    path_id,
    query,
    response,
    schema,
    text,
)

TAG = "Delivery"
_STATUS: Json = {"enum": list(STATUSES)}

EVENT: Json = obj(
    {
        "id": UUID,
        "seq": {"type": "integer", "description": "Acceptance order; pages with `before`."},
        "service": nullable(UUID),
        "service_name": nullable(text()),
        "dedup_key": nullable(text()),
        "kind": {"enum": ["trigger", "acknowledge", "resolve", "change"]},
        "api": {"enum": ["v2", "v1"]},
        "source": text("The format it came in: native, alertmanager, events_v2…"),
        "status": _STATUS,
        "attempts": {"type": "integer", "minimum": 0},
        "next_attempt_at": nullable({**TIMESTAMP, "description": "Set while queued."}),
        "created_at": TIMESTAMP,
        "finished_at": nullable(TIMESTAMP),
        "last_error": nullable(
            text("Why it failed, waits or was skipped (\"nothing to resolve: …\").")
        ),
        "alert": nullable(
            {
                **UUID,
                "description": "The alert's life this event belongs to: its trigger, "
                "acknowledge and resolve share it. Null for change and skipped events.",
            }
        ),
        "pagerduty_errors": {"type": "array", "items": text()},
        "notes": {
            "type": "array",
            "items": text(),
            "description": "What the mapping changed on the way, such as a shortened summary.",
        },
        "incident": nullable(
            obj(
                {
                    "status": text(
                        "As PagerDuty's webhooks last said: triggered, acknowledged, resolved."
                    ),
                    "changed_by": nullable(text()),
                    "changed_at": nullable(TIMESTAMP),
                    "html_url": nullable(text()),
                },
                required=("status", "changed_by", "changed_at", "html_url"),
            )
        ),
        "body": {"type": "object", "description": "The Events API body, without the key."},
    },
    required=(
        *("id", "seq", "service", "service_name", "dedup_key", "kind", "api", "source"),
        *("status", "attempts", "next_attempt_at", "created_at", "finished_at", "last_error"),
        *("alert", "pagerduty_errors", "notes", "incident", "body"),
    ),
)

ATTEMPT: Json = obj(
    {
        "started_at": TIMESTAMP,
        "finished_at": nullable(TIMESTAMP),
        "latency_ms": nullable({"type": "integer"}),
        "http_status": nullable({"type": "integer"}),
        "outcome": nullable(
            {
                "enum": [
                    *("delivered", "rejected", "key_rejected", "rate_limited", "retry"),
                    "abandoned",
                ]
            }
        ),
        "response": nullable({"type": "object", "description": "PagerDuty's answer."}),
        "error": nullable(text()),
    },
    required=(
        *("started_at", "finished_at", "latency_ms", "http_status", "outcome", "response"),
        "error",
    ),
)

EVENT_LIST: Json = obj(
    {
        "events": {"type": "array", "items": schema("Event")},
        "next_before": nullable(
            {"type": "integer", "description": "Pass as `before` for the next page."}
        ),
        "retention_days": nullable(
            {
                "type": "integer",
                "minimum": 1,
                "description": "How far back the history goes: an event and its attempts are "
                "removed this many days after they finish (delivered, failed, cancelled, "
                "skipped). Null: kept forever (`PDCONNECT_RETENTION_DAYS=0`).",
            }
        ),
    },
    required=("events", "next_before"),
)

EVENT_DETAIL: Json = {
    "allOf": [
        schema("Event"),
        obj(
            {"delivery_attempts": {"type": "array", "items": schema("DeliveryAttempt")}},
            required=("delivery_attempts",),
        ),
    ]
}

SCHEMAS: Json = {
    "Event": EVENT,
    "DeliveryAttempt": ATTEMPT,
    "EventList": EVENT_LIST,
    "EventDetail": EVENT_DETAIL,
}

PATHS: Json = {
    "/v1/events": {
        "get": operation(
            operation_id="listEvents",
            summary="List the tenant's events, newest first",
            description=(
                "The history goes back as far as the deployment keeps it: a finished event "
                "(delivered, failed, cancelled, skipped) and its delivery attempts are removed "
                "`PDCONNECT_RETENTION_DAYS` after they finish (30 days unless set otherwise; "
                "`retention_days` in the answer says how many). Events still on their way or "
                "held are kept until they finish."
            ),
            tag=TAG,
            security=INGEST_KEY,
            parameters=[
                query("status", _STATUS, "Only events in this state."),
                query("service", UUID, "Only events for this service."),
                query("dedup_key", text(), "Only events of this alert."),
                query(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": LIMIT_MAX,
                        "default": LIMIT_DEFAULT,
                    },
                    "Page size.",
                ),
                query(
                    "before",
                    {"type": "integer", "minimum": 1, "maximum": BEFORE_MAX},
                    "Only events older than this `seq` (the previous page's `next_before`).",
                ),
            ],
            responses={
                "200": answer("A page of events.", schema("EventList")),
                "400": response("BadRequest"),
                "401": response("Unauthorized"),
                "429": response("RateLimited"),
                **UNAVAILABLE,
            },
        )
    },
    "/v1/events/{event_id}": {
        "get": operation(
            operation_id="getEvent",
            summary="One event with every delivery attempt",
            tag=TAG,
            security=INGEST_KEY,
            parameters=[path_id("event_id", "event")],
            responses={
                "200": answer(
                    "The event, its attempts, and PagerDuty's answers.", schema("EventDetail")
                ),
                "401": response("Unauthorized"),
                "404": response("NotFound"),
                "429": response("RateLimited"),
                **UNAVAILABLE,
            },
        )
    },
}
