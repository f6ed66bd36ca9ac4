"""A routing key resting (its budget spent) under an alert storm: the new events' notices name
their keys, and a dispatcher lets a notice be when every key it names rests, instead of
claiming once per commit of ingest for events it could not send; a notice naming a key that
does not rest still wakes it at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta
from uuid import UUID

import httpx2

from app.alerts import store as alerts_store
from app.dispatch import store
from app.outbox.events import NewEvent, Part, enqueue_together
from tests.dispatch.conftest import FAST, Running, World
from tests.dispatch.test_metrics import Samples, scrape, value
from tests.dispatch.test_metrics import scraper as scraper  # the fixture, used by name

KEY_REST = "a" * 32
KEY_FREE = "b" * 32


async def ingest(world: World, tenant_id: UUID, service: tuple[UUID, str], dedup_key: str) -> UUID:
    """One event written the way ingest writes a batch (one statement, its notice naming its
    key), committed."""
    event = NewEvent(
        tenant_id=tenant_id,
        service_id=service[0],
        routing_key_hash=service[1],
        dedup_key=dedup_key,
        kind="trigger",
        api="v2",
        body={"event_action": "trigger", "dedup_key": dedup_key,
              "payload": {"summary": dedup_key, "source": "t", "severity": "error"}},
        notes=(),
        source="test",
    )  # fmt: skip
    no_steps = alerts_store.steps_in_one([])
    assert no_steps is not None
    async with world.db.transaction():
        [(event_id, _)] = await enqueue_together(world.db, [event], lives=Part(*no_steps))
    return event_id


def claims(samples: Samples, found: str) -> float:
    return value(samples, "pdconnect_dispatch_claims_total", found=found)


async def test_a_storm_on_a_resting_key_costs_no_claims_and_other_keys_go_at_once(
    world: World, database_url: str, scraper: httpx2.AsyncClient
) -> None:
    tenant = await world.tenant()
    resting = await world.service(tenant, KEY_REST, limit=1)
    free = await world.service(tenant, KEY_FREE)
    # A long window: once its one send is spent, the key rests for the whole test.
    config = replace(FAST, budget_window=timedelta(minutes=5), poll_interval=timedelta(seconds=30))
    async with Running(world.dispatcher(database_url, config)):
        first = await ingest(world, tenant, resting, "storm-0")
        await world.wait_all([first], "delivered")
        # The next one finds the budget spent: the key rests.
        second = await ingest(world, tenant, resting, "storm-1")

        async def rests() -> bool:
            found = await store.next_due_in(world.db, max_in_flight_per_key=4, full_hosts=())
            return resting[1] in found.resting

        await world.wait_for(rests)
        await asyncio.sleep(0.3)  # the dispatcher has looked and gone to sleep
        before = await scrape(scraper)
        storm = [await ingest(world, tenant, resting, f"storm-{i}") for i in range(2, 32)]
        await asyncio.sleep(0.3)
        after = await scrape(scraper)
        # Thirty commits, none of whose keys could send: no claim made for them.
        assert claims(after, "none") - claims(before, "none") <= 1
        assert claims(after, "events") == claims(before, "events")

        started = time.monotonic()
        other = await ingest(world, tenant, free, "elsewhere")
        await world.wait_all([other], "delivered")
        # Woken by its notice, not by the 30 s poll.
        assert time.monotonic() - started < 5
    assert await world.status(second) == "queued"
    assert {await world.status(e) for e in storm} == {"queued"}
