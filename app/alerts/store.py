"""SQL of alert lives: read the latest life of each dedup key, apply a request's steps.

Times are the database's (`now()`, the transaction's start), so a life's times agree with its
events' `created_at`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from databases import Database

from app.alerts.life import Life, Step

LIFE_COLUMNS = (
    "id, dedup_key, service_ids, state, opened_at, acknowledged_at, resolved_at, "
    "last_event_at, summary, severity"
)


@dataclass(frozen=True)
class AlertRecord:
    id: UUID
    dedup_key: str
    service_ids: tuple[UUID, ...]
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    last_event_at: datetime
    summary: str | None
    severity: str | None


async def latest_lives(db: Database, tenant_id: UUID, dedup_keys: Sequence[str]) -> dict[str, Life]:
    """The newest life of each key (open or not): a resolve repeated after its alert closed
    still goes where the alert was, and PagerDuty ignores it there."""
    if not dedup_keys:
        return {}
    rows = await db.fetch_all(
        """
        SELECT DISTINCT ON (dedup_key) id, dedup_key, service_ids, state FROM alerts
        WHERE tenant_id = :tenant_id AND dedup_key = ANY(:keys)
        ORDER BY dedup_key, opened_at DESC, id
        """,
        {"tenant_id": tenant_id, "keys": list(dict.fromkeys(dedup_keys))},
    )
    return {
        r._mapping["dedup_key"]: Life(
            id=r._mapping["id"],
            dedup_key=r._mapping["dedup_key"],
            service_ids=tuple(r._mapping["service_ids"]),
            state=r._mapping["state"],
        )
        for r in rows
    }


# A request that read "no open life" may race another that opened one: the two lives are one
# alert, so the later open joins the earlier and takes its id.
OPEN = """
INSERT INTO alerts (id, tenant_id, dedup_key, service_ids, summary, severity)
VALUES (:id, :tenant_id, :dedup_key, :service_ids, :summary, :severity)
ON CONFLICT (tenant_id, dedup_key) WHERE state <> 'resolved' DO UPDATE SET
    service_ids = alerts.service_ids || ARRAY(
        SELECT s FROM unnest(EXCLUDED.service_ids) AS s WHERE s <> ALL(alerts.service_ids)),
    summary = COALESCE(EXCLUDED.summary, alerts.summary),
    severity = COALESCE(EXCLUDED.severity, alerts.severity),
    last_event_at = now()
RETURNING id
"""

FOLLOW = """
UPDATE alerts SET
    service_ids = service_ids || ARRAY(
        SELECT s FROM unnest(CAST(:service_ids AS uuid[])) AS s WHERE s <> ALL(service_ids)),
    summary = COALESCE(:summary, summary), severity = COALESCE(:severity, severity),
    last_event_at = now()
WHERE id = :id
"""

ACKNOWLEDGE = """
UPDATE alerts SET
    state = CASE WHEN state = 'triggered' THEN 'acknowledged' ELSE state END,
    acknowledged_at = CASE WHEN state = 'resolved' THEN acknowledged_at
        ELSE COALESCE(acknowledged_at, now()) END,
    last_event_at = now()
WHERE id = :id
"""

RESOLVE = """
UPDATE alerts SET state = 'resolved', resolved_at = COALESCE(resolved_at, now()),
    last_event_at = now()
WHERE id = :id
"""


async def apply_steps(db: Database, tenant_id: UUID, steps: Sequence[Step]) -> dict[UUID, UUID]:
    """Apply steps in order (inside the request's transaction). Returns the id each life
    planned in memory really has: an open that joined a racing request's life takes its id."""
    actual: dict[UUID, UUID] = {}
    for step in steps:
        alert_id = actual.get(step.alert_id, step.alert_id)
        if step.kind == "open":
            joined = await db.fetch_val(
                OPEN,
                {
                    "id": alert_id,
                    "tenant_id": tenant_id,
                    "dedup_key": step.dedup_key,
                    "service_ids": list(step.service_ids),
                    "summary": step.summary,
                    "severity": step.severity,
                },
            )
            assert isinstance(joined, UUID)
            actual[step.alert_id] = joined
        elif step.kind == "follow":
            await db.execute(
                FOLLOW,
                {
                    "id": alert_id,
                    "service_ids": list(step.service_ids),
                    "summary": step.summary,
                    "severity": step.severity,
                },
            )
        else:
            sql = ACKNOWLEDGE if step.kind == "acknowledge" else RESOLVE
            await db.execute(sql, {"id": alert_id})
    return actual


async def get_alert(db: Database, tenant_id: UUID, alert_id: UUID) -> AlertRecord | None:
    row = await db.fetch_one(
        f"SELECT {LIFE_COLUMNS} FROM alerts WHERE tenant_id = :tenant_id AND id = :id",
        {"tenant_id": tenant_id, "id": alert_id},
    )
    if row is None:
        return None
    values = dict(row._mapping)
    values["service_ids"] = tuple(values["service_ids"])
    return AlertRecord(**values)
