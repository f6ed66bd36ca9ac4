"""What PagerDuty says became of an alert: its incident's state per (service, dedup key).

Two sources tell it: a v3 webhook (app/webhooks) as it happens, and reconciliation
(app/incidents) when no webhook came for a while. Both hand an `IncidentChange` to `apply`, so
a state read through the REST API is recorded exactly as the webhook for the same change
would have been. Neither moves a state backwards: webhooks are retried and arrive out of
order, and a REST answer can be older than a webhook that overtook it, so a change older than
the recorded one is ignored (it says so, for the caller to log)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from databases import Database


@dataclass(frozen=True)
class IncidentChange:
    tenant_id: UUID
    service_id: UUID
    dedup_key: str
    incident_id: str
    incident_number: int | None
    status: str
    title: str | None
    html_url: str | None
    # Who acted (a user's or a service's name) and when the status changed, by PagerDuty.
    changed_by: str | None
    changed_at: datetime
    # PagerDuty's REST API writes times in whole seconds, its webhooks' `occurred_at` in
    # milliseconds: a change read through REST can look older than the webhook of an
    # earlier change in the same second.
    whole_seconds: bool = False


@dataclass(frozen=True)
class IncidentState:
    service_id: UUID
    dedup_key: str
    incident_id: str
    status: str
    changed_at: datetime


async def apply(db: Database, change: IncidentChange) -> bool:
    """Record the change unless a newer one is recorded already; True when it was kept."""
    kept = await db.fetch_val(
        """
        INSERT INTO incident_states (service_id, dedup_key, tenant_id, incident_id,
            incident_number, status, title, html_url, changed_by, changed_at)
        VALUES (:service_id, :dedup_key, :tenant_id, :incident_id, :incident_number, :status,
            :title, :html_url, :changed_by, :changed_at)
        ON CONFLICT (service_id, dedup_key) DO UPDATE SET
            incident_id = EXCLUDED.incident_id, incident_number = EXCLUDED.incident_number,
            status = EXCLUDED.status, title = EXCLUDED.title, html_url = EXCLUDED.html_url,
            changed_by = EXCLUDED.changed_by,
            changed_at = GREATEST(incident_states.changed_at, EXCLUDED.changed_at)
        WHERE incident_states.changed_at <= EXCLUDED.changed_at
            -- A time in whole seconds within the recorded one's second: kept only when it
            -- moves the same incident forward (triggered, acknowledged, resolved), since
            -- which of the two came first cannot be told from the times.
            OR (CAST(:whole_seconds AS boolean)
                AND incident_states.incident_id = EXCLUDED.incident_id
                AND date_trunc('second', incident_states.changed_at) <= EXCLUDED.changed_at
                AND array_position(ARRAY['triggered', 'acknowledged', 'resolved'],
                        EXCLUDED.status)
                    > array_position(ARRAY['triggered', 'acknowledged', 'resolved'],
                        incident_states.status))
        RETURNING 1
        """,
        {
            "service_id": change.service_id,
            "dedup_key": change.dedup_key,
            "tenant_id": change.tenant_id,
            "incident_id": change.incident_id,
            "incident_number": change.incident_number,
            "status": change.status,
            "title": change.title,
            "html_url": change.html_url,
            "changed_by": change.changed_by,
            "changed_at": change.changed_at,
            "whole_seconds": change.whole_seconds,
        },
    )
    if kept is not None and change.status in ("acknowledged", "resolved"):
        await _mark_life(db, change)
    return kept is not None


# When PagerDuty says an alert's incident was acknowledged or resolved, the alert's life takes
# that time if it knew none or a later one (the sender may never acknowledge, or resolve only
# long after a person did in PagerDuty): the time to acknowledge and to resolve are PagerDuty's.
# A change of either time moves last_event_at too, which is how the analytics fold finds it.
_MARK_LIFE = """
UPDATE alerts SET
    acknowledged_at = CASE WHEN CAST(:status AS text) = 'acknowledged'
        THEN LEAST(COALESCE(acknowledged_at, :at), :at) ELSE acknowledged_at END,
    resolved_at = CASE WHEN CAST(:status AS text) = 'resolved'
        THEN LEAST(COALESCE(resolved_at, :at), :at) ELSE resolved_at END,
    last_event_at = now()
WHERE id = (
    SELECT id FROM alerts
    WHERE tenant_id = :tenant_id AND dedup_key = :dedup_key AND opened_at <= :at
    ORDER BY opened_at DESC LIMIT 1)
  AND CASE WHEN CAST(:status AS text) = 'acknowledged'
        THEN acknowledged_at IS NULL OR acknowledged_at > :at
        ELSE resolved_at IS NULL OR resolved_at > :at END
"""


async def _mark_life(db: Database, change: IncidentChange) -> None:
    await db.execute(
        _MARK_LIFE,
        {
            "status": change.status,
            "at": change.changed_at,
            "tenant_id": change.tenant_id,
            "dedup_key": change.dedup_key,
        },
    )


async def states_of(
    db: Database, service_ids: tuple[UUID, ...], dedup_key: str
) -> dict[UUID, IncidentState]:
    rows = await db.fetch_all(
        """
        SELECT service_id, dedup_key, incident_id, status, changed_at FROM incident_states
        WHERE service_id = ANY(CAST(:ids AS uuid[])) AND dedup_key = :dedup_key
        """,
        {"ids": list(service_ids), "dedup_key": dedup_key},
    )
    return {r._mapping["service_id"]: IncidentState(**dict(r._mapping)) for r in rows}


async def incident_of(
    db: Database, installation_id: UUID, incident_id: str
) -> tuple[UUID, UUID, str] | None:
    """(tenant, service, dedup key) of a PagerDuty incident pdconnect recorded for one of the
    installation's services: a note's webhook names only the incident."""
    row = await db.fetch_one(
        """
        SELECT i.tenant_id, i.service_id, i.dedup_key FROM incident_states i
        JOIN pd_services s ON s.id = i.service_id
        WHERE i.incident_id = :incident_id AND s.installation_id = :installation_id
        ORDER BY i.changed_at DESC LIMIT 1
        """,
        {"incident_id": incident_id, "installation_id": installation_id},
    )
    if row is None:
        return None
    m = row._mapping
    return m["tenant_id"], m["service_id"], m["dedup_key"]
