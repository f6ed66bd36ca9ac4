"""Faults for one routing key (`/_sandbox/faults/keys/{routing_key}`), and the faults that
hold a request: a hang, and an answer trickled out byte by byte."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.events_flow import V1, arrivals, incidents, send, trigger, v1_event, v1_key
from tests.sandbox.events_flow import v2_key as key_of

WAIT_SECONDS = 10.0  # for a request to reach the sandbox; never a speed assertion


async def _key_faults(client: httpx2.AsyncClient, key: str, **settings: Any) -> dict[str, Any]:
    response = await client.post(f"/_sandbox/faults/keys/{key}", json=settings)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _recording_sleeps(state: SandboxState) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    state.sleep = sleep
    return slept


async def _until_arrived(client: httpx2.AsyncClient, count: int) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while len(found := await arrivals(client)) < count:
        assert loop.time() < deadline, "the request never reached the sandbox"
        await asyncio.sleep(0.01)
    return found


async def test_a_key_with_faults_of_its_own_meets_only_those(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    sick, healthy, other = key_of(state, 0), key_of(state, 1), key_of(state, 2)
    await _key_faults(client, sick, error_rate=1, error_status=502)
    await _key_faults(client, other)  # settings of its own: the defaults
    await client.post("/_sandbox/faults", json={"outage": True})

    statuses = [
        (await send(client, trigger(key, "a"))).status_code for key in (sick, healthy, other)
    ]

    assert statuses == [502, 503, 202]  # the global outage reaches only the key without
    assert [(a["routing_key"], a["fault"]) for a in await arrivals(client)] == [
        (sick, "error"),
        (healthy, "outage"),
        (other, None),
    ]


async def test_key_settings_are_listed_read_merged_and_dropped(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    missing = await client.get(f"/_sandbox/faults/keys/{key}")
    await _key_faults(client, key, latency_ms=20)
    merged = await _key_faults(client, key, trickle={"seconds": 40})
    listed = (await client.get("/_sandbox/faults/keys")).json()
    read = (await client.get(f"/_sandbox/faults/keys/{key}")).json()
    dropped = await client.delete(f"/_sandbox/faults/keys/{key}")

    assert missing.status_code == 404
    assert merged["latency_ms"] == 20.0
    assert merged["trickle"] == {"seconds": 40.0, "every_ms": 500.0}
    assert listed == {"keys": {key: merged}}
    assert read == merged
    assert dropped.status_code == 204
    assert (await client.get("/_sandbox/faults/keys")).json() == {"keys": {}}
    assert (await send(client, trigger(key, "a"))).status_code == 202


@pytest.mark.parametrize(
    "bad",
    [
        {"hang": "yes"},
        {"trickle": {"seconds": 0}},
        {"trickle": {"every_ms": 10}},
        {"trickle": {"seconds": 5, "every_ms": 0}},
        {"trickle": 5},
        {"error_status": 404},
        {"slowness": 1},
    ],
)
async def test_a_bad_key_setting_creates_nothing(
    client: httpx2.AsyncClient, state: SandboxState, bad: dict[str, Any]
) -> None:
    key = key_of(state)

    response = await client.post(f"/_sandbox/faults/keys/{key}", json={"latency_ms": 5} | bad)
    global_response = await client.post("/_sandbox/faults", json=bad)

    assert (response.status_code, global_response.status_code) == (400, 400)
    assert (await client.get("/_sandbox/faults/keys")).json() == {"keys": {}}


async def test_clearing_all_faults_clears_every_key(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    await _key_faults(client, key, outage=True)

    await client.delete("/_sandbox/faults")

    assert (await client.get("/_sandbox/faults/keys")).json() == {"keys": {}}
    assert (await send(client, trigger(key, "a"))).status_code == 202


async def test_a_v1_request_meets_the_faults_of_its_service_key(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v1_key(state)
    await _key_faults(client, key, error_rate=1, error_status=429)

    v1 = await send(client, v1_event(key), V1)
    v2 = await send(client, trigger(key_of(state), "a"))

    assert (v1.status_code, v2.status_code) == (403, 202)  # v1's throttle code


async def test_an_error_status_of_429_is_pagerdutys_throttled_answer(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    await _key_faults(client, key, error_rate=1, error_status=429)

    response = await send(client, trigger(key, "a"))

    assert response.status_code == 429
    assert response.json()["status"] == "throttle exceeded"
    assert await incidents(client) == []
    assert [a["fault"] for a in await arrivals(client)] == ["error"]


async def test_a_hung_request_is_held_until_the_hang_is_lifted(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    await _key_faults(client, key, hang=True)

    held = asyncio.create_task(send(client, trigger(key, "a")))
    (arrived,) = await _until_arrived(client, 1)
    still_held = not held.done()
    other = await send(client, trigger(key_of(state, 1), "b"))  # the other keys answer
    await _key_faults(client, key, hang=False)
    response = await held

    assert still_held
    assert arrived["status"] is None  # no answer yet
    assert other.status_code == 202
    assert response.status_code == 500
    assert [i["incident_key"] for i in await incidents(client)] == ["b"]
    logged = {a["dedup_key"]: (a["status"], a["fault"]) for a in await arrivals(client)}
    assert logged == {"a": (500, "hang"), "b": (202, None)}
    assert (await send(client, trigger(key, "c"))).status_code == 202


async def test_dropping_a_hung_key_lets_its_requests_go(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    await _key_faults(client, key, hang=True)

    held = [asyncio.create_task(send(client, trigger(key, str(i)))) for i in range(3)]
    await _until_arrived(client, 3)
    await client.delete(f"/_sandbox/faults/keys/{key}")

    assert [(await h).status_code for h in held] == [500, 500, 500]


async def test_a_hang_is_held_at_most_ten_minutes(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    slept = _recording_sleeps(state)
    await client.post("/_sandbox/faults", json={"hang": True})

    response = await send(client, trigger(key_of(state), "a"))

    assert response.status_code == 500
    assert slept == [600.0]


async def test_a_trickled_answer_is_processed_and_sent_a_byte_at_a_time(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    slept = _recording_sleeps(state)
    await _key_faults(client, key, trickle={"seconds": 40, "every_ms": 250})

    response = await send(client, trigger(key, "a"))

    bytes_sent = math.ceil(40 / 0.25)
    assert response.status_code == 202
    assert response.headers["content-length"] == str(bytes_sent)
    assert len(response.content) == bytes_sent
    assert json.loads(response.content)["dedup_key"] == "a"
    assert slept == [0.25] * bytes_sent
    assert [i["incident_key"] for i in await incidents(client)] == ["a"]  # it was taken
    assert [(a["status"], a["fault"]) for a in await arrivals(client)] == [(202, "trickle")]


async def test_a_trickle_never_cuts_a_longer_answer(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = key_of(state)
    slept = _recording_sleeps(state)
    await _key_faults(client, key, trickle={"seconds": 0.01, "every_ms": 1})

    response = await send(client, {"routing_key": key})  # a 400 with its errors

    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert len(slept) == len(response.content) > 10
