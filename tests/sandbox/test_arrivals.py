"""The arrival log: every Events API request in arrival order, with the answer it got."""

from __future__ import annotations

import httpx2

from pdsandbox import SandboxState
from pdsandbox.events.arrivals import ArrivalLog
from tests.sandbox.events_flow import (
    CHANGE,
    V1,
    arrivals,
    change,
    eu_key,
    follow_up,
    send,
    trigger,
    v1_event,
    v1_key,
    v2_key,
)
from tests.sandbox.flow import FakeClock


async def test_every_request_is_logged_in_order_with_its_answer(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    key, legacy, eu = v2_key(state), v1_key(state), eu_key(state)
    await send(client, trigger(key, "a"))
    clock.now += 1
    await send(client, follow_up(key, "resolve", "a"))
    await send(client, {"routing_key": key})
    await send(client, change(key), CHANGE)
    await send(client, v1_event(legacy, incident_key="v1"), V1)
    await send(client, trigger(eu, "e"), region="eu")
    await client.post("/us/events/v2/enqueue", content=b"not json")

    logged = await arrivals(client)

    assert [a["seq"] for a in logged] == [1, 2, 3, 4, 5, 6, 7]
    assert logged[0] == {
        "seq": 1,
        "time": clock.now - 1,
        "region": "us",
        "endpoint": "v2",
        "routing_key": key,
        "dedup_key": "a",
        "event_action": "trigger",
        "summary": "Disk full on db-1",
        "status": 202,
        "errors": [],
        "fault": None,
    }
    assert (logged[1]["time"], logged[1]["event_action"]) == (clock.now, "resolve")
    assert logged[2]["status"] == 400
    assert logged[2]["errors"] == ["'event_action' is missing or blank"]
    assert (logged[3]["endpoint"], logged[3]["summary"]) == ("change", "Deployed v42")
    v1 = logged[4]  # v1's service_key and incident_key are logged under the v2 names
    assert (v1["endpoint"], v1["routing_key"], v1["dedup_key"], v1["status"]) == (
        "v1",
        legacy,
        "v1",
        200,
    )
    assert (logged[5]["region"], logged[5]["routing_key"]) == ("eu", eu)
    assert (logged[6]["status"], logged[6]["routing_key"]) == (400, None)


async def test_filters_and_paging(client: httpx2.AsyncClient, state: SandboxState) -> None:
    one, two = v2_key(state, 0), v2_key(state, 1)
    await send(client, trigger(one, "a"))
    await send(client, trigger(two, "a"))
    await send(client, trigger(one, "b"))
    await send(client, {"routing_key": one, "dedup_key": "b"})

    by_key = await arrivals(client, routing_key=one)
    by_dedup = await arrivals(client, dedup_key="b")
    by_status = await arrivals(client, status=400)
    after = await arrivals(client, after_seq=2)
    first_two = await arrivals(client, limit=2)
    page_two = await arrivals(client, after_seq=first_two[-1]["seq"], limit=2)
    combined = await arrivals(client, routing_key=one, status=202, after_seq=1)

    assert [a["seq"] for a in by_key] == [1, 3, 4]
    assert [a["seq"] for a in by_dedup] == [3, 4]
    assert [a["seq"] for a in by_status] == [4]
    assert [a["seq"] for a in after] == [3, 4]
    assert [a["seq"] for a in first_two + page_two] == [1, 2, 3, 4]
    assert [a["seq"] for a in combined] == [3]


async def test_bad_filter_is_refused(client: httpx2.AsyncClient) -> None:
    response = await client.get("/_sandbox/events", params={"status": "2xx"})

    assert response.status_code == 400


async def test_clearing_keeps_the_sequence_going(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await send(client, trigger(v2_key(state), "a"))
    await send(client, trigger(v2_key(state), "b"))

    cleared = await client.delete("/_sandbox/events")
    await send(client, trigger(v2_key(state), "c"))
    body = (await client.get("/_sandbox/events")).json()

    assert cleared.status_code == 204
    assert [a["seq"] for a in body["events"]] == [3]
    assert (body["last_seq"], body["total"]) == (3, 1)


async def test_the_page_lists_the_latest_arrivals(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await send(client, trigger(v2_key(state), "<b>first</b>"))
    await send(client, trigger(v2_key(state), "second"))

    response = await client.get("/_sandbox/events/page")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert "&lt;b&gt;first&lt;/b&gt;" in text
    assert "<b>first</b>" not in text
    assert text.index("second") < text.index("&lt;b&gt;first")  # newest first


def test_log_keeps_only_the_newest_entries() -> None:
    log = ArrivalLog(capacity=3)
    for i in range(5):
        log.open(float(i), "us", "v2", {"routing_key": f"k{i}"})

    assert [a.seq for a in log] == [3, 4, 5]
    assert [a.seq for a in log.select(after_seq=3)] == [4, 5]
    assert [a.seq for a in log.select(after_seq=0, limit=1)] == [3]
    assert [a.seq for a in log.latest(2)] == [4, 5]


def test_logged_fields_are_cut_to_size() -> None:
    log = ArrivalLog()
    body = {
        "routing_key": "k" * 1000,
        "dedup_key": "d" * 1000,
        "event_action": 5,
        "payload": {"summary": "s" * 5000},
    }

    arrival = log.open(0.0, "us", "v2", body)

    assert len(arrival.routing_key or "") == 64
    assert len(arrival.dedup_key or "") == 300
    assert arrival.event_action is None
    assert len(arrival.summary or "") == 1024
