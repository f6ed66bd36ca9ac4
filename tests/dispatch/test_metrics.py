"""/metrics follows the outbox and the dispatcher: queue depth and the oldest due event's age
from the database, and every attempt's outcome, reason and duration as PagerDuty answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.deps import Deps
from app.main import create_app
from tests.conftest import BASE_URL, make_settings
from tests.dispatch.conftest import Running, World

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def scraper(world: World) -> AsyncIterator[httpx2.AsyncClient]:
    deps = Deps(config=make_settings(), db=world.db, http=world.http)
    transport = httpx2.ASGITransport(app=create_app(deps))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def scrape(http: httpx2.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_outbox_depth_and_oldest_due_age_come_from_the_database(
    world: World, scraper: httpx2.AsyncClient
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, "a" * 32)
    await world.send(tenant, service, "d1", n=3)
    await world.db.execute(
        "UPDATE events SET next_attempt_at = now() - interval '90 seconds' WHERE dedup_key = 'd1'"
    )
    held = await world.send(tenant, service, "d2")
    await world.db.execute("UPDATE events SET status = 'held' WHERE id = :id", {"id": held[0]})

    samples = await scrape(scraper)
    assert value(samples, "pdconnect_outbox_events", status="queued") == 3
    assert value(samples, "pdconnect_outbox_events", status="held") == 1
    assert value(samples, "pdconnect_outbox_events", status="sending") == 0
    assert 90 <= value(samples, "pdconnect_outbox_oldest_due_age_seconds") < 3600
    assert value(samples, "pdconnect_database_up") == 1


async def test_attempts_are_counted_by_outcome_and_reason(
    world: World, scraper: httpx2.AsyncClient, database_url: str
) -> None:
    tenant = await world.tenant()
    flaky = await world.service(tenant, "f" * 32)
    refused = await world.service(tenant, "r" * 32)
    tight = await world.service(tenant, "t" * 32, limit=1)
    world.pd.answers["f" * 32] = [(500, {}), (-1, {})]
    world.pd.answers["r" * 32] = [(400, {"status": "invalid event", "errors": ["bad"]})]
    before = await scrape(scraper)

    events = await world.send(tenant, flaky, "f1")
    events += await world.send(tenant, refused, "r1")
    # One alert's two updates: the first spends the key's budget of one, the second waits.
    spent, waiting = await world.send(tenant, tight, "t1", n=2)
    async with Running(world.dispatcher(database_url)):
        await world.wait_all([events[0], spent], "delivered")
        await world.wait_all(events[1:], "failed")

        async def budget_waited() -> bool:
            moved = value(await scrape(scraper), "pdconnect_rate_budget_waits_total")
            return moved > value(before, "pdconnect_rate_budget_waits_total")

        await world.wait_for(budget_waited)
    assert await world.status(waiting) == "queued"
    after = await scrape(scraper)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("pdconnect_deliveries_total", outcome="retry", reason="server_error") == 1
    assert moved("pdconnect_deliveries_total", outcome="retry", reason="timeout") == 1
    assert moved("pdconnect_deliveries_total", outcome="rejected", reason="invalid_event") == 1
    assert moved("pdconnect_deliveries_total", outcome="delivered", reason="accepted") == 2
    assert moved("pdconnect_delivery_attempt_seconds_count", outcome="retry") == 2
    assert moved("pdconnect_delivery_attempt_seconds_count", outcome="delivered") == 2
    assert moved("pdconnect_time_to_page_seconds_count") == 2
