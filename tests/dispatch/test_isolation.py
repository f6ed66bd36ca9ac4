"""Isolated: a routing key, or a whole PagerDuty region, that hangs costs the other keys nothing.

PagerDuty is a MockTransport whose answer for some keys (or some hosts) never comes until the
test lets it; every other request is answered at once, as PagerDuty accepts. The sends that
hang would hold a slot for far longer than any test waits (the send deadline is a minute), so
another tenant's page arriving within the bounded wait shows it never waited for one."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx2
import pytest

from app.dispatch import log_store
from app.dispatch.worker import Dispatcher
from app.outbox import claims
from tests.dispatch.conftest import EU_EVENTS_URL, FAST, Running, World

KEY_A = "a" * 32
KEY_B = "b" * 32
# Hanging sends outlive every bounded wait here: only the caps can keep the others moving.
PATIENT = replace(
    FAST,
    concurrency=4,
    max_in_flight_per_key=2,
    max_in_flight_per_host=4,
    lease=timedelta(seconds=90),
    send_timeout=timedelta(seconds=60),
    timeouts_to_pause=1000,
)
# Well under the hanging sends' deadline, well over a prompt delivery.
PROMPTLY = 10.0


@dataclass
class HangingPagerDuty:
    """Accepts every event at once, except those for a hanging key or host: their answer
    comes only when `release` is set (each test sets it before its dispatchers stop). Counts
    the sends in flight per key and per host."""

    hanging_keys: set[str] = field(default_factory=set)
    hanging_hosts: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[dict[str, Any]] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        key, host = body["routing_key"], request.url.host
        self.received.append({**body, "_host": host})
        if key in self.hanging_keys or host in self.hanging_hosts:
            for name in (key, host):
                self.in_flight[name] += 1
                self.most_in_flight[name] = max(self.most_in_flight[name], self.in_flight[name])
            try:
                await self.release.wait()
            finally:
                for name in (key, host):
                    self.in_flight[name] -= 1
        return httpx2.Response(202, json={"status": "success", "dedup_key": body["dedup_key"]})

    def sent_to(self, key: str) -> int:
        return sum(1 for r in self.received if r["routing_key"] == key)


@pytest.fixture
async def hanging(world: World) -> AsyncIterator[tuple[HangingPagerDuty, httpx2.AsyncClient]]:
    pd = HangingPagerDuty()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pd.handle)) as http:
        yield pd, http


def dispatcher(world: World, http: httpx2.AsyncClient, url: str, **config: Any) -> Running:
    return Running(
        Dispatcher(
            db=world.db,
            http=http,
            vault=world.vault,
            database_url=url,
            config=replace(PATIENT, **config),
        )
    )


async def delivered_promptly(world: World, events: list[UUID]) -> None:
    await world.wait_for(lambda: _all(world, events, "delivered"), within=PROMPTLY)


async def _all(world: World, events: list[UUID], status: str) -> bool:
    return all([await world.status(e) == status for e in events])


async def test_a_hanging_key_leaves_another_tenant_paged_at_once(
    world: World, hanging: tuple[HangingPagerDuty, httpx2.AsyncClient], database_url: str
) -> None:
    pd, http = hanging
    pd.hanging_keys.add(KEY_A)
    a_tenant, b_tenant = await world.tenant("A"), await world.tenant("B")
    a = await world.service(a_tenant, KEY_A, limit=100_000)
    b = await world.service(b_tenant, KEY_B)
    backlog = await world.send(a_tenant, a, None, n=20)
    async with dispatcher(world, http, database_url):
        # A's key hangs with its cap of sends, and its tenant keeps sending.
        await world.wait_for(lambda: _hung(pd, KEY_A, 2))
        for round_ in range(5):
            backlog += await world.send(a_tenant, a, None, n=3)
            paged = await world.send(b_tenant, b, f"b{round_}")
            await delivered_promptly(world, paged)
        # Every worker slot but the key's two went to others: nothing more of A was tried.
        assert pd.most_in_flight[KEY_A] == 2
        assert pd.sent_to(KEY_A) == 2
        assert [await world.status(e) for e in backlog].count("queued") == len(backlog) - 2
        pd.release.set()


async def _hung(pd: HangingPagerDuty, name: str, n: int) -> bool:
    return pd.in_flight[name] >= n


async def test_the_cap_per_key_holds_across_workers(
    world: World, hanging: tuple[HangingPagerDuty, httpx2.AsyncClient], database_url: str
) -> None:
    pd, http = hanging
    pd.hanging_keys.add(KEY_A)
    a_tenant, b_tenant = await world.tenant("A"), await world.tenant("B")
    a = await world.service(a_tenant, KEY_A, limit=100_000)
    b = await world.service(b_tenant, KEY_B)
    await world.send(a_tenant, a, None, n=30)
    async with dispatcher(world, http, database_url), dispatcher(world, http, database_url):
        await world.wait_for(lambda: _hung(pd, KEY_A, 2))
        paged = await world.send(b_tenant, b, "b", n=4)
        await delivered_promptly(world, paged)
        await world.send(a_tenant, a, None, n=5)
        paged = await world.send(b_tenant, b, "b2", n=4)
        await delivered_promptly(world, paged)
        # Two workers with eight slots between them, and still two sends to the key at most.
        assert pd.most_in_flight[KEY_A] == 2
        assert pd.sent_to(KEY_A) == 2
        pd.release.set()


async def test_a_hanging_region_leaves_room_for_the_other(
    world: World, hanging: tuple[HangingPagerDuty, httpx2.AsyncClient], database_url: str
) -> None:
    """PagerDuty's EU region hangs for every key: the EU keys together hold no more than the
    host's cap, and a US tenant is paged at once."""
    pd, http = hanging
    eu_host = httpx2.URL(EU_EVENTS_URL).host
    pd.hanging_hosts.add(eu_host)
    for i in range(6):
        tenant = await world.tenant(f"EU {i}")
        service = await world.service(tenant, f"{i}" * 32, limit=100_000, events_url=EU_EVENTS_URL)
        await world.send(tenant, service, None, n=4)
    us_tenant = await world.tenant("US")
    us = await world.service(us_tenant, KEY_B)
    # Six EU keys of two sends each would fill the four slots three times over.
    async with dispatcher(world, http, database_url, max_in_flight_per_host=3):
        await world.wait_for(lambda: _hung(pd, eu_host, 3))
        for round_ in range(3):
            paged = await world.send(us_tenant, us, f"us{round_}")
            await delivered_promptly(world, paged)
        assert pd.most_in_flight[eu_host] == 3
        pd.release.set()


async def test_a_key_that_keeps_timing_out_rests_with_the_reason_on_its_events(
    world: World, hanging: tuple[HangingPagerDuty, httpx2.AsyncClient], database_url: str
) -> None:
    pd, http = hanging
    pd.hanging_keys.add(KEY_A)
    a_tenant, b_tenant = await world.tenant("A"), await world.tenant("B")
    a = await world.service(a_tenant, KEY_A, limit=100_000)
    b = await world.service(b_tenant, KEY_B)
    waiting = await world.send(a_tenant, a, None, n=6)
    rests = dict(
        send_timeout=timedelta(milliseconds=200),
        timeouts_to_pause=2,
        # The key rests longer than the test lasts.
        rate_limited_base=timedelta(minutes=5),
        rate_limited_cap=timedelta(minutes=5),
    )
    async with dispatcher(world, http, database_url, **rests):

        async def resting() -> bool:
            paused = await world.db.fetch_val(
                """
                SELECT paused_until > clock_timestamp() + interval '1 minute'
                FROM dispatch_keys WHERE routing_key_hash = :h
                """,
                {"h": a[1]},
            )
            return bool(paused)

        await world.wait_for(resting)
        paged = await world.send(b_tenant, b, "b", n=3)
        await delivered_promptly(world, paged)
    # The two sends that timed out, and at most the cap's worth claimed before the rest began.
    assert 2 <= pd.sent_to(KEY_A) <= 4
    # The key rests: none of its events can be claimed, whoever asks.
    resting_claim = await claims.claim(
        world.db,
        batch=32,
        per_tenant=64,
        lease=timedelta(seconds=30),
        max_in_flight_per_key=2,
        host_rooms={},
    )
    assert resting_claim == []
    events = [await log_store.get_event(world.db, a_tenant, e) for e in waiting]
    assert {e.status for e in events if e is not None} == {"queued"}
    for event in events:
        assert event is not None
        assert event.last_error is not None
        assert "did not answer 2 sends to its routing key in time" in event.last_error
    [timed_out, *_] = [e for e in events if e is not None and e.attempts == 1]
    [attempt] = await log_store.list_attempts(world.db, timed_out.id)
    assert attempt.outcome == "retry"
    assert attempt.error is not None
    assert "did not answer in full" in attempt.error
