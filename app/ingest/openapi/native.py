"""The ingest API in the OpenAPI document: our native format and Alertmanager's webhook, and
what the drop-ins of PagerDuty's Events API (app/ingest/openapi/drop_ins.py) share with them.

The request schemas say what is accepted, each limit taken from the parser that enforces it;
a few rules no schema states (text without NUL characters, how deep details nest, numbers that
fit 64 bits) are in the descriptions, and a refusal names the field either way.
"""

from __future__ import annotations

from app.ingest._values import JSON_MAX_DEPTH
from app.ingest.native import (
    BATCH_MAX,
    DEDUP_KEY_INPUT_MAX_LENGTH,
    LABEL_NAME_MAX_LENGTH,
    LABEL_VALUE_MAX_LENGTH,
    LABELS_MAX,
    SERVICE_MAX_LENGTH,
    STATUSES,
)
from app.ingest.openapi.examples import ALERTMANAGER_EXAMPLES, NATIVE_EXAMPLES
from app.ingest.routes.alerts import ALERTMANAGER_MAX_BYTES, NATIVE_MAX_BYTES
from app.tenants.keys import INGEST_KEY_PREFIX, INGEST_KEY_SECRET_LENGTH
from app.web.apidoc import (
    INGEST_KEY,
    KEY_ELSEWHERE,
    TIMESTAMP,
    UNAVAILABLE,
    UUID,
    Json,
    answer,
    byte_size,
    json_body,
    nullable,
    obj,
    operation,
    response,
    schema,
    text,
)

TAG = "Ingest"

_STRING_MAP: Json = {"type": "object", "additionalProperties": {"type": "string"}}
_DETAILS: Json = {
    "type": "object",
    "description": "Any JSON object, shown in PagerDuty as the alert's details; nested at "
    f"most {JSON_MAX_DEPTH} levels deep.",
}
LINK: Json = obj({"href": text(min_length=1), "text": text()}, required=("href",))
IMAGE: Json = obj({"src": text(min_length=1), "href": text(), "alt": text()}, required=("src",))

NATIVE_ALERT: Json = {
    **obj(
        {
            "dedup_key": text(
                "Identifies the alert across updates; generated for a trigger without one.",
                min_length=1,
                max_length=DEDUP_KEY_INPUT_MAX_LENGTH,
            ),
            "id": text(
                "Another name for dedup_key.",
                min_length=1,
                max_length=DEDUP_KEY_INPUT_MAX_LENGTH,
            ),
            "status": {
                "enum": list(STATUSES),
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
                "maxProperties": LABELS_MAX,
                "propertyNames": {"minLength": 1, "maxLength": LABEL_NAME_MAX_LENGTH},
                "additionalProperties": text(max_length=LABEL_VALUE_MAX_LENGTH),
                "description": "Routing rules match on these; they are also sent as "
                "details.labels.",
            },
            "details": _DETAILS,
            "links": {"type": "array", "items": LINK},
            "images": {"type": "array", "items": IMAGE},
            "timestamp": {**TIMESTAMP, "description": "ISO 8601."},
            "service": text(
                "Send to this service (our id, PagerDuty's id, or its name) instead of "
                "by the routing rules.",
                min_length=1,
                max_length=SERVICE_MAX_LENGTH,
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
                "maxItems": BATCH_MAX,
                "items": schema("NativeAlert"),
            }
        },
        required=("alerts",),
        closed=True,
    ),
    "description": f"Up to {BATCH_MAX} alerts, accepted or refused whole.",
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

SCHEMAS: Json = {
    "NativeAlert": NATIVE_ALERT,
    "NativeAlertBatch": NATIVE_BATCH,
    "AcceptedEvents": ACCEPTED_EVENTS,
    "AlertmanagerWebhook": ALERTMANAGER_WEBHOOK,
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

KEY_IN_PATH: Json = {
    "name": "ingest_key",
    "in": "path",
    "required": True,
    "description": "The tenant's ingest key, for senders that only take a URL. It is never "
    "written to the logs.",
    "schema": {
        "type": "string",
        "pattern": f"^{INGEST_KEY_PREFIX}[A-Za-z0-9_-]{{{INGEST_KEY_SECRET_LENGTH}}}$",
    },
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
    description=f"One alert, or a batch. At most {byte_size(NATIVE_MAX_BYTES)}.",
)
_ALERTMANAGER_BODY = json_body(
    schema("AlertmanagerWebhook"),
    examples=ALERTMANAGER_EXAMPLES,
    description=f"At most {byte_size(ALERTMANAGER_MAX_BYTES)}.",
)


def _native(key_in_path: bool) -> Json:
    return operation(
        operation_id="sendAlertsByPathKey" if key_in_path else "sendAlerts",
        summary="Send alerts in pdconnect's format",
        tag=TAG,
        security=KEY_ELSEWHERE if key_in_path else INGEST_KEY,
        parameters=[KEY_IN_PATH] if key_in_path else None,
        request_body=_NATIVE_BODY,
        responses=_NATIVE_RESPONSES,
        description="Routes each alert to the tenant's services (the `service` it names; "
        "for an alert pdconnect has seen, the services its trigger went to; else the first "
        "matching rule, else the one service a tenant without rules has) and queues one "
        "event per service. 422 when a firing alert can be sent nowhere; an acknowledge or "
        "resolve with nowhere to go is accepted as skipped.",
    )


def _alertmanager(key_in_path: bool) -> Json:
    parameters = [KEY_IN_PATH, _MODE] if key_in_path else [_MODE]
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


PATHS: Json = {
    "/v1/alerts": {"post": _native(key_in_path=False)},
    "/k/{ingest_key}/v1/alerts": {"post": _native(key_in_path=True)},
    "/v1/alerts/alertmanager": {"post": _alertmanager(key_in_path=False)},
    "/k/{ingest_key}/v1/alerts/alertmanager": {"post": _alertmanager(key_in_path=True)},
}
