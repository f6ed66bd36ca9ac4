"""The dispatcher against a scripted PagerDuty: what is retried, what is not, in what order,
within what budget."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from app.dispatch import log_store, store
from app.outbox import claims
from tests.dispatch.conftest import FAST, Running, World

KEY_A = "a" * 32
KEY_B = "b" * 32
INVALID = (
    400,
    {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Invalid routing key"],
    },
)
SERVER_ERROR = (500, {"status": "error", "message": "Internal error"})
THROTTLED = (
    429,
    {"status": "throttle event", "message": "Requests for this service are arriving too quickly."},
)


async def attempts_of(world: World, event_id: Any) -> list[dict[str, Any]]:
    return [
        {"outcome": a.outcome, "http_status": a.http_status}
        for a in await log_store.list_attempts(world.db, event_id)
    ]


async def test_a_new_event_is_picked_up_without_waiting_for_a_poll(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    # A poll interval of an hour: only the NOTIFY sent on commit can wake the dispatcher.
    sleepy = replace(FAST, poll_interval=timedelta(hours=1))
    async with Running(world.dispatcher(database_url, sleepy)):
        await asyncio.sleep(0.3)  # let it go to sleep with nothing to do
        [event] = await world.send(tenant, service, "k1")
        await world.wait_for(lambda: _is(world, event, "delivered"))
    sent = world.pd.received[0]
    assert sent["routing_key"] == KEY_A
    assert sent["dedup_key"] == "k1"
    assert sent["_path"] == "/v2/enqueue"
    assert await attempts_of(world, event) == [{"outcome": "delivered", "http_status": 202}]


async def _is(world: World, event: Any, status: str) -> bool:
    return await world.status(event) == status


async def test_400_is_never_retried_and_keeps_pagerdutys_errors(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    world.pd.answers[KEY_A] = [
        (
            400,
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["'payload.summary' is missing or blank"],
            },
        )
    ]
    [event] = await world.send(tenant, service, "k1")
    async with Running(world.dispatcher(database_url)):
        await world.wait_for(lambda: _is(world, event, "failed"))
        await asyncio.sleep(0.3)
    detail = await log_store.get_event(world.db, tenant, event)
    assert detail is not None
    assert detail.pd_errors == ("'payload.summary' is missing or blank",)
    assert detail.attempts == 1
    assert len(world.pd.received) == 1


async def test_server_errors_and_timeouts_are_retried_until_accepted(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    world.pd.answers[KEY_A] = [SERVER_ERROR, (-1, {}), SERVER_ERROR]
    [event] = await world.send(tenant, service, "k1")
    async with Running(world.dispatcher(database_url)):
        await world.wait_for(lambda: _is(world, event, "delivered"))
    assert [a["outcome"] for a in await attempts_of(world, event)] == [
        "retry",
        "retry",
        "retry",
        "delivered",
    ]


async def test_rate_limited_key_pauses_alone(world: World, database_url: str) -> None:
    tenant = await world.tenant()
    a = await world.service(tenant, KEY_A)
    b = await world.service(tenant, KEY_B)
    world.pd.answers[KEY_A] = [THROTTLED, THROTTLED]
    [ea] = await world.send(tenant, a, "ka")
    async with Running(world.dispatcher(database_url)):
        await world.wait_for(lambda: _is(world, ea, "delivered"))
        [eb] = await world.send(tenant, b, "kb")
        await world.wait_for(lambda: _is(world, eb, "delivered"))
    outcomes = [x["outcome"] for x in await attempts_of(world, ea)]
    assert outcomes == ["rate_limited", "rate_limited", "delivered"]
    level = await world.db.fetch_val(
        "SELECT backoff_level FROM dispatch_keys WHERE routing_key_hash = :h", {"h": a[1]}
    )
    assert level == 0  # reset once PagerDuty accepted again


async def test_v1_403_means_rate_limited(world: World, database_url: str) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A, api="v1")
    world.pd.answers[KEY_A] = [(403, {"status": "throttle"})]
    events = await world.send(tenant, service, "k1", api="v1")
    async with Running(world.dispatcher(database_url)):
        await world.wait_for(lambda: _is(world, events[0], "delivered"))
    assert world.pd.received[-1]["service_key"] == KEY_A
    assert world.pd.received[-1]["_path"] == "/generic/2010-04-15/create_event.json"


async def test_order_per_dedup_key_survives_failures(world: World, database_url: str) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    world.pd.answers[KEY_A] = [SERVER_ERROR, SERVER_ERROR, SERVER_ERROR]
    trigger = await world.send(tenant, service, "same", kind="trigger")
    ack = await world.send(tenant, service, "same", kind="acknowledge")
    resolve = await world.send(tenant, service, "same", kind="resolve")
    other = await world.send(tenant, service, "other", kind="trigger")
    async with Running(world.dispatcher(database_url)):
        await world.wait_all([*trigger, *ack, *resolve, *other], "delivered")
    same = [r["event_action"] for r in world.pd.received if r["dedup_key"] == "same"]
    # However often the trigger had to be tried, nothing of its dedup key overtook it.
    assert same[-2:] == ["acknowledge", "resolve"]
    assert set(same[:-2]) == {"trigger"}
    assert len(world.pd.received) == 4 + 3  # four events, three failed attempts among them


async def test_budget_is_never_exceeded_in_any_window(world: World, database_url: str) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A, limit=5)
    events = []
    for i in range(12):
        events += await world.send(tenant, service, f"k{i}")
    # As in production (62 s against PagerDuty's 60 s), the dispatcher's window is longer than
    # the one PagerDuty counts in, so time on the wire cannot squeeze one event too many in.
    ours, theirs = timedelta(seconds=1.5), 1.0
    async with Running(world.dispatcher(database_url, replace(FAST, budget_window=ours))):
        await world.wait_all(events, "delivered")
    times = sorted(world.pd.times)
    assert len(times) == 12
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t - start < theirs]
        assert len(in_window) <= 5


async def test_a_rejected_key_holds_events_and_marks_the_service_unhealthy(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    world.pd.answers[KEY_A] = [INVALID] * 20
    # One event, its key refused: retried (it may be PagerDuty's hiccup) until the third
    # refusal in a row, then held with the service shown unhealthy.
    [first] = await world.send(tenant, service, "k0")
    behind = await world.send(tenant, service, "k0")
    async with Running(world.dispatcher(database_url)):
        await world.wait_all([first, *behind], "held")
        later = await world.send(tenant, service, "k9")
        await asyncio.sleep(0.5)
    health = await world.db.fetch_one(
        "SELECT health, health_reason FROM pd_services WHERE id = :id", {"id": service[0]}
    )
    assert health is not None
    assert health._mapping["health"] == "unhealthy"
    assert "Invalid routing key" in health._mapping["health_reason"]
    assert await world.status(later[0]) == "held"
    # The first event was tried three times; the one behind it (same dedup key) never jumped it.
    assert [r["event_action"] for r in world.pd.received] == ["trigger"] * 3
    assert [a["outcome"] for a in await attempts_of(world, first)] == ["key_rejected"] * 3


async def test_a_removed_service_cancels_its_events(world: World, database_url: str) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    [event] = await world.send(tenant, service, "k1")
    await world.db.execute("DELETE FROM pd_services WHERE id = :id", {"id": service[0]})
    async with Running(world.dispatcher(database_url)):
        await world.wait_for(lambda: _is(world, event, "cancelled"))
    assert world.pd.received == []


async def test_an_event_left_by_a_dead_worker_is_sent_again(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    [event] = await world.send(tenant, service, "k1")
    # A worker claims the event, starts an attempt, and dies before PagerDuty answers.
    [claimed] = await claims.claim(
        world.db,
        batch=1,
        per_tenant=1,
        lease=timedelta(milliseconds=200),
        max_in_flight_per_key=4,
        host_rooms={},
    )
    assert claimed.id == event
    attempt = await store.reserve_budget(
        world.db,
        claimed,
        host="events.pagerduty.test",
        window=timedelta(seconds=62),
        max_in_flight=4,
        lease=timedelta(milliseconds=200),
    )
    assert isinstance(attempt, store.Attempt)
    async with Running(world.dispatcher(database_url)):
        await world.wait_for(lambda: _is(world, event, "delivered"))
    assert [a["outcome"] for a in await attempts_of(world, event)] == ["abandoned", "delivered"]


async def test_one_tenants_storm_does_not_delay_another(world: World, database_url: str) -> None:
    a_tenant, b_tenant = await world.tenant("A"), await world.tenant("B")
    a = await world.service(a_tenant, KEY_A, limit=10)
    b = await world.service(b_tenant, KEY_B)
    storm = await world.send(a_tenant, a, None, n=200, kind="trigger")
    [single] = await world.send(b_tenant, b, "b1")
    async with Running(
        world.dispatcher(database_url, replace(FAST, budget_window=timedelta(seconds=1)))
    ):
        await world.wait_for(lambda: _is(world, single, "delivered"))
        delivered_of_a = await world.db.fetch_val(
            "SELECT count(*) FROM events WHERE tenant_id = :t AND status = 'delivered'",
            {"t": a_tenant},
        )
    assert delivered_of_a < len(storm)


# Retries wait 50 to 100 seconds: longer than any test waits.
SLOW_RETRIES = replace(FAST, retry_base=timedelta(seconds=100), retry_cap=timedelta(seconds=100))


async def _due_in_seconds(world: World, event_id: Any) -> float:
    value = await world.db.fetch_val(
        "SELECT EXTRACT(EPOCH FROM next_attempt_at - clock_timestamp()) FROM events WHERE id = :id",
        {"id": event_id},
    )
    return float(value)


async def test_a_retry_that_gets_through_sends_the_keys_other_retries_at_once(
    world: World, database_url: str
) -> None:
    """PagerDuty was down; the first retry PagerDuty accepts shows it is back, and the key's
    other events waiting out their backoff go then, not up to the retry cap later."""
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    world.pd.answers[KEY_A] = [SERVER_ERROR, SERVER_ERROR, SERVER_ERROR]
    first, second, third = [(await world.send(tenant, service, f"k{i}"))[0] for i in range(3)]
    async with Running(world.dispatcher(database_url, SLOW_RETRIES)):

        async def all_backing_off() -> bool:
            return [await world.status(e) for e in (first, second, third)] == ["queued"] * 3 and (
                len(world.pd.received) == 3
            )

        await world.wait_for(all_backing_off)
        assert await _due_in_seconds(world, second) > 40
        # The earliest of many jittered retries falls due, and PagerDuty is back.
        await world.db.execute(
            "UPDATE events SET next_attempt_at = clock_timestamp() WHERE id = :id", {"id": first}
        )
        await world.wait_all([first, second, third], "delivered")


async def test_a_first_attempt_getting_through_leaves_other_retries_to_their_backoff(
    world: World, database_url: str
) -> None:
    """One event PagerDuty keeps failing must not be retried on every other event's success."""
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    world.pd.answers[KEY_A] = [SERVER_ERROR]
    [failing] = await world.send(tenant, service, "poison")
    async with Running(world.dispatcher(database_url, SLOW_RETRIES)):

        async def backing_off() -> bool:
            return len(world.pd.received) == 1 and await world.status(failing) == "queued"

        await world.wait_for(backing_off)
        fine = await world.send(tenant, service, "fine", n=3)
        await world.wait_all(fine, "delivered")
    assert await world.status(failing) == "queued"
    assert await _due_in_seconds(world, failing) > 40
