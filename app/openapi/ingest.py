"""The ingest API in the OpenAPI document: our native format, Alertmanager's webhook, and the
drop-in copies of PagerDuty's Events API v2 (alerts and change events) and v1.

The request schemas say what is accepted; a few rules no schema states (text without NUL
characters, details nested at most 32 deep, numbers that fit 64 bits) are in the
descriptions, and a refusal names the field either way.
"""

from __future__ import annotations

from app.openapi.common import (
    INGEST_KEY,
    KEY_ELSEWHERE,
    TIMESTAMP,
    UNAVAILABLE,
    UUID,
    Json,
    answer,
    json_body,
    nullable,
    obj,
    operation,
    response,
    schema,
    text,
)
from app.openapi.examples import (
    ALERTMANAGER_EXAMPLES,
    CHANGE_EXAMPLES,
    NATIVE_EXAMPLES,
    V1_EXAMPLES,
    V2_EXAMPLES,
)

TAG = "Ingest"

_STRING_MAP: Json = {"type": "object", "additionalProperties": {"type": "string"}}
_DETAILS: Json = {
    "type": "object",
    "description": "Any JSON object, shown in PagerDuty as the alert's details.",
}
_LINK: Json = obj({"href": text(min_length=1), "text": text()}, required=("href",))
_IMAGE: Json = obj({"src": text(min_length=1), "href": text(), "alt": text()}, required=("src",))

NATIVE_ALERT: Json = {
    **obj(
        {
            "dedup_key": text(
                "Identifies the alert across updates; generated for a trigger without one.",
                min_length=1,
                max_length=4096,
            ),
            "id": text("Another name for dedup_key.", min_length=1, max_length=4096),
            "status": {
                "enum": ["firing", "acknowledged", "resolved"],
                "default": "firing",
            },
            "summary": text("Required when firing.", min_length=1),
            "severity": text(
                "Any severity word (critical, P1, SEV-2, warning…); the tenant's severity map "
                "turns it into one of PagerDuty's four."
            ),
            "source": text(),
            "component": text(),
            "group": text(),
            "class": text(),
            "labels": {
                **_STRING_MAP,
                "maxProperties": 100,
                "propertyNames": {"minLength": 1, "maxLength": 100},
                "additionalProperties": text(max_length=1024),
                "description": "Routing rules match on these; they are also sent as "
                "details.labels.",
            },
            "details": _DETAILS,
            "links": {"type": "array", "items": _LINK},
            "images": {"type": "array", "items": _IMAGE},
            "timestamp": {**TIMESTAMP, "description": "ISO 8601."},
            "service": text(
                "Send to this service (our id, PagerDuty's id, or its name) instead of "
                "by the routing rules.",
                min_length=1,
                max_length=255,
            ),
        },
        closed=True,
    ),
    "description": "One alert. Unknown fields are refused, so a misspelt one is caught. "
    "Absent, null and blank fields read alike.",
    "if": obj({"status": {"enum": ["acknowledged", "resolved"]}}, required=("status",)),
    "then": {"anyOf": [{"required": ["dedup_key"]}, {"required": ["id"]}]},
    "else": {"required": ["summary"]},
}

NATIVE_BATCH: Json = {
    **obj(
        {
            "alerts": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": schema("NativeAlert"),
            }
        },
        required=("alerts",),
        closed=True,
    ),
    "description": "Up to 1000 alerts, accepted or refused whole.",
}

ACCEPTED_EVENTS: Json = obj(
    {
        "events": {
            "type": "array",
            "description": "One event per service each alert was routed to (an acknowledge, "
            "resolve or repeated trigger of a known alert goes where its trigger went).",
            "items": obj(
                {
                    "id": UUID,
                    "dedup_key": nullable(text()),
                    "service": nullable(UUID),
                    "service_name": nullable(text()),
                    "status": {
                        "enum": ["queued", "held", "skipped"],
                        "description": "held: the service is unhealthy; the event waits for "
                        "it to be fixed. skipped: an acknowledge or resolve of an alert "
                        "pdconnect never sent, which no rule routes: nothing to resolve, "
                        "recorded and not sent (service is then null).",
                    },
                },
                required=("id", "dedup_key", "service", "service_name", "status"),
            ),
        }
    },
    required=("events",),
)

_AM_ALERT: Json = obj(
    {
        "status": {"enum": ["firing", "resolved"]},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "startsAt": TIMESTAMP,
        "endsAt": TIMESTAMP,
        "generatorURL": text(),
        "fingerprint": text("Identifies the alert in alert mode.", min_length=1),
    },
    required=("status", "fingerprint"),
)

ALERTMANAGER_WEBHOOK: Json = {
    **obj(
        {
            "version": {"const": "4"},
            "groupKey": text("Required in group mode.", min_length=1),
            "truncatedAlerts": {"type": "integer"},
            "status": {"enum": ["firing", "resolved"], "description": "Required in group mode."},
            "receiver": text(),
            "groupLabels": _STRING_MAP,
            "commonLabels": _STRING_MAP,
            "commonAnnotations": _STRING_MAP,
            "externalURL": text(),
            "alerts": {"type": "array", "minItems": 1, "items": _AM_ALERT},
        },
        required=("version", "groupKey", "status", "alerts"),
    ),
    "description": "Prometheus Alertmanager's webhook body (version 4), as it sends it.",
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
            "dedup_key": text("Required to acknowledge or resolve.", min_length=1, max_length=4096),
            "payload": _V2_PAYLOAD,
            "client": text(),
            "client_url": text(),
            "links": {"type": "array", "items": _LINK},
            "images": {"type": "array", "items": _IMAGE},
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
            "links": {"type": "array", "items": _LINK},
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
                "Required to acknowledge or resolve.", min_length=1, max_length=4096
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
    "NativeAlert": NATIVE_ALERT,
    "NativeAlertBatch": NATIVE_BATCH,
    "AcceptedEvents": ACCEPTED_EVENTS,
    "AlertmanagerWebhook": ALERTMANAGER_WEBHOOK,
    "EventsV2Event": EVENTS_V2,
    "ChangeEvent": CHANGE_EVENT,
    "EventsV1Event": EVENTS_V1,
    "EventsV2Accepted": V2_SUCCESS,
    "EventsV1Accepted": V1_SUCCESS,
}

_NATIVE_RESPONSES: Json = {
    "202": answer(
        "Accepted: every event is committed and will be delivered to PagerDuty.",
        schema("AcceptedEvents"),
    ),
    "400": response("BadRequest"),
    "401": response("Unauthorized"),
    "413": response("TooLarge"),
    "422": response("Unprocessable"),
    "429": response("RateLimited"),
    **UNAVAILABLE,
}

_KEY_IN_PATH: Json = {
    "name": "ingest_key",
    "in": "path",
    "required": True,
    "description": "The tenant's ingest key, for senders that only take a URL. It is never "
    "written to the logs.",
    "schema": {"type": "string", "pattern": "^pdc_[A-Za-z0-9_-]{32}$"},
}

_MODE: Json = {
    "name": "mode",
    "in": "query",
    "required": False,
    "description": "group: one PagerDuty alert per Alertmanager group, exactly as "
    "Alertmanager's own PagerDuty receiver sends it. alert: one per Alertmanager alert, keyed "
    "by its fingerprint.",
    "schema": {"enum": ["group", "alert"], "default": "group"},
}

_NATIVE_BODY = json_body(
    {"oneOf": [schema("NativeAlert"), schema("NativeAlertBatch")]},
    examples=NATIVE_EXAMPLES,
    description="One alert, or a batch. At most 1 MiB.",
)
_ALERTMANAGER_BODY = json_body(
    schema("AlertmanagerWebhook"),
    examples=ALERTMANAGER_EXAMPLES,
    description="At most 4 MiB.",
)


def _native(key_in_path: bool) -> Json:
    return operation(
        operation_id="sendAlertsByPathKey" if key_in_path else "sendAlerts",
        summary="Send alerts in pdconnect's format",
        tag=TAG,
        security=KEY_ELSEWHERE if key_in_path else INGEST_KEY,
        parameters=[_KEY_IN_PATH] if key_in_path else None,
        request_body=_NATIVE_BODY,
        responses=_NATIVE_RESPONSES,
        description="Routes each alert to the tenant's services (the `service` it names; "
        "for an alert pdconnect has seen, the services its trigger went to; else the first "
        "matching rule, else the one service a tenant without rules has) and queues one "
        "event per service. 422 when a firing alert can be sent nowhere; an acknowledge or "
        "resolve with nowhere to go is accepted as skipped.",
    )


def _alertmanager(key_in_path: bool) -> Json:
    parameters = [_KEY_IN_PATH, _MODE] if key_in_path else [_MODE]
    return operation(
        operation_id="sendAlertmanagerWebhookByPathKey"
        if key_in_path
        else "sendAlertmanagerWebhook",
        summary="Receive a Prometheus Alertmanager webhook",
        tag=TAG,
        security=KEY_ELSEWHERE if key_in_path else INGEST_KEY,
        parameters=parameters,
        request_body=_ALERTMANAGER_BODY,
        responses=_NATIVE_RESPONSES,
        description="Point an Alertmanager `webhook_configs` receiver here. A wrong `mode` "
        "answers 400 before the key is checked.",
    )


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
        parameters=[_KEY_IN_PATH] if key_in_path else None,
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
    "/v1/alerts": {"post": _native(key_in_path=False)},
    "/k/{ingest_key}/v1/alerts": {"post": _native(key_in_path=True)},
    "/v1/alerts/alertmanager": {"post": _alertmanager(key_in_path=False)},
    "/k/{ingest_key}/v1/alerts/alertmanager": {"post": _alertmanager(key_in_path=True)},
    "/v2/enqueue": {"post": _v2(key_in_path=False)},
    "/k/{ingest_key}/v2/enqueue": {"post": _v2(key_in_path=True)},
    "/v2/change/enqueue": {"post": _change(key_in_path=False)},
    "/k/{ingest_key}/v2/change/enqueue": {"post": _change(key_in_path=True)},
    "/generic/2010-04-15/create_event.json": {"post": _v1(key_in_path=False)},
    "/k/{ingest_key}/generic/2010-04-15/create_event.json": {"post": _v1(key_in_path=True)},
}
