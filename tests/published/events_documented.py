"""What PagerDuty's Events API documents say about the events pdconnect sends, in our words.

Sources in PagerDuty/api-schema:
- `reference/events-v2/openapiv3.json` (cited as EV2.json): server
  `https://events.pagerduty.com/v2`, operations `createV2Event` (POST /enqueue) and
  `createChangeEvent` (POST /change/enqueue);
- `reference/events-v1/openapiv3.json` (cited as EV1.json): server
  `https://events.pagerduty.com/generic/2010-04-15`, operation `createV1Event`
  (POST /create_event.json).
"""

from __future__ import annotations

from tests.published.shapes import Value, array, obj, string

# Server URL + operation path, as a client must call them.
V2_PATH = "/v2/enqueue"  # EV2.json createV2Event
CHANGE_PATH = "/v2/change/enqueue"  # EV2.json createChangeEvent
V1_PATH = "/generic/2010-04-15/create_event.json"  # EV1.json createV1Event

# EV2.json#/components/schemas/Links: items require `href`.
LINKS = array(obj(required={"href": string()}, optional={"text": string()}))
# EV2.json#/components/schemas/Images: items require `src` ("must be served via HTTPS").
IMAGES = array(obj(required={"src": string()}, optional={"href": string(), "alt": string()}))

SEVERITIES = ("critical", "warning", "error", "info")  # EV2.json Payload.severity enum
ACTIONS = ("trigger", "acknowledge", "resolve")  # EV2.json createV2Event event_action enum

# EV2.json#/components/schemas/Payload: `summary`, `severity`, `source` required.
PAYLOAD = obj(
    required={"summary": string(), "severity": string(*SEVERITIES), "source": string()},
    optional={
        "timestamp": string(date_time=True),
        "component": string(),
        "group": string(),
        "class": string(),
        "custom_details": obj(),
    },
)

# EV2.json createV2Event request: `routing_key` and `event_action` required. `dedup_key` is
# "Required unless the `event_type` is `trigger`" (checked by `alert_event`); `payload` is
# not in `required`, yet a trigger without one has nothing to say (PagerDuty refuses it).
_ALERT_EVENT_MEMBERS = {
    "routing_key": string(),
    "event_action": string(*ACTIONS),
}
_ALERT_EVENT_OPTIONAL = {
    "dedup_key": string(),
    "payload": PAYLOAD,
    "client": string(),
    "client_url": string(),
    "links": LINKS,
    "images": IMAGES,
}


def alert_event(action: str) -> Value:
    required = dict(_ALERT_EVENT_MEMBERS)
    optional = dict(_ALERT_EVENT_OPTIONAL)
    if action == "trigger":
        required["payload"] = optional.pop("payload")
    else:
        required["dedup_key"] = optional.pop("dedup_key")
    return obj(required=required, optional=optional)


# EV2.json createChangeEvent request: `payload` and `routing_key` required;
# #/components/schemas/ChangeEventPayload requires only `summary`.
CHANGE_EVENT = obj(
    required={
        "routing_key": string(),
        "payload": obj(
            required={"summary": string()},
            optional={
                "timestamp": string(date_time=True),
                "source": string(),
                "custom_details": obj(),
            },
        ),
    },
    optional={"links": LINKS, "images": IMAGES},
)

# EV1.json#/components/schemas/LinkContext and ImageContext: `type` plus `href` or `src`.
_CONTEXT_LINK = obj(
    required={"type": string("link"), "href": string()}, optional={"text": string()}
)
_CONTEXT_IMAGE = obj(
    required={"type": string("image"), "src": string()},
    optional={"href": string(), "alt": string()},
)


def v1_event(event_type: str) -> Value:
    """EV1.json createV1Event: `service_key` and `event_type` required; `incident_key`
    "Required unless the `event_type` is `trigger`"; `description` "Required for `trigger`
    events". `contexts` items are one of two schemas picked by their `type` (a oneOf this
    checker does not do): see V1_CONTEXTS."""
    required: dict[str, Value] = {
        "service_key": string(),
        "event_type": string(*ACTIONS),
    }
    optional: dict[str, Value] = {
        "incident_key": string(),
        "description": string(),
        "details": obj(),
        "client": string(),
        "client_url": string(),
    }
    if event_type == "trigger":
        required["description"] = optional.pop("description")
    else:
        required["incident_key"] = optional.pop("incident_key")
    return obj(required=required, optional=optional)


V1_CONTEXTS = {"link": _CONTEXT_LINK, "image": _CONTEXT_IMAGE}

# EV2.json#/components/responses/Success (202 to both operations): `status` required;
# `message` and `dedup_key` strings.
V2_SUCCESS = obj(
    required={"status": string()}, optional={"message": string(), "dedup_key": string()}
)
# EV1.json#/components/responses/Success (200): `status` required; `incident_key`, `message`.
V1_SUCCESS = obj(
    required={"status": string()}, optional={"message": string(), "incident_key": string()}
)
# EV2.json and EV1.json #/components/responses/Error (5XX, and the shape of their error
# example): `status` and `message` required, `errors` an array of strings. The 400 and 429
# (v1: 403) answers are documented by a description only; their bodies are checked against
# this shape where PagerDuty's answers have it (400), and not at all otherwise.
ERROR = obj(
    required={"status": string(), "message": string()},
    optional={"errors": array(string())},
)

# Documented status codes: EV2.json 202/400/429/5XX; EV1.json 200/400/403/5XX.
V2_ACCEPTED, V2_INVALID, V2_THROTTLED = 202, 400, 429
V1_ACCEPTED, V1_INVALID, V1_THROTTLED = 200, 400, 403
