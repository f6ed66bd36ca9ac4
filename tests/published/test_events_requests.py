"""The Events API requests pdconnect sends (bodies built by its PD-CEF mapping, sent by
`app.pagerduty.events`), captured through httpx2.MockTransport, against PagerDuty's Events API
v2 and v1 documents (EV2.json, EV1.json, see `events_documented`); and how the documented
answers are read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx2
import pytest

from app.ingest.alert import Alert, ChangeEvent, Image, Link, Status
from app.ingest.mapping import OutboundEvent, change_to_outbound, to_outbound
from app.ingest.severity import SeverityMap
from app.pagerduty.events import send_event
from tests.published import events_documented as doc
from tests.published.shapes import conforms

EVENTS = "https://events.pagerduty.com"
KEY = "0123456789abcdef0123456789abcdef"

FIRING = Alert(
    status="firing",
    dedup_key="srv01/mysql",
    summary="DISK at 99% on prod-datapipe03",
    severity="critical",
    source="prod-datapipe03.example.com",
    component="mysql",
    group="prod-datapipe",
    class_="disk",
    labels={"team": "storage"},
    details={"free space": "1%"},
    links=(Link("https://monitoring.example/d/1", "Dashboard"),),
    images=(Image("https://chart.example/disk.png", "https://chart.example", "disk"),),
    timestamp="2025-03-14T12:00:00Z",
    client="Monitoring",
    client_url="https://monitoring.example",
)


def outbound(alert: Alert, api: str) -> OutboundEvent:
    return to_outbound(
        alert,
        api="v1" if api == "v1" else "v2",
        severity_map=SeverityMap(),
        new_dedup_key=lambda: "generated-key",
    )


class Captured:
    def __init__(self, status: int, answer: Mapping[str, Any] | None) -> None:
        self.requests: list[httpx2.Request] = []
        self.status, self.answer = status, answer

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.answer is None:
            return httpx2.Response(self.status, text="<html>503</html>")
        return httpx2.Response(self.status, json=dict(self.answer))


async def sent(event: OutboundEvent, status: int = 202) -> tuple[httpx2.Request, Any]:
    """Send as the dispatcher does (the key added to the body at send time); return the
    request PagerDuty would have received and its JSON body."""
    key_field = "service_key" if event.api == "v1" else "routing_key"
    answer = (
        {"status": "success", "message": "Event processed", "incident_key": "k"}
        if event.api == "v1"
        else {"status": "success", "message": "Event processed", "dedup_key": "k"}
    )
    captured = Captured(status, answer)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(captured)) as http:
        await send_event(
            http, EVENTS, api=event.api, kind=event.kind, body={**event.body, key_field: KEY}
        )
    (request,) = captured.requests
    return request, json.loads(request.content)


def expect_post(request: httpx2.Request, path: str) -> None:
    assert request.method == "POST"
    assert request.url == httpx2.URL(EVENTS + path)
    assert request.headers["content-type"] == "application/json"
    # No auth header: the key travels in the body (neither document has a security scheme).
    assert "authorization" not in request.headers


@pytest.mark.parametrize("status", ["firing", "acknowledged", "resolved"])
async def test_v2_alert_events_follow_create_v2_event(status: Status) -> None:
    alert = replace(FIRING, status=status)
    event = outbound(alert, "v2")

    request, body = await sent(event)

    expect_post(request, doc.V2_PATH)
    conforms(body, doc.alert_event(event.kind))
    assert body["event_action"] == event.kind


async def test_v2_trigger_without_dedup_key_still_follows_the_schema() -> None:
    alert = Alert(status="firing", dedup_key=None, summary="Disk full")

    _, body = await sent(outbound(alert, "v2"))

    conforms(body, doc.alert_event("trigger"))
    assert body["payload"]["severity"] in doc.SEVERITIES


async def test_a_mirrored_acknowledge_carrying_a_payload_still_follows_the_schema() -> None:
    """Alertmanager in group mode sends the whole event on every action; its payload must be
    a complete Payload too."""
    alert = replace(FIRING, status="resolved", mirrors_sender=True)

    _, body = await sent(outbound(alert, "v2"))

    conforms(body, doc.alert_event("resolve"))
    assert "payload" in body


async def test_change_events_follow_create_change_event() -> None:
    change = ChangeEvent(
        summary="Deployed v42",
        source="ci",
        timestamp="2025-03-14T12:00:00Z",
        details={"build": "42"},
        links=(Link("https://ci.example/42", "Build 42"),),
        service=None,
    )

    request, body = await sent(change_to_outbound(change))

    expect_post(request, doc.CHANGE_PATH)
    conforms(body, doc.CHANGE_EVENT)
    assert "event_action" not in body
    assert "dedup_key" not in body


@pytest.mark.parametrize("status", ["firing", "acknowledged", "resolved"])
async def test_v1_events_follow_create_v1_event(status: Status) -> None:
    alert = replace(FIRING, status=status)
    event = outbound(alert, "v1")

    request, body = await sent(event)

    expect_post(request, doc.V1_PATH)
    conforms(body, doc.v1_event(event.kind))
    for context in body.get("contexts", []):
        conforms(context, doc.V1_CONTEXTS[context["type"]])


def _error(status: str = "invalid event", *errors: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": "Event object is invalid"}
    if errors:
        body["errors"] = list(errors)
    conforms(body, doc.ERROR)
    return body


V2_SUCCESS_BODY = {"status": "success", "message": "Event processed", "dedup_key": "srv01/mysql"}
V1_SUCCESS_BODY = {"status": "success", "message": "Event processed", "incident_key": "srv01"}


@pytest.mark.parametrize(
    ("api", "status", "answer", "outcome"),
    [
        # EV2.json: 202 accepted, 400 never retried, 429 retried, 5XX retried.
        ("v2", 202, V2_SUCCESS_BODY, "accepted"),
        ("v2", 400, _error("invalid event", "'severity' is invalid"), "rejected"),
        ("v2", 429, {"status": "throttle exceeded", "message": "slow down"}, "rate_limited"),
        ("v2", 500, _error("server error"), "try_again"),
        ("v2", 503, None, "try_again"),
        # EV1.json: 200 accepted, 400 invalid, 403 rate limited, 5XX retried.
        ("v1", 200, V1_SUCCESS_BODY, "accepted"),
        ("v1", 400, _error("invalid event", "Description can't be blank"), "rejected"),
        ("v1", 403, {"status": "throttle exceeded", "message": "slow down"}, "rate_limited"),
        ("v1", 502, _error("server error"), "try_again"),
    ],
)
async def test_documented_answers_are_read_as_the_documents_say(
    api: str, status: int, answer: Mapping[str, Any] | None, outcome: str
) -> None:
    if status in (202, 200):
        conforms(answer, doc.V2_SUCCESS if api == "v2" else doc.V1_SUCCESS)
    captured = Captured(status, answer)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(captured)) as http:
        result = await send_event(
            http, EVENTS, api=api, kind="trigger", body=outbound(FIRING, api).body
        )

    assert result.outcome == outcome
    if outcome == "accepted":
        assert result.dedup_key == ("srv01/mysql" if api == "v2" else "srv01")
    if status == 400:
        assert result.errors
