"""Change events (`/v2/change/enqueue`) and Events API v1."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.events_flow import (
    CHANGE,
    UNKNOWN_KEY,
    V1,
    change,
    incidents,
    ruleset_key,
    send,
    trigger,
    v1_event,
    v1_key,
    v2_key,
)
from tests.sandbox.flow import bearer

INVALID = {"status": "invalid event", "message": "Event object is invalid"}


async def test_change_event_is_accepted(client: httpx2.AsyncClient, state: SandboxState) -> None:
    body = change(v2_key(state), timestamp="2020-07-17T08:42:58Z", custom_details={"n": 2}) | {
        "links": [{"href": "https://ci.example/builds/2", "text": "Build"}]
    }

    response = await send(client, body, CHANGE)

    assert response.status_code == 202
    assert response.json() == {"status": "success", "message": "Change event processed"}


async def test_change_event_needs_only_a_summary(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    body = {"routing_key": v2_key(state), "payload": {"summary": "Deployed"}}

    assert (await send(client, body, CHANGE)).status_code == 202


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"routing_key": " ", "payload": {"summary": "s"}}, "'routing_key' is missing or blank"),
        (
            {"routing_key": "x" * 31, "payload": {"summary": "s"}},
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        ({}, "'payload' is missing or blank"),
        ({"payload": {"source": "ci"}}, "'summary' is missing or blank"),
        (
            {"payload": {"summary": "s" * 1025}},
            "'summary' is too long (maiximum is 1024 characters)",
        ),
        ({"payload": {"summary": "s", "source": 1}}, "'source' must be a string"),
        (
            {"payload": {"summary": "s", "timestamp": "soon"}},
            "'timestamp' is not a valid ISO 8601 date and time",
        ),
        ({"payload": {"summary": "s", "custom_details": 1}}, "'custom_details' must be an object"),
        ({"payload": {"summary": "s"}, "links": [{}]}, "'links[0].href' is missing or blank"),
    ],
)
async def test_invalid_change_event(
    client: httpx2.AsyncClient, state: SandboxState, body: dict[str, Any], error: str
) -> None:
    response = await send(client, {"routing_key": v2_key(state)} | body, CHANGE)

    assert response.status_code == 400
    assert response.json() == INVALID | {"errors": [error]}


async def test_change_events_ignore_alert_fields_and_open_nothing(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    body = change(v2_key(state)) | {"event_action": "trigger", "dedup_key": "d"}

    response = await send(client, body, CHANGE)

    assert response.status_code == 202
    assert await incidents(client) == []


async def test_ruleset_keys_refuse_change_events(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = ruleset_key(state)
    assert key.startswith("R")

    response = await send(client, change(key), CHANGE)

    assert response.status_code == 400
    assert response.json() == INVALID | {
        "errors": ["Change events cannot be sent to a ruleset routing key"]
    }


async def test_change_events_need_a_v2_integration_key(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    for key in (v1_key(state), UNKNOWN_KEY):
        response = await send(client, change(key), CHANGE)
        assert response.json()["errors"] == ["Invalid routing key"]


# Events API v1


async def test_v1_trigger_is_accepted_with_200(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    response = await send(client, v1_event(v1_key(state), incident_key="srv01/HTTP"), V1)

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "incident_key": "srv01/HTTP",
    }


async def test_v1_trigger_without_key_gets_one(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = (await send(client, v1_event(v1_key(state)), V1)).json()["incident_key"]

    assert len(key) == 32


async def test_v1_full_event_is_accepted(client: httpx2.AsyncClient, state: SandboxState) -> None:
    body = v1_event(
        v1_key(state),
        client="Nagios",
        client_url="https://nagios.example",
        details={"ping time": "1500ms"},
        contexts=[
            {"type": "link", "href": "http://acme.pagerduty.com", "text": "View"},
            {"type": "image", "src": "https://chart.example/c.png"},
        ],
    )

    assert (await send(client, body, V1)).status_code == 200


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"service_key": ""}, "Service key can't be blank"),
        (
            {"service_key": "abc"},
            "Service key is the wrong length (should be 32 characters)",
        ),
        (
            {"event_type": "page"},
            "event_type is invalid (must be one of: trigger acknowledge resolve)",
        ),
        (
            {"incident_key": "k" * 256},
            "Incident key is too long (maximum is 255 characters)",
        ),
        ({"description": ""}, "Description can't be blank"),
        (
            {"description": "d" * 1025},
            "Description is too long (maximum is 1024 characters)",
        ),
        ({"details": "text"}, "Details must be an object"),
        ({"contexts": {}}, "Contexts must be an array"),
        (
            {"contexts": [{"type": "video"}]},
            "Contexts[0] type is invalid (must be one of: link image)",
        ),
        ({"contexts": [{"type": "link"}]}, "Contexts[0] href can't be blank"),
        ({"contexts": [{"type": "image"}]}, "Contexts[0] src can't be blank"),
        (
            {"contexts": [{"type": "image", "src": "http://x/c.png"}]},
            "Contexts[0] src must be an https URL",
        ),
    ],
)
async def test_invalid_v1_trigger(
    client: httpx2.AsyncClient, state: SandboxState, fields: dict[str, Any], error: str
) -> None:
    response = await send(client, v1_event(v1_key(state)) | fields, V1)

    assert response.status_code == 400
    assert response.json() == INVALID | {"errors": [error]}


@pytest.mark.parametrize("event_type", ["acknowledge", "resolve"])
async def test_v1_follow_ups_need_an_incident_key(
    client: httpx2.AsyncClient, state: SandboxState, event_type: str
) -> None:
    response = await send(client, v1_event(v1_key(state), event_type), V1)

    assert response.json()["errors"] == ["Incident key can't be blank"]


async def test_v1_takes_only_v1_keys(client: httpx2.AsyncClient, state: SandboxState) -> None:
    for key in (v2_key(state), ruleset_key(state), UNKNOWN_KEY):
        response = await send(client, v1_event(key), V1)
        assert response.status_code == 400
        assert response.json()["errors"] == ["Invalid service key"]


async def test_v1_incidents_open_and_resolve(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v1_key(state)
    await send(client, v1_event(key, incident_key="srv01/HTTP"), V1)
    await send(client, v1_event(key, "resolve", incident_key="srv01/HTTP"), V1)

    (incident,) = await incidents(client)

    assert incident["status"] == "resolved"
    assert incident["urgency"] == "high"  # v1 carries no severity
    assert incident["title"] == "Disk full on db-1"
    assert incident["log_entries"][0]["channel"] == {"type": "events_api_v1"}


async def test_v1_is_throttled_with_403(client: httpx2.AsyncClient, state: SandboxState) -> None:
    key = v1_key(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 1}})

    first = await send(client, v1_event(key), V1)
    second = await send(client, v1_event(key), V1)

    assert first.status_code == 200
    assert second.status_code == 403
    assert second.json() == {
        "status": "throttle exceeded",
        "message": "Requests for this service are arriving too quickly.  Please retry later.",
    }


async def test_v2_keys_and_v1_keys_keep_their_own_alerts(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await send(client, trigger(v2_key(state), "same"))
    await send(client, v1_event(v1_key(state), "resolve", incident_key="same"), V1)

    (incident,) = await incidents(client)

    assert incident["status"] == "triggered"


async def test_a_v1_integration_made_through_rest_takes_v1_events(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    acme = state.account_by_subdomain("acme-corp")
    assert acme is not None
    service = state.services_in(acme.id)[0]
    created = await client.post(
        f"/us/api/services/{service.id}/integrations",
        json={"integration": {"type": "generic_events_api_inbound_integration"}},
        headers=bearer(acme_token),
    )
    key = created.json()["integration"]["integration_key"]

    accepted = await send(client, v1_event(key), V1)
    refused = await send(client, trigger(key, "k"))

    assert created.status_code == 201
    assert accepted.status_code == 200
    assert refused.json()["errors"] == ["Invalid routing key"]
