"""Events entering the outbox, and a held-back event made due at once."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from databases import Database

from app.outbox.ready import keys_have_work
from app.outbox.states import EventStatus
from app.outbox.wakeups import wake_dispatchers


@dataclass(frozen=True)
class NewEvent:
    tenant_id: UUID
    # Both None only for a skipped event, which goes nowhere.
    service_id: UUID | None
    routing_key_hash: str | None
    dedup_key: str | None
    kind: str
    api: str
    body: Mapping[str, Any]
    notes: tuple[str, ...]
    source: str
    # QUEUED; HELD (its service is unhealthy); SKIPPED (recorded, nothing to send).
    status: EventStatus = EventStatus.QUEUED
    alert_id: UUID | None = None
    # Why it is skipped: shown where a failure's error would be.
    reason: str | None = None
    # Not sent before this much time has passed (a test event's resolve).
    due_in: timedelta | None = None


async def enqueue(db: Database, events: Sequence[NewEvent]) -> list[tuple[UUID, EventStatus]]:
    """Insert events in order (their seq is their acceptance order) and wake the dispatchers.
    Call inside the transaction that answers the sender: committed means accepted."""
    created: list[tuple[UUID, EventStatus]] = []
    for event in events:
        assert event.status in (EventStatus.QUEUED, EventStatus.HELD, EventStatus.SKIPPED)
        row = await db.fetch_one(
            """
            INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api,
                body, notes, source, status, alert_id, last_error, next_attempt_at, finished_at)
            VALUES (:tenant_id, :service_id, :routing_key_hash, :dedup_key, :kind, :api,
                CAST(:body AS jsonb), :notes, :source, :status, :alert_id, :reason,
                clock_timestamp() + CAST(:due_in AS interval),
                CASE WHEN :status = 'skipped' THEN clock_timestamp() END)
            RETURNING id, status
            """,
            {
                "tenant_id": event.tenant_id,
                "service_id": event.service_id,
                "routing_key_hash": event.routing_key_hash,
                "dedup_key": event.dedup_key,
                "kind": event.kind,
                "api": event.api,
                "body": json.dumps(event.body),
                "notes": list(event.notes),
                "source": event.source,
                "status": str(event.status),
                "alert_id": event.alert_id,
                "reason": event.reason,
                "due_in": event.due_in or timedelta(0),
            },
        )
        assert row is not None
        created.append((row._mapping["id"], EventStatus(row._mapping["status"])))
    await wake_dispatchers(db)
    await keys_have_work(
        db,
        (
            (e.tenant_id, e.routing_key_hash)
            for e in events
            if e.status == EventStatus.QUEUED and e.routing_key_hash is not None
        ),
    )
    return created


async def send_now(db: Database, tenant_id: UUID, event_id: UUID) -> bool:
    """An event held back before its first send (a test event's resolve) becomes due now.
    False when it is not waiting so (already sent, or not this tenant's)."""
    moved = await db.fetch_val(
        """
        UPDATE events SET next_attempt_at = clock_timestamp()
        WHERE id = :id AND tenant_id = :tenant_id AND status = 'queued' AND attempts = 0
          AND next_attempt_at > clock_timestamp()
        RETURNING routing_key_hash
        """,
        {"id": event_id, "tenant_id": tenant_id},
    )
    if moved is None:
        return False
    await wake_dispatchers(db)
    await keys_have_work(db, [(tenant_id, moved)])
    return True
