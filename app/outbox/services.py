"""A service's health, and what it does to the service's events: hold, release, cancel.

The one hold and the one release of a service's events live here; every package that learns
something of a service (the dispatcher from PagerDuty's answers, the health check and the
webhook receiver from PagerDuty's REST API and webhooks, the admin) calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

from databases import Database

from app.outbox.ready import keys_have_work
from app.outbox.states import ServiceHealth
from app.outbox.wakeups import wake_dispatchers


async def hold_services(
    db: Database,
    *,
    health: Literal[ServiceHealth.UNHEALTHY, ServiceHealth.GONE],
    reason: str,
    service_id: UUID | None = None,
    routing_key_hash: str | None = None,
    note_on_events: bool = False,
) -> None:
    """Show the service (by id), or every service of a routing key, as `health` with `reason`,
    and hold its queued events (kept, visible, not sent) until `release_service`.

    GONE outranks UNHEALTHY: a gone service is never shown merely unhealthy. With
    `note_on_events` the held events' last error becomes "held: <reason>"; without, they keep
    theirs (a refused key's events say what PagerDuty answered). Call inside a transaction."""
    assert (service_id is None) != (routing_key_hash is None)
    # One fixed fragment per way of naming the services, so each statement uses its index.
    if service_id is not None:
        which, who = "id = CAST(:who AS uuid)", str(service_id)
        events_of = "service_id = CAST(:who AS uuid)"
    else:
        assert routing_key_hash is not None
        which = events_of = "routing_key_hash = :who"
        who = routing_key_hash
    await db.execute(
        f"""
        UPDATE pd_services SET health = :health, health_reason = :reason, updated_at = now()
        WHERE {which} AND (CAST(:health AS text) = 'gone' OR health = 'healthy')
        """,  # noqa: S608 - only fixed fragments
        {"who": who, "health": str(health), "reason": reason},
    )
    await db.execute(
        f"""
        UPDATE events SET status = 'held', lease_until = NULL,
            last_error = COALESCE(CAST(:note AS text), last_error)
        WHERE {events_of} AND status = 'queued'
        """,  # noqa: S608 - only fixed fragments
        {"who": who, "note": f"held: {reason}" if note_on_events else None},
    )


async def mark_healthy(db: Database, service_id: UUID) -> None:
    """Show the service healthy. Its held events stay held until `release_service`."""
    await db.execute(
        """
        UPDATE pd_services SET health = 'healthy', health_reason = NULL, updated_at = now()
        WHERE id = :id
        """,
        {"id": service_id},
    )


async def release_service(db: Database, service_id: UUID) -> None:
    """The service is healthy again: its held events go back to the queue, in their order,
    under the service's current routing key, and the dispatchers are woken for them."""
    await mark_healthy(db, service_id)
    requeued = await db.fetch_all(
        """
        WITH requeued AS (
            UPDATE events e SET status = 'queued', next_attempt_at = now(), last_error = NULL,
                routing_key_hash = s.routing_key_hash
            FROM pd_services s
            WHERE s.id = e.service_id AND e.service_id = :id AND e.status = 'held'
            RETURNING e.tenant_id, e.routing_key_hash
        )
        SELECT DISTINCT tenant_id, routing_key_hash FROM requeued
        """,
        {"id": service_id},
    )
    await keys_have_work(
        db, [(r._mapping["tenant_id"], r._mapping["routing_key_hash"]) for r in requeued]
    )
    await wake_dispatchers(db)


async def has_held(db: Database, service_id: UUID) -> bool:
    value = await db.fetch_val(
        "SELECT 1 FROM events WHERE service_id = :id AND status = 'held' LIMIT 1",
        {"id": service_id},
    )
    return value is not None


async def count_pending(db: Database, service_ids: Sequence[UUID]) -> int:
    """How many of these services' events are not finished (what retiring them cancels)."""
    value = await db.fetch_val(
        """
        SELECT count(*) FROM events
        WHERE service_id = ANY(:ids) AND status IN ('queued', 'sending', 'held')
        """,
        {"ids": list(service_ids)},
    )
    return int(value or 0)


async def cancel_pending(db: Database, service_ids: Sequence[UUID], *, reason: str) -> int:
    """The services are being removed: their unfinished events are cancelled (kept, marked
    with the reason; one being sent is cancelled too, and its sender's fence then refuses its
    outcome). Returns how many. Call inside the transaction that deletes the services."""
    cancelled = await db.fetch_all(
        """
        UPDATE events SET status = 'cancelled', finished_at = clock_timestamp(),
            lease_until = NULL, last_error = :reason
        WHERE service_id = ANY(:ids) AND status IN ('queued', 'sending', 'held')
        RETURNING id
        """,
        {"ids": list(service_ids), "reason": reason},
    )
    return len(cancelled)
