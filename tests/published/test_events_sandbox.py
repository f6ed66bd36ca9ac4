"""The sandbox's Events API answers against PagerDuty's Events API v2 and v1 documents
(EV2.json, EV1.json, see `events_documented`)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.published import events_documented as doc
from tests.published.shapes import Value, conforms
from tests.sandbox.events_flow import change, follow_up, trigger, v1_event, v1_key, v2_key

HTTPS_IMAGE = "https://chart.example/disk.png"


async def post(client: httpx2.AsyncClient, path: str, body: Any) -> httpx2.Response:
    return await client.post(f"/us/events{path}", json=body)


def check(response: httpx2.Response, status: int, shape: Value) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    conforms(body, shape)
    return body


# createV2Event (POST /v2/enqueue)


async def test_trigger_acknowledge_resolve_are_202_success(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    full = trigger(
        key,
        "srv01/mysql",
        timestamp="2025-03-14T12:00:00.000+0000",
        component="mysql",
        group="prod-datapipe",
        custom_details={"free space": "1%"},
    ) | {
        "client": "Monitoring",
        "client_url": "https://monitoring.example",
        "links": [{"href": "https://monitoring.example/d/1", "text": "Dashboard"}],
        "images": [{"src": HTTPS_IMAGE, "href": "https://chart.example", "alt": "disk"}],
    }
    full["payload"]["class"] = "disk"
    conforms(full, doc.alert_event("trigger"))

    answers = [
        await post(client, doc.V2_PATH, full),
        await post(client, doc.V2_PATH, follow_up(key, "acknowledge", "srv01/mysql")),
        await post(client, doc.V2_PATH, follow_up(key, "resolve", "srv01/mysql")),
    ]

    for answer in answers:
        body = check(answer, doc.V2_ACCEPTED, doc.V2_SUCCESS)
        assert (body["status"], body["dedup_key"]) == ("success", "srv01/mysql")


async def test_trigger_without_dedup_key_gets_one(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    """`dedup_key` is required unless the action is trigger; the answer then carries one."""
    body = check(
        await post(client, doc.V2_PATH, trigger(v2_key(state))), doc.V2_ACCEPTED, doc.V2_SUCCESS
    )

    assert body["dedup_key"]


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    inner = body
    for name in path[:-1]:
        inner = inner[name]
    del inner[path[-1]]
    return body


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: _without(b, "routing_key"),  # required
        lambda b: _without(b, "event_action"),  # required
        lambda b: b | {"event_action": "escalate"},  # enum
        lambda b: _without(b, "payload", "summary"),  # Payload: required
        lambda b: _without(b, "payload", "source"),  # Payload: required
        lambda b: _without(b, "payload", "severity"),  # Payload: required
        lambda b: b | {"payload": b["payload"] | {"severity": "high"}},  # enum
        lambda b: b | {"payload": b["payload"] | {"timestamp": "yesterday"}},  # date-time
        lambda b: b | {"payload": b["payload"] | {"custom_details": "free"}},  # object
        lambda b: b | {"links": [{"text": "no href"}]},  # Links: href required
        lambda b: b | {"images": [{"alt": "no src"}]},  # Images: src required
        lambda b: b | {"images": [{"src": "http://chart.example/a.png"}]},  # "via HTTPS"
        lambda b: _without(b, "payload"),  # a trigger says nothing without one
    ],
)
async def test_events_outside_the_schema_are_400_with_errors(
    client: httpx2.AsyncClient, state: SandboxState, spoil: Any
) -> None:
    body = spoil(trigger(v2_key(state), "k-1"))

    answer = check(await post(client, doc.V2_PATH, body), doc.V2_INVALID, doc.ERROR)

    assert answer["errors"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
async def test_acknowledge_and_resolve_require_dedup_key(
    client: httpx2.AsyncClient, state: SandboxState, action: str
) -> None:
    body = {"routing_key": v2_key(state), "event_action": action}

    check(await post(client, doc.V2_PATH, body), doc.V2_INVALID, doc.ERROR)


async def test_body_that_is_not_json_gets_the_documented_error_example(
    client: httpx2.AsyncClient,
) -> None:
    """EV2.json#/components/responses/Error example: "Unrecognized object" / "Event object
    format is unrecognized" / ["JSON parse error"]."""
    response = await client.post(
        f"/us/events{doc.V2_PATH}",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    body = check(response, doc.V2_INVALID, doc.ERROR)
    assert body == {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": ["JSON parse error"],
    }


async def test_over_the_rate_limit_is_429(client: httpx2.AsyncClient, state: SandboxState) -> None:
    key = v2_key(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 1}})

    first = await post(client, doc.V2_PATH, trigger(key, "a"))
    second = await post(client, doc.V2_PATH, trigger(key, "b"))

    assert (first.status_code, second.status_code) == (doc.V2_ACCEPTED, doc.V2_THROTTLED)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_carry_the_documented_error_body(
    client: httpx2.AsyncClient, state: SandboxState, status: int
) -> None:
    """5XX: EV2.json#/components/responses/Error, `status` and `message` required."""
    await client.post("/_sandbox/faults", json={"error_rate": 1.0, "error_status": status})

    check(await post(client, doc.V2_PATH, trigger(v2_key(state))), status, doc.ERROR)


# createChangeEvent (POST /v2/change/enqueue)


async def test_change_event_needs_only_a_summary(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    """ChangeEventPayload requires `summary` alone; `links` and `images` are allowed."""
    key = v2_key(state)
    minimal = {"routing_key": key, "payload": {"summary": "Deployed v42"}}
    full = change(key, timestamp="2025-03-14T12:00:00Z", custom_details={"build": "42"}) | {
        "links": [{"href": "https://ci.example/42", "text": "Build 42"}],
        "images": [{"src": HTTPS_IMAGE, "alt": "graph"}],
    }
    conforms(minimal, doc.CHANGE_EVENT)
    conforms(full, doc.CHANGE_EVENT)

    for body in (minimal, full):
        answer = check(await post(client, doc.CHANGE_PATH, body), doc.V2_ACCEPTED, doc.V2_SUCCESS)
        assert answer["status"] == "success"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: _without(b, "routing_key"),
        lambda b: _without(b, "payload"),
        lambda b: _without(b, "payload", "summary"),
        lambda b: b | {"links": [{"text": "no href"}]},
        lambda b: b | {"images": [{"alt": "no src"}]},
        lambda b: b | {"images": [{"src": "http://chart.example/a.png"}]},
    ],
)
async def test_change_events_outside_the_schema_are_400(
    client: httpx2.AsyncClient, state: SandboxState, spoil: Any
) -> None:
    body = spoil(change(v2_key(state)))

    check(await post(client, doc.CHANGE_PATH, body), doc.V2_INVALID, doc.ERROR)


async def test_v2_paths_also_take_a_trailing_slash(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    """Not in the document: pagerduty.md §6 (real clients, Sentry and pypd, send it)."""
    key = v2_key(state)

    alert = await post(client, doc.V2_PATH + "/", trigger(key))
    changed = await post(client, doc.CHANGE_PATH + "/", change(key))

    check(alert, doc.V2_ACCEPTED, doc.V2_SUCCESS)
    check(changed, doc.V2_ACCEPTED, doc.V2_SUCCESS)


# createV1Event (POST /generic/2010-04-15/create_event.json)


async def test_v1_trigger_and_resolve_are_200_success(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v1_key(state)
    triggered = v1_event(
        key,
        incident_key="srv01/HTTP",
        details={"ping time": "1500ms"},
        client="Monitoring",
        client_url="https://monitoring.example",
        contexts=[
            {"type": "link", "href": "https://monitoring.example/d/1", "text": "Dashboard"},
            {"type": "image", "src": HTTPS_IMAGE, "href": "https://chart.example"},
        ],
    )
    resolved = v1_event(key, "resolve", incident_key="srv01/HTTP")
    conforms(triggered, doc.v1_event("trigger"))
    conforms(resolved, doc.v1_event("resolve"))
    for context in triggered["contexts"]:
        conforms(context, doc.V1_CONTEXTS[context["type"]])

    for body in (triggered, resolved):
        answer = check(await post(client, doc.V1_PATH, body), doc.V1_ACCEPTED, doc.V1_SUCCESS)
        assert (answer["status"], answer["incident_key"]) == ("success", "srv01/HTTP")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: _without(b, "service_key"),
        lambda b: b | {"event_type": "escalate"},
        lambda b: _without(b, "description"),  # required for trigger
        lambda b: b | {"details": "not an object"},
        lambda b: b | {"contexts": [{"type": "link"}]},  # LinkContext: href required
        lambda b: b | {"contexts": [{"type": "image"}]},  # ImageContext: src required
        lambda b: b | {"contexts": [{"href": "https://x.example"}]},  # type required
    ],
)
async def test_v1_events_outside_the_schema_are_400(
    client: httpx2.AsyncClient, state: SandboxState, spoil: Any
) -> None:
    body = spoil(v1_event(v1_key(state)))

    check(await post(client, doc.V1_PATH, body), doc.V1_INVALID, doc.ERROR)


async def test_v1_acknowledge_requires_incident_key(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    body = v1_event(v1_key(state), "acknowledge")

    check(await post(client, doc.V1_PATH, body), doc.V1_INVALID, doc.ERROR)


async def test_v1_body_that_is_not_json_gets_v1s_error_example(
    client: httpx2.AsyncClient,
) -> None:
    """EV1.json#/components/responses/Error example, which writes the status in lower case."""
    response = await client.post(
        f"/us/events{doc.V1_PATH}", content=b"[", headers={"Content-Type": "application/json"}
    )

    body = check(response, doc.V1_INVALID, doc.ERROR)
    assert body == {
        "status": "unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": ["JSON parse error"],
    }


async def test_v1_over_the_rate_limit_is_403(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    """EV1.json createV1Event: "403: Rate limit reached"."""
    key = v1_key(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 1}})

    first = await post(client, doc.V1_PATH, v1_event(key))
    second = await post(client, doc.V1_PATH, v1_event(key))

    assert (first.status_code, second.status_code) == (doc.V1_ACCEPTED, doc.V1_THROTTLED)
