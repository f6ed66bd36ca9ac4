"""Faults injected into the Events API through `/_sandbox/faults`."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.events_flow import V1, arrivals, incidents, send, trigger, v1_event, v1_key
from tests.sandbox.events_flow import v2_key as key_of
from tests.sandbox.flow import bearer

DEFAULTS = {
    "latency_ms": 0.0,
    "error_rate": 0.0,
    "error_status": 500,
    "burst_429": None,
    "timeout_rate": 0.0,
    "timeout_seconds": 30.0,
    "hang": False,
    "trickle": None,
    "outage": False,
    "reject": None,
    "seed": None,
}


async def _faults(client: httpx2.AsyncClient, **settings: Any) -> dict[str, Any]:
    response = await client.post("/_sandbox/faults", json=settings)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _recording_sleeps(state: SandboxState) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    state.sleep = sleep
    return slept


async def test_settings_merge_and_clear(client: httpx2.AsyncClient) -> None:
    before = (await client.get("/_sandbox/faults")).json()
    await _faults(client, latency_ms=20)
    merged = await _faults(client, burst_429={"every": 5, "length": 1}, seed=3)
    cleared = await client.delete("/_sandbox/faults")

    assert before == DEFAULTS
    assert merged == DEFAULTS | {
        "latency_ms": 20.0,
        "burst_429": {"every": 5, "length": 1},
        "seed": 3,
    }
    assert cleared.json() == DEFAULTS
    assert (await client.get("/_sandbox/faults")).json() == DEFAULTS


@pytest.mark.parametrize(
    "bad",
    [
        {"error_rate": 1.5},
        {"error_rate": True},
        {"error_status": 404},
        {"latency_ms": -1},
        {"timeout_seconds": 0},
        {"burst_429": {"every": 0, "length": 1}},
        {"burst_429": {"every": 2}},
        {"outage": "yes"},
        {"seed": 1.5},
        {"slowness": 1},
    ],
)
async def test_bad_settings_are_refused_whole(
    client: httpx2.AsyncClient, bad: dict[str, Any]
) -> None:
    response = await client.post("/_sandbox/faults", json={"latency_ms": 5} | bad)

    assert response.status_code == 400
    assert (await client.get("/_sandbox/faults")).json() == DEFAULTS


async def test_outage_answers_503_and_takes_nothing(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await _faults(client, outage=True)

    response = await send(client, trigger(key_of(state), "a"))
    v1 = await send(client, v1_event(v1_key(state)), V1)

    assert (response.status_code, v1.status_code) == (503, 503)
    assert response.headers["content-type"].startswith("text/html")
    assert await incidents(client) == []
    assert [(a["status"], a["fault"], a["dedup_key"]) for a in await arrivals(client)] == [
        (503, "outage", "a"),
        (503, "outage", None),
    ]


async def test_faults_spare_identity_and_rest(client: httpx2.AsyncClient, acme_token: str) -> None:
    await _faults(client, outage=True, latency_ms=10_000)

    rest = await client.get("/us/api/services", headers=bearer(acme_token))
    identity = await client.get("/identity/global/oauth/anonymous/.well-known/openid-configuration")

    assert (rest.status_code, identity.status_code) == (200, 200)
    assert await arrivals(client) == []


async def test_burst_429_pattern(client: httpx2.AsyncClient, state: SandboxState) -> None:
    key = key_of(state)
    await _faults(client, burst_429={"every": 3, "length": 2})

    statuses = [(await send(client, trigger(key, str(i)))).status_code for i in range(10)]
    v1 = [(await send(client, v1_event(v1_key(state)), V1)).status_code for _ in range(5)]

    assert statuses == [202, 202, 202, 429, 429, 202, 202, 202, 429, 429]
    assert v1 == [200, 200, 200, 403, 403]  # v1's throttle code
    faulted = await arrivals(client, status=429)
    assert {a["fault"] for a in faulted} == {"burst_429"}
    assert len(await incidents(client)) == 6 + 3  # a 429 opened nothing


async def test_burst_429s_do_not_spend_the_rate_budget(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    await client.post("/_sandbox/control", json={"rate_limits": {key: 2}})
    await _faults(client, burst_429={"every": 1, "length": 3})

    statuses = [(await send(client, trigger(key, str(i)))).status_code for i in range(9)]

    # Two of budget, spent by the 1st and the 5th; the 9th is outside the burst but over it.
    assert statuses == [202, 429, 429, 429, 202, 429, 429, 429, 429]
    assert [a["fault"] for a in await arrivals(client)][-1] is None


async def test_seeded_error_rate_gives_a_reproducible_mix(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await client.post("/_sandbox/control", json={"default_rate_limit": 1000})
    key = key_of(state)

    async def run() -> list[int]:
        await _faults(client, error_rate=0.3, error_status=502, seed=42)
        return [(await send(client, trigger(key, "k"))).status_code for _ in range(100)]

    first, second = await run(), await run()
    draws = random.Random(42)
    expected = [502 if draws.random() < 0.3 else 202 for _ in range(100)]

    assert first == second == expected
    assert 15 <= first.count(502) <= 45
    logged = await arrivals(client, status=502)
    assert {a["fault"] for a in logged} == {"error"}


async def test_error_answers_carry_a_json_body_and_take_nothing(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await _faults(client, error_rate=1)

    response = await send(client, trigger(key_of(state), "a"))

    assert response.status_code == 500
    assert response.json()["status"] == "server error"
    assert await incidents(client) == []


async def test_latency_is_added_to_every_events_request(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    slept = _recording_sleeps(state)
    await _faults(client, latency_ms=250)

    ok = await send(client, trigger(key_of(state), "a"))
    bad = await send(client, {})

    assert (ok.status_code, bad.status_code) == (202, 400)
    assert slept == [0.25, 0.25]


async def test_latency_really_waits(client: httpx2.AsyncClient, state: SandboxState) -> None:
    await _faults(client, latency_ms=50)

    started = time.perf_counter()
    response = await send(client, trigger(key_of(state), "a"))

    assert response.status_code == 202
    assert time.perf_counter() - started >= 0.05


async def test_timeout_holds_the_request_then_answers_500(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await _faults(client, timeout_rate=1, timeout_seconds=0.2)

    started = time.perf_counter()
    response = await send(client, trigger(key_of(state), "a"))
    elapsed = time.perf_counter() - started

    assert response.status_code == 500
    assert elapsed >= 0.2
    assert await incidents(client) == []
    (logged,) = await arrivals(client)
    assert (logged["status"], logged["fault"]) == (500, "timeout")


async def test_a_client_with_a_shorter_timeout_gives_up(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await _faults(client, timeout_rate=1, timeout_seconds=0.5)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(send(client, trigger(key_of(state), "a")), timeout=0.05)


async def test_default_timeout_is_30_seconds(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    slept = _recording_sleeps(state)
    await _faults(client, timeout_rate=1)

    response = await send(client, trigger(key_of(state), "a"))

    assert response.status_code == 500
    assert slept == [30.0]


async def test_reject_fault_refuses_valid_events_with_the_given_errors() -> None:
    from pdsandbox.controls.faults import FaultInjector

    injector = FaultInjector()
    injector.configure({"reject": {"errors": ["'payload.timestamp' is in the future"]}})
    fault = injector.decide()
    assert fault is not None
    assert (fault.kind, fault.status, fault.errors) == (
        "reject",
        400,
        ("'payload.timestamp' is in the future",),
    )
    injector.configure({"reject": None})
    assert injector.decide() is None
