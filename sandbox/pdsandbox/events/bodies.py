"""What the Events API answers, body by body, and where each text comes from.

PagerDuty's documents give only some of these bodies; where they are silent the text was taken
from answers real clients logged, and where nothing was found the text is the sandbox's own
(marked "sandbox wording" below). A client must not depend on any wording: it should act on
the status code and show `errors` to people.

- v2 accepted, 202: `{"status":"success","message":"Event processed","dedup_key":…}` (docs).
- change accepted, 202: `{"status":"success","message":"Change event processed"}` (the tests
  of PagerDuty's own Go client; the docs give no body).
- v1 accepted, 200: `{"status":"success","message":"Event processed","incident_key":…}` (docs).
- invalid, 400: `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`
  (docs).
- not JSON, 400: `{"status":"Unrecognized object","message":"Event object format is
  unrecognized","errors":["JSON parse error"]}` (the error example of PagerDuty's OpenAPI
  document for v2, `reference/events-v2/openapiv3.json`); v1's document
  (`reference/events-v1/openapiv3.json`) writes the same body with `"unrecognized object"` in
  lower case, and v1 answers so.
- throttled, 429 on v2 and 403 on v1: `{"status":"throttle exceeded","message":"Requests for
  this service are arriving too quickly.  Please retry later."}`, as real clients logged it
  from both APIs. The docs call it "429 - Request Limit Exceeded" and give no body; no
  Retry-After header was ever reported, so none is sent.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

MAX_EVENT_BYTES = 512_000  # "Events API payloads are limited to 512 KB"; clients cut at 512 000
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
ROUTING_KEY_LENGTH = 32

INVALID_STATUS = "invalid event"
INVALID_MESSAGE = "Event object is invalid"

# The docs do not say what an oversized event gets; a user of PagerDuty's Go client reports a
# 400, and others saw PagerDuty cut `details` instead. Refusing is the stricter of the two: a
# product that trims its own events passes either way. Sandbox wording.
TOO_LARGE = "Event size of {size} bytes exceeds limit of 512000 bytes"
# pagerduty.md §6: one user saw this for a well-formed key of a deleted integration.
UNKNOWN_ROUTING_KEY = "Invalid routing key"
UNKNOWN_SERVICE_KEY = "Invalid service key"  # v1's name for it; sandbox wording
# "change events cannot be sent to ruleset integration keys (these keys begin with R)" is
# documented; the error text is sandbox wording.
RULESET_CHANGE = "Change events cannot be sent to a ruleset routing key"

THROTTLE_BODY = {
    "status": "throttle exceeded",
    # Two spaces after the full stop, as PagerDuty sends it.
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}
# PagerDuty documents 5xx as "the PagerDuty server experienced an error while processing the
# event" and gives no body; this one follows the documented error schema (status, message).
SERVER_ERROR_BODY = {
    "status": "server error",
    "message": "The PagerDuty server experienced an error while processing the event.",
}
# An outage is answered by the load balancer in front of the Events API, not by it: HTML, not
# JSON, so a client that insists on parsing 5xx bodies finds out here.
OUTAGE_HTML = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    "<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)


def accepted_v2(dedup_key: str) -> JSONResponse:
    body = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    return JSONResponse(body, status_code=202)


def accepted_change() -> JSONResponse:
    return JSONResponse({"status": "success", "message": "Change event processed"}, 202)


def accepted_v1(incident_key: str) -> JSONResponse:
    body = {"status": "success", "message": "Event processed", "incident_key": incident_key}
    return JSONResponse(body, status_code=200)


def invalid(errors: list[str]) -> JSONResponse:
    body = {"status": INVALID_STATUS, "message": INVALID_MESSAGE, "errors": errors}
    return JSONResponse(body, status_code=400)


def unrecognized(error: str, *, v1: bool = False) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "unrecognized object" if v1 else "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": [error],
    }
    return JSONResponse(body, status_code=400)


def throttled(status: int) -> JSONResponse:
    return JSONResponse(THROTTLE_BODY, status_code=status)


def server_error(status: int) -> JSONResponse:
    return JSONResponse(SERVER_ERROR_BODY, status_code=status)


def outage() -> Response:
    return HTMLResponse(OUTAGE_HTML, status_code=503)
