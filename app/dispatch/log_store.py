"""What the outbox tells a tenant and the operator: events with PagerDuty's answers and the
incident they became, each attempt, and the queue's depth. Reads only; the outbox's state is
written by app/outbox alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database
from databases.interfaces import Record

from app.outbox.states import PENDING, EventStatus


def from_jsonb(value: Any) -> Any:
    """jsonb comes back as text through `databases`."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Event:
    id: UUID
    seq: int
    tenant_id: UUID
    service_id: UUID | None
    service_name: str | None
    dedup_key: str | None
    kind: str
    api: str
    body: Mapping[str, Any]
    notes: tuple[str, ...]
    source: str
    status: EventStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    pd_errors: tuple[str, ...]
    # What PagerDuty's webhooks said became of the alert (None until one arrives).
    incident_status: str | None = None
    incident_changed_by: str | None = None
    incident_changed_at: datetime | None = None
    incident_url: str | None = None
    alert_id: UUID | None = None


@dataclass(frozen=True)
class Attempt:
    id: int
    started_at: datetime
    finished_at: datetime | None
    latency_ms: int | None
    http_status: int | None
    outcome: str | None
    response: Mapping[str, Any] | None
    error: str | None


EVENT_COLUMNS = """
    e.id, e.seq, e.tenant_id, e.service_id, s.name AS service_name, e.dedup_key, e.kind, e.api,
    e.body, e.notes, e.source, e.status, e.attempts, e.next_attempt_at, e.created_at,
    e.finished_at,
    -- A queued event whose key rests (PagerDuty said 429, kept timing out, or its budget is
    -- spent) says why it waits.
    CASE WHEN e.status = 'queued' AND k.paused_until > clock_timestamp()
              AND k.pause_reason IS NOT NULL
         THEN k.pause_reason ELSE e.last_error END AS last_error,
    e.pd_errors, i.status AS incident_status,
    i.changed_by AS incident_changed_by, i.changed_at AS incident_changed_at,
    i.html_url AS incident_url, e.alert_id
"""
EVENT_JOINS = """
    events e LEFT JOIN pd_services s ON s.id = e.service_id
    LEFT JOIN incident_states i ON i.service_id = e.service_id AND i.dedup_key = e.dedup_key
    LEFT JOIN dispatch_keys k ON k.routing_key_hash = e.routing_key_hash
"""


def _event(row: Record) -> Event:
    m = dict(row._mapping)
    m["body"] = from_jsonb(m["body"])
    m["status"] = EventStatus(m["status"])
    m["notes"] = tuple(m["notes"] or ())
    m["pd_errors"] = tuple(from_jsonb(m["pd_errors"]) or ())
    return Event(**m)


async def list_events(
    db: Database,
    tenant_id: UUID,
    *,
    status: EventStatus | None = None,
    service_id: UUID | None = None,
    dedup_key: str | None = None,
    alert_id: UUID | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[Event]:
    # Only the fixed column list and joins above are interpolated (S608).
    rows = await db.fetch_all(
        f"""
        SELECT {EVENT_COLUMNS}
        FROM {EVENT_JOINS}
        WHERE e.tenant_id = :tenant_id
          AND (CAST(:status AS text) IS NULL OR e.status = :status)
          AND (CAST(:service_id AS uuid) IS NULL OR e.service_id = :service_id)
          AND (CAST(:dedup_key AS text) IS NULL OR e.dedup_key = :dedup_key)
          AND (CAST(:alert_id AS uuid) IS NULL OR e.alert_id = :alert_id)
          AND (CAST(:before AS bigint) IS NULL OR e.seq < :before)
        ORDER BY e.seq DESC LIMIT :limit
        """,  # noqa: S608
        {
            "tenant_id": tenant_id,
            "status": None if status is None else str(status),
            "service_id": service_id,
            "dedup_key": dedup_key,
            "alert_id": alert_id,
            "before": before_seq,
            "limit": limit,
        },
    )
    return [_event(r) for r in rows]


async def get_event(db: Database, tenant_id: UUID, event_id: UUID) -> Event | None:
    row = await db.fetch_one(
        f"""
        SELECT {EVENT_COLUMNS}
        FROM {EVENT_JOINS}
        WHERE e.tenant_id = :tenant_id AND e.id = :id
        """,  # noqa: S608
        {"tenant_id": tenant_id, "id": event_id},
    )
    return None if row is None else _event(row)


async def list_attempts(db: Database, event_id: UUID) -> list[Attempt]:
    rows = await db.fetch_all(
        """
        SELECT id, started_at, finished_at, latency_ms, http_status, outcome, response, error
        FROM delivery_attempts WHERE event_id = :id ORDER BY id
        """,
        {"id": event_id},
    )
    return [
        Attempt(**{**dict(r._mapping), "response": from_jsonb(r._mapping["response"])})
        for r in rows
    ]


async def outbox_snapshot(db: Database) -> tuple[dict[str, int], float]:
    """Unfinished events by status, and how long the longest-waiting due event has been due.

    Both read only the partial indexes over unfinished events, so a scrape costs the same with
    a million delivered events in the table as with none."""
    rows = await db.fetch_all(
        """
        SELECT status, count(*) AS n FROM events
        WHERE status IN ('queued', 'sending', 'held') GROUP BY status
        """
    )
    oldest = await db.fetch_val(
        """
        SELECT EXTRACT(EPOCH FROM clock_timestamp() - min(next_attempt_at)) FROM events
        WHERE status = 'queued' AND next_attempt_at <= clock_timestamp()
        """
    )
    by_status = {str(status): 0 for status in PENDING}
    by_status.update({str(row._mapping["status"]): int(row._mapping["n"]) for row in rows})
    return by_status, float(oldest or 0.0)
