"""SQL of alert lives: read the latest life of each dedup key, apply a request's steps.

Times are the database's (`now()`, the transaction's start), so a life's times agree with its
events' `created_at`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database

from app.alerts.life import Life, Step
from app.jsoncodec import dumps_text

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
    # The arrays are read through scalar subqueries so that the planner sees them as unknown
    # when it plans for given values too: it then costs a plan for one key as it costs the
    # generic plan, and keeps that one plan (per connection). Given the arrays directly, it
    # costs one key far below the generic plan and plans the statement again at every batch
    # (0.1 ms of the lone request's database time); the plan is the same either way, an index
    # probe per key.
    rows = await db.fetch_all(
        """
        SELECT DISTINCT ON (a.tenant_id, a.dedup_key)
            a.id, a.tenant_id, a.dedup_key, a.service_ids, a.state
        FROM unnest((SELECT CAST(:tenants AS uuid[])), (SELECT CAST(:keys AS text[])))
            AS k(tenant_id, dedup_key)
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
# alert, so the later open joins the earlier and takes its id. `-- GATE` is where the statement
# that writes a batch at once (`IN_ONE`) adds its condition.
OPEN = """
INSERT INTO alerts (id, tenant_id, dedup_key, service_ids, summary, severity)
SELECT id, tenant_id, dedup_key, service_ids, summary, severity
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    id uuid, tenant_id uuid, dedup_key text, service_ids uuid[], summary text, severity text)
-- GATE
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
-- GATE
"""

ACKNOWLEDGE = """
UPDATE alerts SET
    state = CASE WHEN state = 'triggered' THEN 'acknowledged' ELSE state END,
    acknowledged_at = CASE WHEN state = 'resolved' THEN acknowledged_at
        ELSE COALESCE(acknowledged_at, now()) END,
    last_event_at = now()
WHERE id = ANY(CAST(:ids AS uuid[]))
-- GATE
"""

RESOLVE = """
UPDATE alerts SET state = 'resolved', resolved_at = COALESCE(resolved_at, now()),
    last_event_at = now()
WHERE id = ANY(CAST(:ids AS uuid[]))
-- GATE
"""



def _gated(sql: str, gate: str, **names: str) -> str:
    for old, new in names.items():
        sql = sql.replace(f":{old} ", f":{new} ")
    return sql.replace("-- GATE", gate)


# A batch's steps as common table expressions of the one statement that also writes the batch's
# events (app/outbox/events.py, `enqueue_together`), for a batch in which no life takes more than
# one step: the sub-statements of one statement all see the tables as they were before it, so
# two steps of one life (an open then its acknowledge) need statements of their own. Each
# writes only when `gate` says the events are written (`gate.ok`); `planned` maps the id a life
# was planned with to the id it has (an open that joined a racing request's life takes that
# life's id), for the events and the rows that refer to the life. Only the kinds of step the
# batch has are in its statement: an empty one would still be planned and run.
_GATE = "(SELECT ok FROM gate)"
_IN_ONE = {
    "opens": f"""opened AS ({_gated(OPEN, "WHERE " + _GATE, rows="opens")}),
planned AS (
    SELECT r.id AS planned, o.id AS actual
    FROM jsonb_to_recordset(CAST(:opens AS jsonb)) AS r(id uuid, tenant_id uuid, dedup_key text)
    JOIN opened o ON o.tenant_id = r.tenant_id AND o.dedup_key = r.dedup_key
)""",
    "follows": f"followed AS ({_gated(FOLLOW, 'AND ' + _GATE, rows='follows')})",
    "acknowledges": f"acknowledged AS ({_gated(ACKNOWLEDGE, 'AND ' + _GATE, ids='acknowledges')})",
    "resolves": f"resolved AS ({_gated(RESOLVE, 'AND ' + _GATE, ids='resolves')})",
}
_NOTHING_OPENED = "planned AS (SELECT NULL::uuid AS planned, NULL::uuid AS actual WHERE false)"


@functools.lru_cache(maxsize=16)
def _in_one(kinds: tuple[str, ...]) -> str:
    parts = [_IN_ONE[kind] for kind in kinds]
    if "opens" not in kinds:
        parts.append(_NOTHING_OPENED)
    return ",\n".join(parts)


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


def _opens_json(opens: dict[Key, Step], actual: dict[UUID, UUID]) -> str:
    return dumps_text(
        [
            {
                "id": str(actual.get(step.alert_id, step.alert_id)),
                "tenant_id": str(tenant_id),
                "dedup_key": step.dedup_key,
                "service_ids": [str(s) for s in step.service_ids],
                "summary": step.summary,
                "severity": step.severity,
            }
            for (tenant_id, _), step in opens.items()
        ]
    )


def _follows_json(follows: dict[UUID, Step], actual: dict[UUID, UUID]) -> str:
    return dumps_text(
        [
            {
                "id": str(actual.get(alert_id, alert_id)),
                "service_ids": [str(s) for s in step.service_ids],
                "summary": step.summary,
                "severity": step.severity,
            }
            for alert_id, step in follows.items()
        ]
    )


def steps_in_one(steps: Sequence[tuple[UUID, Step]]) -> tuple[str, dict[str, Any]] | None:
    """These steps as common table expressions (defining `planned`, writing as `gate` says)
    and their values, or None when some life takes more than one step (they are then applied
    by `apply_steps`, a statement per kind)."""
    segments = _segments(steps)
    if len(segments) != 1:
        return None
    segment = segments[0]
    ids = [step.alert_id for step in segment.opens.values()]
    ids += [*segment.follows, *segment.acknowledges, *segment.resolves]
    if len(ids) != len(set(ids)):
        return None
    values: dict[str, Any] = {}
    if segment.opens:
        values["opens"] = _opens_json(segment.opens, {})
    if segment.follows:
        values["follows"] = _follows_json(segment.follows, {})
    if segment.acknowledges:
        values["acknowledges"] = sorted(segment.acknowledges)
    if segment.resolves:
        values["resolves"] = sorted(segment.resolves)
    return _in_one(tuple(values)), values


async def apply_steps(db: Database, steps: Sequence[tuple[UUID, Step]]) -> dict[UUID, UUID]:
    """Apply (tenant, step) pairs in order, inside the transaction that writes their events:
    a few statements for any number of steps. Returns the id each life planned in memory
    really has: an open that joined a racing request's life takes its id."""
    actual: dict[UUID, UUID] = {}
    for segment in _segments(steps):
        if segment.opens:
            rows = await db.fetch_all(OPEN, {"rows": _opens_json(segment.opens, actual)})
            for row in rows:
                key = (row._mapping["tenant_id"], row._mapping["dedup_key"])
                actual[segment.opens[key].alert_id] = row._mapping["id"]
        if segment.follows:
            await db.execute(FOLLOW, {"rows": _follows_json(segment.follows, actual)})
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
