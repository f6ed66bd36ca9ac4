"""The Events API's per-routing-key limit: a sliding 60-second window of accepted events."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.events_flow import CHANGE, arrivals, change, follow_up, send, trigger, v2_key
from tests.sandbox.flow import FakeClock

THROTTLED = {
    "status": "throttle exceeded",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}


async def test_121st_event_in_a_minute_is_throttled_until_the_window_slides(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    key = v2_key(state)
    for i in range(120):
        clock.now += 0.25  # 120 events over the first 30 seconds
        response = await send(client, trigger(key, f"k{i}"))
        assert response.status_code == 202, i

    throttled = await send(client, trigger(key, "late"))  # 30 s in
    clock.now += 30.0  # 59.75 s after the first: it is still inside the window
    still = await send(client, trigger(key, "late"))
    clock.now += 0.5  # now the first two (at 0.25 s and 0.5 s) have aged out
    again = [await send(client, trigger(key, "late")) for _ in range(3)]

    assert throttled.status_code == 429
    assert throttled.json() == THROTTLED
    assert "retry-after" not in throttled.headers
    assert still.status_code == 429
    assert [r.status_code for r in again] == [202, 202, 429]


async def test_throttled_and_invalid_requests_spend_nothing(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    key = v2_key(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 2}})
    await send(client, trigger(key, "a"))
    await send(client, {"routing_key": key, "event_action": "trigger"})  # invalid: 400
    await send(client, trigger(key, "b"))
    for _ in range(5):
        assert (await send(client, trigger(key, "c"))).status_code == 429

    clock.now += 60

    assert (await send(client, trigger(key, "d"))).status_code == 202
    assert (await send(client, trigger(key, "e"))).status_code == 202


async def test_every_kind_of_accepted_event_counts(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 3}})

    statuses = [
        (await send(client, trigger(key, "a"))).status_code,
        (await send(client, follow_up(key, "acknowledge", "a"))).status_code,
        (await send(client, change(key), CHANGE)).status_code,
        (await send(client, follow_up(key, "resolve", "a"))).status_code,
    ]

    assert statuses == [202, 202, 202, 429]


async def test_limits_are_per_key(client: httpx2.AsyncClient, state: SandboxState) -> None:
    busy, quiet = v2_key(state, 0), v2_key(state, 1)
    await client.post("/_sandbox/control", json={"default_rate_limit": 1})

    assert (await send(client, trigger(busy, "a"))).status_code == 202
    assert (await send(client, trigger(busy, "b"))).status_code == 429
    assert (await send(client, trigger(quiet, "a"))).status_code == 202


async def test_per_key_override_beats_the_default_and_can_be_removed(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    set_ = await client.post(
        "/_sandbox/control", json={"default_rate_limit": 1, "rate_limits": {key: 3}}
    )
    statuses = [(await send(client, trigger(key, str(i)))).status_code for i in range(4)]
    removed = await client.post("/_sandbox/control", json={"rate_limits": {key: None}})

    assert set_.json()["rate_limits"] == {key: 3}
    assert statuses == [202, 202, 202, 429]
    assert removed.json()["rate_limits"] == {}
    assert (await send(client, trigger(key, "x"))).status_code == 429  # default 1 applies


async def test_throttled_requests_are_logged(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 1}})
    await send(client, trigger(key, "a"))
    await send(client, trigger(key, "b"))

    logged = await arrivals(client, routing_key=key)

    assert [(a["dedup_key"], a["status"], a["fault"]) for a in logged] == [
        ("a", 202, None),
        ("b", 429, None),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"default_rate_limit": 0},
        {"rate_limits": {"k": 0}},
        {"rate_limits": {"k": "10"}},
        {"rate_limits": ["k"]},
        {"unknown_key_response": "drop"},
    ],
)
async def test_bad_events_controls_are_refused(
    client: httpx2.AsyncClient, bad: dict[str, Any]
) -> None:
    response = await client.post("/_sandbox/control", json=bad)

    assert response.status_code == 400
    current = (await client.get("/_sandbox/control")).json()
    assert (current["default_rate_limit"], current["rate_limits"]) == (120, {})
