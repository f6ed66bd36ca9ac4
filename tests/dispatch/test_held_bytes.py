"""A dispatcher's bound on the bytes of bodies it holds (`max_held_bytes`): whoever sends large
events, a worker holds at most the bound and one event more, still delivers everything in
order, and gives the bytes back however an event leaves it. And a storm of large events in one
tenant does not keep another tenant's page behind all of it."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx2
import pytest

from app.dispatch.worker import Dispatcher
from tests.dispatch.conftest import FAST, Running, World

KEYS = [c * 32 for c in "abcdef"]
# A body of about 20 kB: the bounds below are counted in such bodies.
LARGE = "x" * 20_000
SERVER_ERROR = (500, {"status": "error", "message": "Internal error"})
INVALID = (
    400,
    {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["'payload.severity' is invalid"],
    },
)


async def largest_body(world: World) -> int:
    return int(await world.db.fetch_val("SELECT max(body_bytes) FROM events"))


async def in_status(world: World, status: str) -> int:
    return int(
        await world.db.fetch_val(
            "SELECT count(*) FROM events WHERE status = :status", {"status": status}
        )
    )


@dataclass
class Watch:
    """The most a dispatcher held at once, by its own count of bytes and by the events the
    database has in `sending`, sampled every few milliseconds while it runs."""

    dispatcher: Dispatcher
    world: World
    most_bytes: int = 0
    most_sending: int = 0
    task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.most_bytes = max(self.most_bytes, self.dispatcher.held_bytes)
            sending = await in_status(self.world, "sending")
            self.most_sending = max(self.most_sending, sending)
            self.most_bytes = max(self.most_bytes, self.dispatcher.held_bytes)
            await asyncio.sleep(0.002)

    async def __aenter__(self) -> Watch:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def test_a_worker_holds_its_bound_and_one_event_at_most_and_delivers_all_in_order(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    services = [await world.service(tenant, key, limit=100_000) for key in KEYS[:3]]
    chains: list[str] = []
    events: list[UUID] = []
    for service in services:
        # Per key two alerts of three steps each, and four more alerts: six events claimable
        # at once, four of them under the cap per key; twelve over the three keys.
        for n in range(2):
            dedup_key = f"{service[1][:4]}-{n}"
            chains.append(dedup_key)
            for kind in ("trigger", "acknowledge", "resolve"):
                events += await world.send(tenant, service, dedup_key, kind=kind, summary=LARGE)
        for n in range(4):
            events += await world.send(tenant, service, f"{service[1][:4]}-lone{n}", summary=LARGE)
    size = await largest_body(world)
    # Room for three of the twelve the other caps would let it take at once.
    bound = 3 * size
    dispatcher = world.dispatcher(database_url, replace(FAST, max_held_bytes=bound))
    async with Running(dispatcher), Watch(dispatcher, world) as watch:
        await world.wait_all(events, "delivered")
        await world.wait_for(lambda: _holds_nothing(dispatcher))
    assert watch.most_bytes <= bound + size
    assert watch.most_sending <= 3 + 1
    # The bound was reached, not merely never approached.
    assert watch.most_bytes > size
    # Each alert's steps reached PagerDuty in the order they were accepted, each once.
    for dedup_key in chains:
        sent = [r["event_action"] for r in world.pd.received if r["dedup_key"] == dedup_key]
        assert sent == ["trigger", "acknowledge", "resolve"], dedup_key
    assert len(world.pd.received) == len(events)


async def _holds_nothing(dispatcher: Dispatcher) -> bool:
    return dispatcher.held_bytes == 0


async def test_every_way_an_event_leaves_the_worker_gives_its_bytes_back(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    delivered, failed, retried, removed, budgeted = [
        await world.service(tenant, key, limit=100_000 if key != KEYS[4] else 1) for key in KEYS[:5]
    ]
    world.pd.answers[KEYS[1]] = [INVALID]
    world.pd.answers[KEYS[2]] = [SERVER_ERROR, SERVER_ERROR]
    sent = {
        "delivered": await world.send(tenant, delivered, "d", summary=LARGE),
        "failed": await world.send(tenant, failed, "f", summary=LARGE),
        "retried": await world.send(tenant, retried, "r", summary=LARGE),
        "cancelled": await world.send(tenant, removed, "c", summary=LARGE),
        # Two for a key with a budget of one a window: the second waits for the next, put
        # back untouched when it was claimed with the first.
        "budget": await world.send(tenant, budgeted, None, n=2, summary=LARGE),
    }
    await world.db.execute("DELETE FROM pd_services WHERE id = :id", {"id": removed[0]})
    size = await largest_body(world)
    config = replace(FAST, max_held_bytes=2 * size, budget_window=timedelta(milliseconds=500))
    dispatcher = world.dispatcher(database_url, config)
    async with Running(dispatcher), Watch(dispatcher, world) as watch:
        await world.wait_all(sent["delivered"] + sent["retried"] + sent["budget"], "delivered")
        await world.wait_all(sent["failed"], "failed")
        await world.wait_all(sent["cancelled"], "cancelled")
        await world.wait_for(lambda: _holds_nothing(dispatcher))
    assert dispatcher.held_bytes == 0
    assert 0 < watch.most_bytes <= 3 * size
    # Each of the retried event's tries left the worker, and came back in a claim of its own.
    retried_sends = [r for r in world.pd.received if r["dedup_key"] == "r"]
    assert len(retried_sends) == 3


@dataclass
class GatedPagerDuty:
    """Accepts every event, those for the gated keys only as the test hands out passes (one
    answer each): the test decides when a large event leaves the worker."""

    gated: set[str]
    passes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.received.append(body)
        if body["routing_key"] in self.gated:
            await self.passes.acquire()
        return httpx2.Response(202, json={"status": "success", "dedup_key": body["dedup_key"]})


@pytest.fixture
async def gated(world: World) -> AsyncIterator[tuple[GatedPagerDuty, httpx2.AsyncClient]]:
    pd = GatedPagerDuty(gated=set(KEYS[:4]))
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pd.handle)) as http:
        yield pd, http


async def test_a_storm_of_large_events_does_not_keep_another_tenants_page_behind_it(
    world: World, gated: tuple[GatedPagerDuty, httpx2.AsyncClient], database_url: str
) -> None:
    """Tenant A's forty large events were accepted before B's page, and the worker is full of
    A's: as A's sends finish, one at a time, B's page goes within the next few, not after the
    thirty-odd of A's older than it. (A claim with room for one event would take the oldest
    first turn, A's, every time.)"""
    pd, http = gated
    a_tenant, b_tenant = await world.tenant("A"), await world.tenant("B")
    storm: list[UUID] = []
    for key in KEYS[:4]:
        service = await world.service(a_tenant, key, limit=100_000)
        storm += await world.send(a_tenant, service, None, n=10, summary=LARGE)
    page_service = await world.service(b_tenant, KEYS[5])
    size = await largest_body(world)
    config = replace(FAST, max_held_bytes=8 * size, lease=timedelta(seconds=30))
    dispatcher = Dispatcher(
        db=world.db, http=http, vault=world.vault, database_url=database_url, config=config
    )
    async with Running(dispatcher):
        # Eight of A's in hand, all waiting for PagerDuty: the worker is full.
        await world.wait_for(lambda: _received(pd, 8))
        [page] = await world.send(b_tenant, page_service, "page")
        passes = 0
        while not await _soon(world, page):
            assert passes < 8, "B's page waited behind A's storm"
            pd.passes.release()
            passes += 1
            await world.wait_for(functools.partial(_delivered, world, passes))
        # The rest of the storm goes too.
        for _ in storm:
            pd.passes.release()
        await world.wait_all(storm, "delivered")
    # Half the bound freed (four of A's eight), and the next claim took B's page.
    assert passes <= 5


async def _soon(world: World, event: UUID, within: float = 1.0) -> bool:
    """Whether the event is delivered within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await world.status(event) == "delivered":
            return True
        await asyncio.sleep(0.05)
    return False


async def _received(pd: GatedPagerDuty, n: int) -> bool:
    return len(pd.received) >= n


async def _delivered(world: World, n: int) -> bool:
    return await in_status(world, "delivered") >= n
