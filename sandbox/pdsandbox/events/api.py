"""The Events API on `{base}/{us|eu}/events`: v2 alert events, v2 change events and v1.

| path | API | accepted |
|---|---|---|
| `/v2/enqueue` | v2 alert events | 202 |
| `/v2/change/enqueue` | v2 change events | 202 |
| `/generic/2010-04-15/create_event.json` | v1 | 200 |

One request goes through these steps; only the first and the injected waits await, so the
checks and updates after them (key, rate window, incidents) happen as one step:

1. read the body; log the arrival;
2. draw the fault for it (`pdsandbox.controls.faults`: its routing key's own faults if it has
   some, else the global ones); wait out the injected latency; a faulted request is answered
   now (after its hold, if any) and goes no further;
3. size and JSON, then the fields (`pdsandbox.events.v2`, `.v1`): 400 with every error found;
4. the key: v2 takes keys of Events API v2 integrations and of rulesets, change events only
   the former, v1 only keys of Events API v1 integrations. Each region's host knows only its
   own region's keys: whether PagerDuty forwards a key that reached the other region's host is
   unconfirmed, so the sandbox does not, and a client that sends to the wrong host finds out.
   An unknown key gets what the `unknown_key_response` control says;
5. the key's rate window: at most its limit of accepted events in the last 60 seconds by the
   sandbox clock. Only accepted events count: a throttled or invalid request spends nothing,
   so a client that backs off gets through once old events age out;
6. alerts and incidents (`pdsandbox.events.incidents`) for integration keys; rulesets have no
   rules in the sandbox, so their events are accepted and left unrouted, as PagerDuty does
   with events no rule matches;
7. a `trickle` fault, if set, slows the answer's body down; the event was processed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pdsandbox import ids
from pdsandbox.controls.faults import Fault, trickled
from pdsandbox.events import bodies
from pdsandbox.events.arrivals import Arrival
from pdsandbox.events.incidents import Trigger
from pdsandbox.events.rules import Api, Event
from pdsandbox.events.v1 import validate_v1
from pdsandbox.events.v2 import validate_alert, validate_change
from pdsandbox.models import Integration, Region, Ruleset
from pdsandbox.rest.seed import EVENTS_V1, EVENTS_V2
from pdsandbox.state import SandboxState

V2_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
V1_PATH = "/generic/2010-04-15/create_event.json"
_CHANNEL = {"v2": "events_api_v2", "change": "events_api_v2", "v1": "events_api_v1"}


@dataclass(frozen=True)
class Answer:
    response: Response
    errors: list[str]


def _answer(response: Response, errors: list[str] | None = None) -> Answer:
    return Answer(response, errors or [])


@dataclass(frozen=True)
class Body:
    """The request body as far as it could be read: too large, not JSON, or a value."""

    size: int
    value: object = None
    parse_error: str | None = None

    @property
    def too_large(self) -> bool:
        return self.size > bodies.MAX_EVENT_BYTES


async def _read(request: Request) -> Body:
    raw = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= bodies.MAX_EVENT_BYTES:  # past the limit, drain without keeping
            raw.extend(chunk)
    if size > bodies.MAX_EVENT_BYTES:
        return Body(size)
    try:
        return Body(size, json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        return Body(size, parse_error="JSON parse error")


class EventsApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self, region: Region) -> list[BaseRoute]:
        def endpoint(api: Api) -> Callable[[Request], Awaitable[Response]]:
            async def handle(request: Request) -> Response:
                return await self.handle(request, region, api)

            return handle

        # PagerDuty also takes the v2 paths with a trailing slash (pagerduty.md §6: Sentry and
        # pypd send it); without those routes Starlette would answer 307, which an HTTP client
        # does not follow on its own.
        return [
            Route(V2_PATH, endpoint("v2"), methods=["POST"]),
            Route(V2_PATH + "/", endpoint("v2"), methods=["POST"]),
            Route(CHANGE_PATH, endpoint("change"), methods=["POST"]),
            Route(CHANGE_PATH + "/", endpoint("change"), methods=["POST"]),
            Route(V1_PATH, endpoint("v1"), methods=["POST"]),
        ]

    async def handle(self, request: Request, region: Region, api: Api) -> Response:
        body = await _read(request)
        state = self.state
        arrival = state.arrivals.open(state.now(), region.value, api, body.value)
        faults = state.faults.for_key(_routing_key(body, api))
        fault = faults.decide()
        if faults.latency_seconds > 0:
            await state.sleep(faults.latency_seconds)
        if fault is not None:
            await fault.hold(state.sleep)
            return _finish(arrival, _faulted(fault, api), fault.kind)
        trickle = faults.trickle
        response = _finish(arrival, self._process(body, region, api), None)
        if trickle is None:
            return response
        arrival.fault = "trickle"
        return trickled(response, trickle, state.sleep)

    # Everything below runs without awaiting: check and update are one step.

    def _process(self, body: Body, region: Region, api: Api) -> Answer:
        if body.too_large:
            errors = [bodies.TOO_LARGE.format(size=body.size)]
            return _answer(bodies.invalid(errors), errors)
        if body.parse_error is not None or not isinstance(body.value, dict):
            error = body.parse_error or "Event object must be a JSON object"
            return _answer(bodies.unrecognized(error, v1=api == "v1"), [error])
        validate = {"v2": validate_alert, "change": validate_change, "v1": validate_v1}[api]
        checked = validate(body.value)
        if isinstance(checked, list):
            return _answer(bodies.invalid(checked), checked)
        return self._route(checked, region)

    def _route(self, event: Event, region: Region) -> Answer:
        if event.api == "change" and event.routing_key.startswith("R"):
            return _answer(bodies.invalid([bodies.RULESET_CHANGE]), [bodies.RULESET_CHANGE])
        target = self._target(event, region)
        if target is None and self.state.controls.unknown_key_response == "reject":
            error = bodies.UNKNOWN_SERVICE_KEY if event.api == "v1" else bodies.UNKNOWN_ROUTING_KEY
            return _answer(bodies.invalid([error]), [error])
        limit = self.state.controls.events_rate_limit(event.routing_key)
        decision = self.state.events_limiter.hit((event.routing_key,), limit, self.state.now())
        if not decision.allowed:
            return _answer(bodies.throttled(403 if event.api == "v1" else 429))
        if event.api == "change":
            return _answer(bodies.accepted_change())
        dedup_key = event.dedup_key or ids.dedup_key(self.state.rng)
        if isinstance(target, Integration):
            self._apply(event, target, dedup_key)
        if event.api == "v1":
            return _answer(bodies.accepted_v1(dedup_key))
        return _answer(bodies.accepted_v2(dedup_key))

    def _target(self, event: Event, region: Region) -> Integration | Ruleset | None:
        found = self.state.find_routing_key(event.routing_key)
        if found is None:
            return None
        account = self.state.accounts[found.account_id]
        if account.region is not region:
            return None
        if isinstance(found, Ruleset):
            return found if event.api == "v2" else None
        wanted = EVENTS_V1 if event.api == "v1" else EVENTS_V2
        return found if found.type == wanted else None

    def _apply(self, event: Event, integration: Integration, dedup_key: str) -> None:
        book, now, channel = self.state.incidents, self.state.now(), _CHANNEL[event.api]
        if event.action == "trigger":
            trigger = Trigger(
                account_id=integration.account_id,
                service_id=integration.service_id,
                integration_id=integration.id,
                routing_key=event.routing_key,
                dedup_key=dedup_key,
                summary=event.summary or "",
                severity=event.severity,
                channel=channel,
            )
            book.trigger(trigger, now)
        elif event.action == "acknowledge":
            book.acknowledge(event.routing_key, dedup_key, now, channel)
        elif event.action == "resolve":
            book.resolve(event.routing_key, dedup_key, now, channel)


def _routing_key(body: Body, api: Api) -> str | None:
    """The routing key a request names, for its faults (before the body is checked)."""
    if not isinstance(body.value, dict):
        return None
    key = body.value.get("service_key" if api == "v1" else "routing_key")
    return key if isinstance(key, str) else None


def _faulted(fault: Fault, api: Api) -> Answer:
    if fault.kind == "outage":
        return _answer(bodies.outage())
    if fault.kind == "reject":
        return _answer(bodies.invalid(list(fault.errors)), list(fault.errors))
    if fault.status == 429:
        # A burst (or an error_status of 429) is throttling, and v1 says throttled with 403.
        return _answer(bodies.throttled(403 if api == "v1" else 429))
    return _answer(bodies.server_error(fault.status))


def _finish(arrival: Arrival, answer: Answer, fault: str | None) -> Response:
    arrival.status = answer.response.status_code
    arrival.errors = answer.errors
    arrival.fault = fault
    return answer.response
