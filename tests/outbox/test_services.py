"""A service's health and its events move together: one hold, one release, and cancel."""

from __future__ import annotations

from uuid import UUID

from databases import Database

from app.outbox import services
from app.outbox.events import NewEvent, enqueue
from app.outbox.states import EventStatus, ServiceHealth
from tests.rows import manual_service


async def _service(db: Database, key_hash: str) -> tuple[UUID, UUID]:
    return await manual_service(db, key_hash)


async def _queue(db: Database, tenant_id: UUID, service_id: UUID, key_hash: str) -> UUID:
    [(event_id, status)] = await enqueue(
        db,
        [
            NewEvent(
                tenant_id=tenant_id,
                service_id=service_id,
                routing_key_hash=key_hash,
                dedup_key="k",
                kind="trigger",
                api="v2",
                body={"event_action": "trigger"},
                notes=(),
                source="test",
            )
        ],
    )
    assert status == EventStatus.QUEUED
    return event_id


async def _state(db: Database, service_id: UUID, event_id: UUID) -> tuple[str | None, ...]:
    row = await db.fetch_one(
        """
        SELECT s.health, s.health_reason, e.status, e.last_error, e.routing_key_hash
        FROM pd_services s, events e WHERE s.id = :s AND e.id = :e
        """,
        {"s": service_id, "e": event_id},
    )
    assert row is not None
    return tuple(row._mapping.values())


async def test_gone_holds_the_events_and_outranks_unhealthy_until_released(db: Database) -> None:
    tenant_id, service_id = await _service(db, "hash-a")
    event_id = await _queue(db, tenant_id, service_id, "hash-a")
    await services.hold_services(
        db, health=ServiceHealth.GONE, reason="deleted", service_id=service_id, note_on_events=True
    )
    assert await _state(db, service_id, event_id) == (
        "gone",
        "deleted",
        "held",
        "held: deleted",
        "hash-a",
    )
    # A refused key says nothing new of a service already gone.
    await services.hold_services(
        db, health=ServiceHealth.UNHEALTHY, reason="refused", routing_key_hash="hash-a"
    )
    assert (await _state(db, service_id, event_id))[:2] == ("gone", "deleted")
    assert await services.has_held(db, service_id)

    # Re-keyed: released under the service's current key.
    await db.execute(
        "UPDATE pd_services SET routing_key_hash = 'hash-b' WHERE id = :id", {"id": service_id}
    )
    await services.release_service(db, service_id)
    assert await _state(db, service_id, event_id) == ("healthy", None, "queued", None, "hash-b")
    assert not await services.has_held(db, service_id)


async def test_a_refused_key_holds_its_queued_events_keeping_their_error(db: Database) -> None:
    tenant_id, service_id = await _service(db, "hash-a")
    event_id = await _queue(db, tenant_id, service_id, "hash-a")
    await db.execute("UPDATE events SET last_error = 'HTTP 400' WHERE id = :id", {"id": event_id})
    await services.hold_services(
        db, health=ServiceHealth.UNHEALTHY, reason="refused", routing_key_hash="hash-a"
    )
    assert await _state(db, service_id, event_id) == (
        "unhealthy",
        "refused",
        "held",
        "HTTP 400",
        "hash-a",
    )


async def test_removing_a_service_cancels_what_is_pending(db: Database) -> None:
    tenant_id, service_id = await _service(db, "hash-a")
    event_id = await _queue(db, tenant_id, service_id, "hash-a")
    assert await services.count_pending(db, [service_id]) == 1
    assert await services.cancel_pending(db, [service_id], reason="removed") == 1
    assert (await _state(db, service_id, event_id))[2:4] == ("cancelled", "removed")
    assert await services.count_pending(db, [service_id]) == 0
