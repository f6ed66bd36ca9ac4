"""SQL of alert lives: read the latest life of each dedup key, apply a request's steps.

Times are the database's (`now()`, the transaction's start), so a life's times agree with its
events' `created_at`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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


# A request's alerts, or a whole batch of requests' alerts: (tenant, dedup key) pairs.
Key = tuple[UUID, str]


async def latest_lives(db: Database, keys: Sequence[Key]) -> dict[Key, Life]:
    """The newest life of each key (open or not): a resolve repeated after its alert closed
    still goes where the alert was, and PagerDuty ignores it there. One statement for any
    number of tenants and keys."""
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    rows = await db.fetch_all(
        """
        SELECT DISTINCT ON (a.tenant_id, a.dedup_key)
            a.id, a.tenant_id, a.dedup_key, a.service_ids, a.state
        FROM unnest(CAST(:tenants AS uuid[]), CAST(:keys AS text[])) AS k(tenant_id, dedup_key)
        JOIN alerts a ON a.tenant_id = k.tenant_id AND a.dedup_key = k.dedup_key
        ORDER BY a.tenant_id, a.dedup_key, a.opened_at DESC, a.id
        """,
        {"tenants": [t for t, _ in unique], "keys": [k for _, k in unique]},
    )
    return {
        (r._mapping["tenant_id"], r._mapping["dedup_key"]): Life(
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
SELECT id, tenant_id, dedup_key, service_ids, summary, severity
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    id uuid, tenant_id uuid, dedup_key text, service_ids uuid[], summary text, severity text)
-- One order for every writer, so that two batches opening the same alerts lock them alike.
ORDER BY tenant_id, dedup_key
ON CONFLICT (tenant_id, dedup_key) WHERE state <> 'resolved' DO UPDATE SET
    service_ids = alerts.service_ids || ARRAY(
        SELECT s FROM unnest(EXCLUDED.service_ids) AS s WHERE s <> ALL(alerts.service_ids)),
    summary = COALESCE(EXCLUDED.summary, alerts.summary),
    severity = COALESCE(EXCLUDED.severity, alerts.severity),
    last_event_at = now(),
    -- A trigger may open a new incident in PagerDuty: reconciliation looks again.
    reconciled_at = NULL
RETURNING id, tenant_id, dedup_key
"""

FOLLOW = """
UPDATE alerts SET
    service_ids = alerts.service_ids || ARRAY(
        SELECT s FROM unnest(f.service_ids) AS s WHERE s <> ALL(alerts.service_ids)),
    summary = COALESCE(f.summary, alerts.summary),
    severity = COALESCE(f.severity, alerts.severity),
    last_event_at = now(),
    reconciled_at = NULL
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS f(
    id uuid, service_ids uuid[], summary text, severity text)
WHERE alerts.id = f.id
"""

ACKNOWLEDGE = """
UPDATE alerts SET
    state = CASE WHEN state = 'triggered' THEN 'acknowledged' ELSE state END,
    acknowledged_at = CASE WHEN state = 'resolved' THEN acknowledged_at
        ELSE COALESCE(acknowledged_at, now()) END,
    last_event_at = now()
WHERE id = ANY(CAST(:ids AS uuid[]))
"""

RESOLVE = """
UPDATE alerts SET state = 'resolved', resolved_at = COALESCE(resolved_at, now()),
    last_event_at = now()
WHERE id = ANY(CAST(:ids AS uuid[]))
"""


@dataclass
class _Segment:
    """Steps that may be applied kind by kind: opens, then follows, then acknowledges, then
    resolves. Within one life that is the order its steps can come in (a follow and an
    acknowledge touch different columns, so they commute); a life of the same key opened
    after another step of that key starts the next segment."""

    opens: dict[Key, Step] = field(default_factory=dict)
    follows: dict[UUID, Step] = field(default_factory=dict)
    acknowledges: set[UUID] = field(default_factory=set)
    resolves: set[UUID] = field(default_factory=set)
    touched: set[Key] = field(default_factory=set)


def _segments(steps: Sequence[tuple[UUID, Step]]) -> list[_Segment]:
    segments = [_Segment()]
    for tenant_id, step in steps:
        key = (tenant_id, step.dedup_key)
        if step.kind == "open" and key in segments[-1].touched:
            segments.append(_Segment())
        segment = segments[-1]
        segment.touched.add(key)
        if step.kind == "open":
            segment.opens[key] = step
        elif step.kind == "follow":
            earlier = segment.follows.get(step.alert_id)
            segment.follows[step.alert_id] = step if earlier is None else _merged(earlier, step)
        elif step.kind == "acknowledge":
            segment.acknowledges.add(step.alert_id)
        else:
            segment.resolves.add(step.alert_id)
    return segments


def _merged(earlier: Step, later: Step) -> Step:
    """Two follows of one life as one: the services of both, the later summary and severity."""
    added = earlier.service_ids + tuple(
        s for s in later.service_ids if s not in earlier.service_ids
    )
    return replace(
        later,
        service_ids=added,
        summary=later.summary if later.summary is not None else earlier.summary,
        severity=later.severity if later.severity is not None else earlier.severity,
    )


async def apply_steps(db: Database, steps: Sequence[tuple[UUID, Step]]) -> dict[UUID, UUID]:
    """Apply (tenant, step) pairs in order, inside the transaction that writes their events:
    a few statements for any number of steps. Returns the id each life planned in memory
    really has: an open that joined a racing request's life takes its id."""
    actual: dict[UUID, UUID] = {}
    for segment in _segments(steps):
        if segment.opens:
            rows = await db.fetch_all(
                OPEN,
                {
                    "rows": json.dumps(
                        [
                            {
                                "id": str(actual.get(step.alert_id, step.alert_id)),
                                "tenant_id": str(tenant_id),
                                "dedup_key": step.dedup_key,
                                "service_ids": [str(s) for s in step.service_ids],
                                "summary": step.summary,
                                "severity": step.severity,
                            }
                            for (tenant_id, _), step in segment.opens.items()
                        ]
                    )
                },
            )
            for row in rows:
                key = (row._mapping["tenant_id"], row._mapping["dedup_key"])
                actual[segment.opens[key].alert_id] = row._mapping["id"]
        if segment.follows:
            await db.execute(
                FOLLOW,
                {
                    "rows": json.dumps(
                        [
                            {
                                "id": str(actual.get(alert_id, alert_id)),
                                "service_ids": [str(s) for s in step.service_ids],
                                "summary": step.summary,
                                "severity": step.severity,
                            }
                            for alert_id, step in segment.follows.items()
                        ]
                    )
                },
            )
        for ids, sql in ((segment.acknowledges, ACKNOWLEDGE), (segment.resolves, RESOLVE)):
            if ids:
                await db.execute(sql, {"ids": sorted(actual.get(i, i) for i in ids)})
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
