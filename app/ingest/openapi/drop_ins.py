"""The drop-in copies of PagerDuty's Events API v2 (alerts and change events) and v1 in the
OpenAPI document: PagerDuty's bodies, answers and codes, with the tenant's ingest key as the
routing key."""

from __future__ import annotations

from app.ingest.events_v2 import DEDUP_KEY_INPUT_MAX_LENGTH
from app.ingest.openapi.examples import CHANGE_EXAMPLES, V1_EXAMPLES, V2_EXAMPLES
from app.ingest.openapi.native import IMAGE, KEY_IN_PATH, LINK, TAG
from app.ingest.routes.alerts import DROP_IN_MAX_BYTES
from app.web.apidoc import (
    KEY_ELSEWHERE,
    TIMESTAMP,
    UNAVAILABLE,
    Json,
    answer,
    byte_size,
    json_body,
    nullable,
    obj,
    operation,
    ref,
    response,
    schema,
    text,
)

PAGERDUTY_INVALID: Json = {
    **obj(
        {
            "status": {"const": "invalid event"},
            "message": text(min_length=1),
            "errors": {"type": "array", "minItems": 1, "items": text(min_length=1)},
        },
        required=("status", "message", "errors"),
    ),
    "description": "PagerDuty's own answer to an event it refuses, word for word where "
    "PagerDuty has words for the problem.",
}

PAGERDUTY_THROTTLE: Json = obj(
    {"status": {"const": "throttle exceeded"}, "message": text(min_length=1)},
    required=("status", "message"),
)

# The drop-ins answer their errors in PagerDuty's shapes, not in our Error.
RESPONSES: Json = {
    "PagerDutyInvalid": answer(
        "PagerDuty's refusal: the body is not JSON or not a valid event, or the routing key "
        "is not a live ingest key (`Invalid routing key`).",
        schema("PagerDutyInvalidEvent"),
    ),
    "PagerDutyTooLarge": answer(
        f"The body is larger than PagerDuty's limit of {byte_size(DROP_IN_MAX_BYTES)}.",
        schema("PagerDutyInvalidEvent"),
    ),
    "PagerDutyThrottled": answer(
        "PagerDuty's answer to a key that sends too fast: nothing was stored. Retry after "
        "`Retry-After`.",
        schema("PagerDutyThrottle"),
        **{"Retry-After": ref("headers", "Retry-After")},
    ),
}

_V2_PAYLOAD: Json = obj(
    {
        "summary": text(min_length=1),
        "source": text(min_length=1),
        "severity": text(
            "PagerDuty's critical, error, warning or info; other words go through the "
            "tenant's severity map.",
            min_length=1,
        ),
        "timestamp": TIMESTAMP,
        "component": text(),
        "group": text(),
        "class": text(),
        "custom_details": {"description": "Any JSON value; an object is shown as is."},
    },
    required=("summary", "source", "severity"),
)

_ROUTING_KEY: Json = text("The tenant's ingest key (`pdc_…`).", min_length=1)

EVENTS_V2: Json = {
    **obj(
        {
            "routing_key": _ROUTING_KEY,
            "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
            "dedup_key": text(
                "Required to acknowledge or resolve.",
                min_length=1,
                max_length=DEDUP_KEY_INPUT_MAX_LENGTH,
            ),
            "payload": _V2_PAYLOAD,
            "client": text(),
            "client_url": text(),
            "links": {"type": "array", "items": LINK},
            "images": {"type": "array", "items": IMAGE},
        },
        required=("routing_key", "event_action"),
    ),
    "description": "PagerDuty's Events API v2 event.",
    "if": obj({"event_action": {"const": "trigger"}}, required=("event_action",)),
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}

CHANGE_EVENT: Json = {
    **obj(
        {
            "routing_key": _ROUTING_KEY,
            "payload": obj(
                {
                    "summary": text(min_length=1),
                    "source": text(),
                    "timestamp": TIMESTAMP,
                    "custom_details": {"description": "Any JSON value."},
                },
                required=("summary",),
            ),
            "links": {"type": "array", "items": LINK},
        },
        required=("routing_key", "payload"),
    ),
    "description": "PagerDuty's change event. It needs an Events API v2 service.",
}

_CONTEXT: Json = {
    **obj(
        {
            "type": {"enum": ["link", "image"]},
            "href": text("Required for a link.", min_length=1),
            "text": text(),
            "src": text("Required for an image.", min_length=1),
            "alt": text(),
        },
        required=("type",),
    ),
    "if": obj({"type": {"const": "link"}}),
    "then": {"required": ["href"]},
    "else": {"required": ["src"]},
}

EVENTS_V1: Json = {
    **obj(
        {
            "service_key": text("The tenant's ingest key (`pdc_…`).", min_length=1),
            "event_type": {"enum": ["trigger", "acknowledge", "resolve"]},
            "incident_key": text(
                "Required to acknowledge or resolve.",
                min_length=1,
                max_length=DEDUP_KEY_INPUT_MAX_LENGTH,
            ),
            "description": text("Required to trigger.", min_length=1),
            "details": {"description": "Any JSON value."},
            "client": text(),
            "client_url": text(),
            "contexts": {"type": "array", "items": _CONTEXT},
        },
        required=("service_key", "event_type"),
    ),
    "description": "PagerDuty's Events API v1 event.",
    "if": obj({"event_type": {"const": "trigger"}}, required=("event_type",)),
    "then": {"required": ["description"]},
    "else": {"required": ["incident_key"]},
}

V2_SUCCESS: Json = obj(
    {
        "status": {"const": "success"},
        "message": text(),
        "dedup_key": text("The alert's key (a change event has none)."),
    },
    required=("status", "message"),
)

V1_SUCCESS: Json = obj(
    {
        "status": {"const": "success"},
        "message": text(),
        "incident_key": nullable(text()),
    },
    required=("status", "message", "incident_key"),
)

SCHEMAS: Json = {
    "PagerDutyInvalidEvent": PAGERDUTY_INVALID,
    "PagerDutyThrottle": PAGERDUTY_THROTTLE,
    "EventsV2Event": EVENTS_V2,
    "ChangeEvent": CHANGE_EVENT,
    "EventsV1Event": EVENTS_V1,
    "EventsV2Accepted": V2_SUCCESS,
    "EventsV1Accepted": V1_SUCCESS,
}


def _drop_in(
    *,
    operation_id: str,
    summary: str,
    body: Json,
    success: Json,
    description: str,
    key_in_path: bool,
    throttled: str = "429",
) -> Json:
    where = (
        " The key in the path authenticates; a key in the body is ignored."
        if key_in_path
        else ""
    )
    return operation(
        operation_id=f"{operation_id}ByPathKey" if key_in_path else operation_id,
        summary=summary,
        tag=TAG,
        security=KEY_ELSEWHERE,
        parameters=[KEY_IN_PATH] if key_in_path else None,
        request_body=body,
        responses={
            **success,
            "400": response("PagerDutyInvalid"),
            "413": response("PagerDutyTooLarge"),
            throttled: response("PagerDutyThrottled"),
            **UNAVAILABLE,
        },
        description=description + " A trailing slash on the path is accepted, as PagerDuty "
        "accepts it." + where,
    )


def _v2(key_in_path: bool) -> Json:
    return _drop_in(
        operation_id="enqueueEventsV2",
        summary="PagerDuty Events API v2, drop-in",
        body=json_body(schema("EventsV2Event"), examples=V2_EXAMPLES),
        success={"202": answer("Accepted, in PagerDuty's words.", schema("EventsV2Accepted"))},
        description="The same body, answers and codes as PagerDuty's `/v2/enqueue`, with "
        "the tenant's ingest key as `routing_key`: any tool that sends to PagerDuty sends "
        "here by changing only its URL. An acknowledge or resolve goes where its alert's "
        "trigger went; one for an alert never seen that no rule routes is answered 202 and "
        "recorded as skipped (nothing to resolve), as PagerDuty answers it.",
        key_in_path=key_in_path,
    )


def _change(key_in_path: bool) -> Json:
    return _drop_in(
        operation_id="enqueueChangeEvent",
        summary="PagerDuty change events, drop-in",
        body=json_body(schema("ChangeEvent"), examples=CHANGE_EXAMPLES),
        success={"202": answer("Accepted, in PagerDuty's words.", schema("EventsV2Accepted"))},
        description="PagerDuty's `/v2/change/enqueue`, with the tenant's ingest key as "
        "`routing_key`. Every Events API v2 integration key takes change events; event "
        "ruleset keys and v1 service keys do not (400 naming the service).",
        key_in_path=key_in_path,
    )


def _v1(key_in_path: bool) -> Json:
    return _drop_in(
        operation_id="createEventV1",
        summary="PagerDuty Events API v1, drop-in",
        body=json_body(schema("EventsV1Event"), examples=V1_EXAMPLES),
        success={"200": answer("Accepted, in PagerDuty's words.", schema("EventsV1Accepted"))},
        description="PagerDuty's v1 `create_event.json`, with the tenant's ingest key as "
        "`service_key`. A key that sends too fast gets 403, as PagerDuty's v1 answers it.",
        key_in_path=key_in_path,
        throttled="403",
    )


PATHS: Json = {
    "/v2/enqueue": {"post": _v2(key_in_path=False)},
    "/k/{ingest_key}/v2/enqueue": {"post": _v2(key_in_path=True)},
    "/v2/change/enqueue": {"post": _change(key_in_path=False)},
    "/k/{ingest_key}/v2/change/enqueue": {"post": _change(key_in_path=True)},
    "/generic/2010-04-15/create_event.json": {"post": _v1(key_in_path=False)},
    "/k/{ingest_key}/generic/2010-04-15/create_event.json": {"post": _v1(key_in_path=True)},
}
