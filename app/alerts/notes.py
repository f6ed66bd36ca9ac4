"""SQL of an alert's notes: the notes on its PagerDuty incidents, whether added through
pdconnect's API or by a person in PagerDuty (they come back as `incident.annotated` webhooks).

A note is kept once per (incident, PagerDuty note id): the note pdconnect adds comes back as a
webhook too, and PagerDuty delivers webhooks at least once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from databases import Database

Origin = Literal["api", "pagerduty"]


@dataclass(frozen=True)
class AlertNote:
    id: UUID
    alert_id: UUID
    incident_id: str
    pd_note_id: str
    content: str
    author: str | None
    origin: str
    created_at: datetime


async def latest_alert(db: Database, tenant_id: UUID, dedup_key: str) -> UUID | None:
    """The newest life of the dedup key, open or not: a note on a resolved incident still
    belongs to it."""
    value = await db.fetch_val(
        """
        SELECT id FROM alerts WHERE tenant_id = :tenant_id AND dedup_key = :dedup_key
        ORDER BY opened_at DESC, id LIMIT 1
        """,
        {"tenant_id": tenant_id, "dedup_key": dedup_key},
    )
    return value if isinstance(value, UUID) else None


async def add_note(
    db: Database,
    *,
    tenant_id: UUID,
    alert_id: UUID,
    service_id: UUID | None,
    incident_id: str,
    pd_note_id: str,
    content: str,
    author: str | None,
    origin: Origin,
    created_at: datetime,
) -> bool:
    """False when the note was recorded before (and nothing changed)."""
    value = await db.fetch_val(
        """
        INSERT INTO alert_notes (tenant_id, alert_id, service_id, incident_id, pd_note_id,
            content, author, origin, created_at)
        VALUES (:tenant_id, :alert_id, :service_id, :incident_id, :pd_note_id, :content,
            :author, :origin, :created_at)
        -- The webhook of a note added through the API can overtake the API's own insert:
        -- the API's word on where it came from wins.
        ON CONFLICT (incident_id, pd_note_id) DO UPDATE SET origin = EXCLUDED.origin
            WHERE EXCLUDED.origin = 'api'
        RETURNING 1
        """,
        {
            "tenant_id": tenant_id,
            "alert_id": alert_id,
            "service_id": service_id,
            "incident_id": incident_id,
            "pd_note_id": pd_note_id,
            "content": content,
            "author": author,
            "origin": origin,
            "created_at": created_at,
        },
    )
    return value is not None


async def notes_of(db: Database, tenant_id: UUID, alert_id: UUID) -> list[AlertNote]:
    rows = await db.fetch_all(
        """
        SELECT id, alert_id, incident_id, pd_note_id, content, author, origin, created_at
        FROM alert_notes
        WHERE tenant_id = :tenant_id AND alert_id = :alert_id ORDER BY created_at, id
        """,
        {"tenant_id": tenant_id, "alert_id": alert_id},
    )
    return [AlertNote(**dict(r._mapping)) for r in rows]
