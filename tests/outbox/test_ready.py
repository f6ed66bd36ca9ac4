"""The ready keys: a key with pending events is always one a claim can find, and a key with none
leaves the table without ever taking an enqueue's key with it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

from databases import Database

from app.outbox import claims, outcomes, ready, services
from app.outbox.states import ServiceHealth
from tests.outbox.test_services import _queue, _service

KEY = "r" * 32


async def _ready(db: Database) -> set[tuple[UUID, str]]:
    rows = await db.fetch_all("SELECT tenant_id, routing_key_hash FROM ready_keys")
    return {(r._mapping["tenant_id"], r._mapping["routing_key_hash"]) for r in rows}


async def _claim(db: Database) -> list[claims.Claimed]:
    return await claims.claim(
        db,
        batch=8,
        per_tenant=8,
        lease=timedelta(seconds=30),
        max_in_flight_per_key=4,
        host_rooms={},
    )


async def test_a_queued_event_makes_its_key_ready_until_nothing_is_pending(cdb: Database) -> None:
    tenant, service = await _service(cdb, KEY)
    event = await _queue(cdb, tenant, service, KEY)
    assert await _ready(cdb) == {(tenant, KEY)}
    [claimed] = await _claim(cdb)
    assert claimed.id == event
    # Still being sent: the key keeps its row.
    await ready.forget_idle_keys(cdb)
    assert await _ready(cdb) == {(tenant, KEY)}
    assert await outcomes.mark_delivered(cdb, claimed)
    assert await ready.forget_idle_keys(cdb) == 1
    assert await _ready(cdb) == set()
    # A new event brings the key back.
    again = await _queue(cdb, tenant, service, KEY)
    assert [c.id for c in await _claim(cdb)] == [again]


async def test_held_events_come_back_with_their_key(cdb: Database) -> None:
    tenant, service = await _service(cdb, KEY)
    event = await _queue(cdb, tenant, service, KEY)
    await services.hold_services(
        cdb, health=ServiceHealth.UNHEALTHY, reason="refused", service_id=service
    )
    assert await ready.forget_idle_keys(cdb) == 1
    assert await _claim(cdb) == []
    async with cdb.transaction():
        await services.release_service(cdb, service)
    assert [c.id for c in await _claim(cdb)] == [event]


async def test_an_enqueue_not_yet_committed_keeps_its_key(cdb: Database, database_url: str) -> None:
    """The remover cannot see an event whose transaction has not committed; the row lock the
    enqueue holds on its key makes the remover leave the key alone."""
    tenant, service = await _service(cdb, KEY)
    first = await _queue(cdb, tenant, service, KEY)
    [claimed] = await _claim(cdb)
    assert claimed.id == first
    assert await outcomes.mark_delivered(cdb, claimed)
    # The key now has nothing pending, and a second connection is about to enqueue to it.
    other = Database(database_url, min_size=1, max_size=2)
    await other.connect()
    try:
        enqueued = asyncio.Event()
        commit = asyncio.Event()
        ids: list[UUID] = []

        async def enqueue_slowly() -> None:
            async with other.transaction():
                ids.append(await _queue(other, tenant, service, KEY))
                enqueued.set()
                await commit.wait()

        task = asyncio.create_task(enqueue_slowly())
        await enqueued.wait()
        assert await ready.forget_idle_keys(cdb) == 0
        commit.set()
        await task
    finally:
        await other.disconnect()
    assert await _ready(cdb) == {(tenant, KEY)}
    assert [c.id for c in await _claim(cdb)] == ids


async def test_claims_take_every_ready_key_in_turn(cdb: Database) -> None:
    """More keys with work than a claim looks at, and each claim put back untouched (as a
    dispatcher that could not send does): each claim looks at the keys least recently looked
    at, so every key gets its turn, not only the first ones."""
    events = []
    for i in range(12):
        key = f"{i:02d}" * 16
        tenant, service = await _service(cdb, key)
        events.append(await _queue(cdb, tenant, service, key))
    seen: list[UUID] = []
    for _ in range(3):
        claimed = await claims.claim(
            cdb,
            batch=4,
            per_tenant=8,
            lease=timedelta(seconds=30),
            max_in_flight_per_key=4,
            host_rooms={},
        )
        assert len(claimed) == 4
        seen += [c.id for c in claimed]
        for c in claimed:
            assert await claims.release(cdb, c)
    assert sorted(seen) == sorted(events)
