"""Fenced: a send ends under one deadline before its lease does, and a sender that lost its
lease records what PagerDuty told it on its attempt and changes nothing else. A resolved
incident is never reopened by an old trigger."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx2
from databases import Database

from app.dispatch import log_store, store
from app.dispatch.worker import STALE_NOTE, Dispatcher
from app.outbox import claims, outcomes
from app.outbox.states import EventStatus
from tests.dispatch.conftest import FAST, Running, World

KEY_A = "a" * 32
ACTIONS = ("trigger", "acknowledge", "resolve")
ACCEPTED = {"status": "success", "message": "Event processed"}


class Trickle(httpx2.AsyncByteStream):
    """An answer that comes a byte at a time: each byte well inside any read timeout, the
    whole far longer than the lease."""

    def __init__(self, over: asyncio.Event) -> None:
        self.over = over

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            for byte in b'{"status": "error", "message": "Internal error"}':
                await asyncio.sleep(0.1)
                yield bytes([byte])
        finally:
            self.over.set()


def in_order(arrivals: list[tuple[str, str]], dedup_key: str) -> bool:
    """The alert's events reached PagerDuty in the order they were accepted (a retried one may
    arrive twice in a row, never after a later one)."""
    actions = [action for key, action in arrivals if key == dedup_key]
    ranks = [ACTIONS.index(action) for action in actions]
    return ranks == sorted(ranks) and set(actions) == set(ACTIONS)


async def test_an_answer_trickling_past_the_lease_never_reorders_an_alert(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    arrivals: list[tuple[str, str]] = []
    trickles: list[asyncio.Event] = []

    def pagerduty(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        key, action = body["dedup_key"], body["event_action"]
        arrivals.append((key, action))
        if action == "trigger" and arrivals.count((key, action)) == 1:
            trickles.append(asyncio.Event())
            return httpx2.Response(500, stream=Trickle(trickles[-1]))
        return httpx2.Response(202, json={**ACCEPTED, "dedup_key": key})

    events = []
    for chain in range(3):
        for action in ACTIONS:
            events += await world.send(tenant, service, f"d{chain}", kind=action)
    # The answer takes about 5 s in all; the lease is 1.2 s.
    config = replace(FAST, lease=timedelta(seconds=1.2), send_timeout=timedelta(seconds=30))
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pagerduty)) as http:
        dispatcher = Dispatcher(
            db=world.db, http=http, vault=world.vault, database_url=database_url, config=config
        )
        async with Running(dispatcher):
            await world.wait_all(events, "delivered")

            async def trickles_over() -> bool:
                return len(trickles) == 3 and all(t.is_set() for t in trickles)

            await world.wait_for(trickles_over)
    # Whatever became of the trickling sends, nothing of any alert arrived out of its order,
    # and no delivered event was put back in the queue.
    for chain in range(3):
        assert in_order(arrivals, f"d{chain}"), arrivals
    assert [await world.status(e) for e in events] == ["delivered"] * 9
    for trigger in events[::3]:
        outcomes = [a.outcome for a in await log_store.list_attempts(world.db, trigger)]
        assert outcomes == ["retry", "delivered"]


async def test_a_late_failure_after_the_resend_succeeded_changes_nothing(
    world: World, database_url: str
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    trigger, ack, resolve = [
        (await world.send(tenant, service, "s", kind=action))[0] for action in ACTIONS
    ]
    sent, thaw = threading.Event(), threading.Event()

    def stalled_pagerduty(request: httpx2.Request) -> httpx2.Response:
        # A worker that stalls mid-send (a long pause of its process or machine): its whole
        # event loop stops, its deadline with it, and resumes with PagerDuty's answer in hand.
        sent.set()
        thaw.wait(timeout=60)
        return httpx2.Response(500, json={"status": "error", "message": "Internal error"})

    first = threading.Thread(
        target=asyncio.run, args=(_stalling_worker(world, database_url, stalled_pagerduty),)
    )
    first.start()
    try:
        assert await asyncio.to_thread(sent.wait, 15)
        # Its lease of a second runs out; another worker sends the alert's three events.
        async with Running(world.dispatcher(database_url)):
            await world.wait_all([trigger, ack, resolve], "delivered")
            thaw.set()
            await asyncio.to_thread(first.join, 30)
    finally:
        thaw.set()
        first.join(30)
    assert [r["event_action"] for r in world.pd.received] == list(ACTIONS)
    assert [await world.status(e) for e in (trigger, ack, resolve)] == ["delivered"] * 3
    stale, current = await log_store.list_attempts(world.db, trigger)
    assert (stale.outcome, stale.http_status) == ("retry", 500)
    assert stale.error is not None
    assert stale.error.startswith(STALE_NOTE)
    assert current.outcome == "delivered"
    key = await world.db.fetch_one(
        "SELECT timeouts, key_rejections, backoff_level FROM dispatch_keys WHERE host IS NOT NULL"
    )
    assert key is not None
    assert dict(key._mapping) == {"timeouts": 0, "key_rejections": 0, "backoff_level": 0}


async def _stalling_worker(world: World, database_url: str, pagerduty: Any) -> None:
    """A dispatcher of its own (its own loop, pool and client: another process, in effect)
    whose first send stalls; it stops once it has recorded that send."""
    db = Database(database_url, min_size=1, max_size=4)
    await db.connect()
    try:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(pagerduty)) as http:
            config = replace(FAST, lease=timedelta(seconds=1))
            dispatcher = Dispatcher(
                db=db, http=http, vault=world.vault, database_url=database_url, config=config
            )
            stop = asyncio.Event()
            running = asyncio.create_task(dispatcher.run(stop))
            for _ in range(600):
                recorded = await db.fetch_val(
                    "SELECT count(*) FROM delivery_attempts WHERE error LIKE :late",
                    {"late": STALE_NOTE + "%"},
                )
                if recorded:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await running
    finally:
        await db.disconnect()


async def test_writes_under_a_lost_lease_change_nothing(world: World) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY_A)
    [event] = await world.send(tenant, service, "k")

    async def claim(lease: timedelta) -> claims.Claimed:
        [claimed] = await claims.claim(
            world.db,
            batch=1,
            per_tenant=1,
            lease=lease,
            max_in_flight_per_key=4,
            host_rooms={},
        )
        return claimed

    async def reserve(claimed: claims.Claimed) -> store.Attempt | str:
        return await store.reserve_budget(
            world.db,
            claimed,
            host="events.pagerduty.test",
            window=timedelta(seconds=62),
            max_in_flight=4,
            lease=timedelta(seconds=30),
        )

    # A lease that is over as soon as it is granted, taken over by the next claim.
    old = await claim(timedelta(0))
    new = await claim(timedelta(seconds=30))
    assert (new.id, new.lease_token) == (old.id, old.lease_token + 1)
    async with world.db.transaction():
        assert not await claims.fence(world.db, old)
    assert await reserve(old) == "lease_lost"
    assert not await claims.release(world.db, old)
    assert not await outcomes.schedule_retry(world.db, old, delay=timedelta(0), error="late")
    assert not await outcomes.hold(world.db, old, error="late")
    assert not await outcomes.mark_final(world.db, old, status=EventStatus.FAILED, error="late")
    assert not await outcomes.mark_delivered(world.db, old)
    assert await world.status(event) == "sending"
    # The current lease writes as ever.
    assert isinstance(await reserve(new), store.Attempt)
    assert await outcomes.mark_delivered(world.db, new)
    assert not await outcomes.schedule_retry(world.db, new, delay=timedelta(0), error="again")
    assert await world.status(event) == "delivered"
